"""`bench/run`'s options and the order of the runs; see the package's docstring."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from . import __doc__ as ABOUT
from .harness import Bench
from .load import Run, wrk
from .postgres import Postgres
from .processes import Processes
from .report import machine, report, update_doc, variant

ROOT = Path(__file__).resolve().parent.parent



def shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run", description=(ABOUT or "").split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10, help="seconds per load run (default 10)")
    p.add_argument(
        "--connections", default="1,32", help="comma-separated connection counts (default 1,32)"
    )
    p.add_argument("--soak-requests", type=int, default=200_000, help="requests in the memory soak")
    p.add_argument(
        "--soak-warmup", type=int, default=10_000, help="requests before the first RSS reading"
    )
    p.add_argument(
        "--soak-max-seconds", type=float, default=600, help="upper bound on each soak phase"
    )
    p.add_argument("--no-soak", action="store_true", help="skip the memory soak")
    p.add_argument(
        "--modes",
        default="json,sse",
        help="comma-separated loads to run: json, sse, embed (/v1/embeddings) (default json,sse)",
    )
    p.add_argument(
        "--profile", action="store_true", help="also profile a JSON and an SSE run with py-spy"
    )
    p.add_argument(
        "--profile-connections", type=int, default=32, help="connections during the profiled runs (default 32)"
    )
    p.add_argument(
        "--profile-out",
        type=Path,
        help="keep py-spy's raw stacks here (-json, -sse added to the name)",
    )
    p.add_argument(
        "--doc",
        type=Path,
        default=None,
        help="report to update (default: docs/benchmarks.md, after a full run only)",
    )
    p.add_argument("--no-doc", action="store_true", help="print only; leave the report alone")
    p.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the gateway's store: a SQLite file, or a local PostgreSQL server the bench starts",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="gateway worker processes (default 1; with 2 the gateway gets both CPUs)",
    )
    p.add_argument(
        "--failover",
        action="store_true",
        help="give each model a first deployment that refuses connections (routing's failover path)",
    )
    p.add_argument("--gateway-cpu", type=int, default=0, help="CPU for the gateway (default 0)")
    p.add_argument("--load-cpu", type=int, default=1, help="CPU for nginx and wrk (default 1)")
    args = p.parse_args(argv)
    args.pin = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    try:
        args.conns = [int(c) for c in args.connections.split(",") if c.strip()]
    except ValueError:
        p.error("--connections: comma-separated whole numbers")
    if args.duration <= 0 or args.duration > 600:
        p.error("--duration: between 0 and 600 seconds")
    args.mode_list = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.mode_list or not set(args.mode_list) <= {"json", "sse", "embed"}:
        p.error("--modes: json, sse, embed, comma-separated")
    if not 1 <= args.workers <= 8:
        p.error("--workers: between 1 and 8")
    return args


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _terminate)
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: run the benchmark through bench/run")
    command = "bench/run" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    info = machine()
    if not args.pin:
        print("note: fewer than 2 CPUs (or no taskset): nothing is pinned", file=sys.stderr)
    procs = Processes()
    work = Path(tempfile.mkdtemp(prefix="llm-wrapper-bench-"))
    database = Postgres(args.load_cpu if args.pin else None) if args.database == "postgresql" else None
    try:
        bench = Bench(args, work, procs)
        if database is not None:
            bench.database_url = database.start()
        bench.start_nginx()
        bench.start_gateway()
        bench.start_bare()
        bench.write_scripts()
        bench.check_answers()
        for mode in args.mode_list:  # connections, pools and code paths warm before anything counts
            wrk(
                bench.scripts[mode],
                bench.url(mode, "gateway"),
                32,
                min(3.0, args.duration),
                bench.load_cpu,
            )
        runs: list[Run] = []
        for mode in args.mode_list:
            for conns in args.conns:
                targets = ("direct", "bare", "gateway", *(("gateway1",) if args.workers > 1 and conns > 1 else ()))
                for target in targets:
                    run = bench.measure(mode, target, conns, args.duration)
                    runs.append(run)
                    cpu = "" if run.gateway_cpu_ms is None else f"  cpu {run.gateway_cpu_ms:.3f} ms"
                    print(
                        f"  {mode:4} {target:7} c={conns:<3} {run.rps:9,.0f} req/s  "
                        f"p50 {run.p50_ms:.3f} ms{cpu}"
                        f"  non-2xx {run.non2xx}  socket errors {run.socket_errors}",
                        file=sys.stderr,
                    )
        modes = args.mode_list if args.profile else ()
        profiles = [bench.profile(mode, args.duration) for mode in modes]
        soak = None
        if not args.no_soak:
            print(f"  soak: {args.soak_requests:,} requests …", file=sys.stderr)
            soak = bench.soak()
        body = report(args, info, runs, soak, command, profiles)
        print("\n" + body)
        # Quick looks print only, so they never replace the published figures by accident.
        # A full run of a variant (PostgreSQL, several workers) writes its own section.
        section = variant(args)
        full = (
            (not args.no_soak or section != "")
            and args.duration >= 10
            and {1, 32} <= set(args.conns)
            and not args.failover
            and args.mode_list == ["json", "sse"]
        )
        if args.no_doc or (args.doc is None and not full):
            print("\ndocs/benchmarks.md left as it is (only a full run or --doc PATH writes it)")
        else:
            args.doc = args.doc or ROOT / "docs" / "benchmarks.md"
            update_doc(args.doc, body, section)
            print(f"\nwrote {shown(args.doc)}" + (f" (section {section})" if section else ""))
        return 0
    finally:
        procs.stop_all()
        if database is not None:
            database.stop()
        shutil.rmtree(work, ignore_errors=True)
