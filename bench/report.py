"""The report: targets and verdicts, the table, the machine, and the markdown for docs/benchmarks.md."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from .load import Run

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

TARGETS = {
    "json_rps": 2000,
    "sse_rps": 1500,
    "json_cpu_ms": 0.5,
    "sse_cpu_ms": 0.7,
    "added_p50_ms": 0.5,
    "added_p99_ms": 2.0,
    "rss_pct": 10.0,
    "workers_scaling": 1.8,  # --workers 2 on two CPUs over one worker on one
}
# The gateway's CPU per request as a multiple of the bare proxy's, same run (bench/bare.py).
BARE_RATIO = {"sqlite": 1.15, "postgresql": 1.3}



def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def busy(run: Run) -> str:
    """The share of one core the gateway used: well under 100% means it waited or was starved."""
    if run.gateway_cpu_ms is None:
        return "–"
    return f"{run.rps * run.gateway_cpu_ms / 10:.0f}%"


def ratio(runs: list[Run], run: Run) -> float | None:
    """The gateway's CPU per request over the bare proxy's, for the same load."""
    bare = find(runs, run.mode, "bare", run.connections)
    if run.target != "gateway" or bare is None or not bare.gateway_cpu_ms or run.gateway_cpu_ms is None:
        return None
    return run.gateway_cpu_ms / bare.gateway_cpu_ms


def table(runs: list[Run]) -> str:
    head = (
        "| load | path | conns | req/s | p50 ms | p90 ms | p99 ms | non-2xx | socket errors "
        "| server CPU ms/req | × bare | server core busy | nginx CPU ms/req |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in runs:
        times = ratio(runs, r)
        lines.append(
            f"| {r.mode.upper()} | {r.target} | {r.connections} | {fmt(r.rps, 0)} "
            f"| {fmt(r.p50_ms, 3)} "
            f"| {fmt(r.p90_ms, 3)} | {fmt(r.p99_ms, 3)} | {r.non2xx} | {r.socket_errors} "
            f"| {fmt(r.gateway_cpu_ms, 3)} | {'–' if times is None else f'{times:.2f}'} "
            f"| {busy(r)} | {fmt(r.nginx_cpu_ms, 3)} |"
        )
    return "\n".join(lines)


def find(runs: list[Run], mode: str, target: str, connections: int) -> Run | None:
    return next(
        (r for r in runs if (r.mode, r.target, r.connections) == (mode, target, connections)), None
    )


def verdicts(
    runs: list[Run], soak: dict[str, Any] | None, database: str = "sqlite"
) -> list[tuple[str, str, str, bool | None]]:
    out: list[tuple[str, str, str, bool | None]] = []
    limit = BARE_RATIO[database]
    for mode, what in (("json", "JSON request"), ("sse", "20-chunk stream")):
        gateway = find(runs, mode, "gateway", 32)
        times = ratio(runs, gateway) if gateway else None
        if times is not None:
            out.append(
                (
                    f"gateway CPU per {what} / bare proxy's, 32 connections ({database})",
                    f"≤ {limit:.2f}×",
                    f"{times:.2f}×",
                    times <= limit,
                )
            )
    for mode, key, cpu_key, what in (
        ("json", "json_rps", "json_cpu_ms", "JSON request"),
        ("sse", "sse_rps", "sse_cpu_ms", "20-chunk stream"),
    ):
        r = find(runs, mode, "gateway", 32)
        if r is not None:
            ok = r.rps >= TARGETS[key] and r.non2xx == 0 and r.socket_errors == 0
            out.append(
                (
                    f"{mode.upper()} req/s, 32 connections, no errors",
                    f"≥ {TARGETS[key]:,}",
                    f"{r.rps:,.0f} ({r.non2xx + r.socket_errors} errors)",
                    ok,
                )
            )
            assert r.gateway_cpu_ms is not None
            out.append(
                (
                    f"gateway CPU per {what}",
                    f"≤ {TARGETS[cpu_key]} ms",
                    f"{r.gateway_cpu_ms:.3f} ms",
                    r.gateway_cpu_ms <= TARGETS[cpu_key],
                )
            )
    embed, chat = find(runs, "embed", "gateway", 32), find(runs, "json", "gateway", 32)
    if embed and chat and embed.gateway_cpu_ms is not None and chat.gateway_cpu_ms is not None:
        out.append(
            (
                "gateway CPU per embeddings request, 32 connections",
                "≤ a JSON chat request's",
                f"{embed.gateway_cpu_ms:.3f} ms vs {chat.gateway_cpu_ms:.3f} ms",
                embed.gateway_cpu_ms <= chat.gateway_cpu_ms,
            )
        )
    for mode in ("json", "sse"):
        many, one = find(runs, mode, "gateway", 32), find(runs, mode, "gateway1", 32)
        if many and one and one.rps:
            out.append(
                (
                    f"{mode.upper()} req/s, all workers over one worker on one CPU, 32 connections",
                    f"≥ {TARGETS['workers_scaling']}×",
                    f"{many.rps / one.rps:.2f}× ({many.rps:,.0f} / {one.rps:,.0f})",
                    many.rps / one.rps >= TARGETS["workers_scaling"],
                )
            )
    for mode in ("json", "sse"):
        g, d, b = find(runs, mode, "gateway", 1), find(runs, mode, "direct", 1), find(runs, mode, "bare", 1)
        if g and d:
            for name, key in (("median", "p50"), ("p99", "p99")):
                added = getattr(g, f"{key}_ms") - getattr(d, f"{key}_ms")
                target = TARGETS[f"added_{key}_ms"]
                bare = f" (bare proxy: {getattr(b, f'{key}_ms') - getattr(d, f'{key}_ms'):.3f} ms)" if b else ""
                out.append(
                    (
                        f"added {name} latency, {mode.upper()}, 1 connection",
                        f"≤ {target} ms",
                        f"{added:.3f} ms{bare}",
                        added <= target,
                    )
                )
                if b:  # for reading the figure above: what the features add over a proxy without them
                    out.append(
                        (
                            f"… of which over the bare proxy ({name})",
                            "(no target)",
                            f"{getattr(g, f'{key}_ms') - getattr(b, f'{key}_ms'):+.3f} ms",
                            None,
                        )
                    )
    if soak:
        out.append(
            (
                f"RSS change over {soak['requests']:,} requests",
                f"within {TARGETS['rss_pct']:.0f}%",
                f"{soak['rss_pct']:+.1f}%",
                abs(soak["rss_pct"]) <= TARGETS["rss_pct"] and soak["requests"] >= 200_000
                and not soak["unexpected"],
            )
        )
    return out


def machine() -> dict[str, str]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    nginx = subprocess.run(
        ["nginx", "-v"], capture_output=True, text=True, check=False
    ).stderr.strip()
    wrk_v = (
        subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        .stdout.split("\n")[0]
        .strip()
    )
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "kernel": platform.release(),
        "os": _os_name(),
        "loadavg": Path("/proc/loadavg").read_text().split(" ")[0],
        "python": platform.python_version(),
        "uvicorn": version("uvicorn"),
        "aiohttp": version("aiohttp"),
        "fastapi": version("fastapi"),
        "llm-wrapper": version("llm-wrapper"),
        "nginx": nginx.split("/", 1)[-1],
        "wrk": wrk_v.split(" ")[1] if " " in wrk_v else wrk_v,
    }


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def layout(args: argparse.Namespace) -> str:
    store = "SQLite token store" if args.database == "sqlite" else "PostgreSQL store (a local server)"
    where = (
        f"pinned to CPU {args.gateway_cpu}" if args.workers == 1 else "on every CPU (sharing CPU "
        f"{args.load_cpu} with the load)"
    )
    if not args.pin:
        where = "not pinned (fewer than 2 CPUs)"
    failover = (
        " Each model's first deployment refuses connections (`--failover`): requests fail over to "
        "the second, and the first is skipped while it cools down."
        if args.failover else ""
    )
    return (
        f"- Layout: `llm-wrapper serve --workers {args.workers}` and the bare proxy (bench/bare.py, "
        f"FastAPI + aiohttp, no features) {where}; nginx (1 worker) and wrk (1 thread) on CPU "
        f"{args.load_cpu}. {args.duration:g} s per run. {store}, analytics log on, a real token "
        f"with a large daily limit.{failover}"
    )


def report(
    args: argparse.Namespace,
    info: dict[str, str],
    runs: list[Run],
    soak: dict[str, Any] | None,
    command: str,
    profiles: list[dict[str, object]],
) -> str:
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Measured {date} with `{command}`.",
        "",
        (
            f"- Machine: {info['nproc']} CPUs ({info['cpu']}), kernel {info['kernel']}, "
            f"{info['os']}; 1-minute load average {info['loadavg']} when the run started."
        ),
        (
            f"- Versions: Python {info['python']}, uvicorn {info['uvicorn']}, "
            f"aiohttp {info['aiohttp']}, FastAPI {info['fastapi']}, "
            f"llm-wrapper {info['llm-wrapper']}; nginx {info['nginx']}, wrk {info['wrk']}."
        ),
        layout(args),
        "",
        "### Targets",
        "",
        "| what | target | measured | met |",
        "|---|---|---|---|",
    ]
    for what, target, measured, ok in verdicts(runs, soak, args.database):
        lines.append(f"| {what} | {target} | {measured} | {'–' if ok is None else 'yes' if ok else 'no'} |")
    lines += ["", "### Throughput, latency and CPU", "", table(runs), ""]
    lines.append(
        '"direct" is wrk straight to nginx; "bare" goes through a FastAPI + aiohttp proxy with no '
        'features (bench/bare.py); "gateway" goes through llm-wrapper to the same nginx '
        'location; "× bare" is the gateway\'s CPU per request over the bare proxy\'s in this run. '
        "CPU per request is utime + stime from `/proc/PID/stat` (children included) "
        'over the run, divided by the requests wrk completed; "gateway core busy" is req/s × '
        "CPU per request, the share of its one core the gateway used (well under 100% at 32 "
        "connections means it was starved by other work on that core, or waiting)."
        + (
            ' With several workers, "gateway1" is a second gateway with one worker on one CPU, '
            "measured in the same run, for the scaling ratio."
            if args.workers > 1 else ""
        )
    )
    if soak:
        lines += [
            "",
            "### Memory soak",
            "",
            (
                f"{soak['requests']:,} requests (of every eight: three JSON, two 20-chunk streams, "
                "one failover from a deployment that refuses connections, one a provider answers 503, "
                f"one for an unknown model; 32 connections, {soak['seconds']:.0f} s; answers by status "
                f"{_statuses(soak)}, {soak['unexpected']} unexpected) after a "
                f"warm-up of {soak['warmup_requests']:,}: worker RSS "
                f"{soak['rss_before_kib'] / 1024:.1f} MiB after the warm-up, "
                f"{soak['rss_after_kib'] / 1024:.1f} MiB after the soak ({soak['rss_pct']:+.1f}%)."
            ),
        ]
    for profile in profiles:
        run = profile["run"]
        assert isinstance(run, Run)
        lines += [
            "",
            f"### Profile (py-spy, {str(profile['mode']).upper()}, {run.connections} connections)",
            "",
            (
                f"{profile['samples']} samples at {run.rps:,.0f} req/s (the sampler itself costs "
                "some throughput). Self time, top functions:"
            ),
            "",
            "| function | % of samples |",
            "|---|---|",
        ]
        lines += [f"| `{k}` | {v:.1f} |" for k, v in profile["self"]]  # type: ignore[attr-defined]
        lines += ["", "Samples by thread:", "", "| thread | % of samples |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in profile["threads"]]  # type: ignore[attr-defined]
        lines += [
            "",
            "Inclusive time in the gateway's own code:",
            "",
            "| function | % of samples |",
            "|---|---|",
        ]
        ours = profile["ours_inclusive"]
        lines += [f"| `{k}` | {v:.1f} |" for k, v in ours]  # type: ignore[attr-defined]
    return "\n".join(lines)


def variant(args: argparse.Namespace) -> str:
    """The name of a run's own section in the report: "" for the default (SQLite, one worker)."""
    parts = [args.database] if args.database != "sqlite" else []
    if args.workers > 1:
        parts.append(f"workers-{args.workers}")
    return ", ".join(parts)


def update_doc(path: Path, body: str, section: str = "") -> None:
    """Replace the section's block (between its markers) with `body`; a new section goes at the end."""
    begin, end = (BEGIN, END) if not section else (f"<!-- bench:begin {section} -->", f"<!-- bench:end {section} -->")
    block = f"{begin}\n{body}\n{end}"
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    elif section and text:
        text = text.rstrip("\n") + f"\n\n## Run: {section}\n\n{block}\n"
    else:
        text = DOC_HEAD + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


DOC_HEAD = """# Benchmarks

`bench/run` measures what the gateway adds on top of a provider that answers at once: a local
nginx returns a fixed chat completion (with usage) or a fixed stream of 20
`chat.completion.chunk` events and `data: [DONE]`. It installs nginx and wrk when missing,
starts everything on 127.0.0.1 in a temporary folder, and stops it all on exit.

```
bench/run                      # the full run: 8 load runs of 10 s, then a 200,000-request soak
bench/run --duration 3 --no-soak   # a quick look (printed only; this file is left alone)
bench/run --profile            # also py-spy profiles of a JSON and an SSE run (installs py-spy)
```

The section between the markers below is rewritten by each full run (default options,
`--profile` allowed); the rest of this file is kept.

"""


def _statuses(soak: dict[str, Any]) -> str:
    statuses = soak.get("statuses") or {}
    return ", ".join(f"{code}: {statuses[code]:,}" for code in sorted(statuses)) or "not recorded"
