"""The gateway benchmark: a fake upstream (nginx), the real gateway, load from wrk, one table.

    wrk (core 1) --> nginx (core 1)                       "direct": what the machine can do
    wrk (core 1) --> llm-wrapper serve (core 0) --> nginx  "gateway": what the gateway adds

For JSON and for a 20-chunk SSE stream, at 1 and at 32 connections, it prints
requests/s, p50/p90/p99 latency, non-2xx responses and socket errors, and the
CPU time the gateway (and nginx) spent per request, read from /proc/PID/stat
before and after each run. Then a memory soak (>= 100,000 requests, JSON and
streams alternating) compares the worker's RSS after a warm-up and after the
soak. The results go to docs/benchmarks.md, between its `bench:begin` and
`bench:end` markers (the rest of that file is left as it is).

Run it through `bench/run`, which installs what it needs. All traffic goes to
127.0.0.1, every run is bounded in time, and every process started here is
stopped on exit, on Ctrl-C and on errors.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CHUNKS = 20
JSON_MODEL = "bench-json"
SSE_MODEL = "bench-sse"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

TARGETS = {
    "json_rps": 2000,
    "sse_rps": 1500,
    "json_cpu_ms": 0.5,
    "sse_cpu_ms": 0.7,
    "added_p50_ms": 1.0,
    "rss_pct": 10.0,
}


# The fake upstream's answers ------------------------------------------------------------


def completion_body() -> str:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": JSON_MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
        },
        separators=(",", ":"),
    )


def stream_body() -> str:
    events = []
    for i in range(CHUNKS):
        delta = {"role": "assistant", "content": ""} if i == 0 else {"content": f"word{i} "}
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": SSE_MODEL,
            "choices": [
                {"index": 0, "delta": delta, "finish_reason": "stop" if i == CHUNKS - 1 else None}
            ],
        }
        if i == CHUNKS - 1:
            chunk["usage"] = {
                "prompt_tokens": 12,
                "completion_tokens": CHUNKS - 1,
                "total_tokens": 31,
            }
        events.append("data: " + json.dumps(chunk, separators=(",", ":")) + "\n\n")
    return "".join(events) + "data: [DONE]\n\n"


def request_body(model: str, stream: bool) -> str:
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello."}],
    }
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":"))


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{port};
        location = /json/v1/chat/completions {{
            default_type application/json;
            return 200 '{json}';
        }}
        location = /sse/v1/chat/completions {{
            default_type text/event-stream;
            add_header Cache-Control no-cache;
            return 200 '{sse}';
        }}
        location / {{ return 404; }}
    }}
}}
"""

# wrk's `done` hook prints the exact figures (microseconds) as one JSON line.
LUA_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"p50":%.1f,"p90":%.1f,"p99":%.1f,' ..
    '"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), e.connect, e.read, e.write, e.timeout, e.status))
end
"""


def lua_single(body: str, token: str) -> str:
    return (
        f'wrk.method = "POST"\nwrk.body = [[{body}]]\n'
        f'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n' + LUA_DONE
    )


def lua_soak(token: str, limit: int, marker: Path) -> str:
    """JSON and stream requests alternating; after `limit` responses, stop and touch `marker`."""
    return (
        f"""
local reqs, n, limit = nil, 0, {limit}
init = function(args)
  local h = {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer {token}"}}
  reqs = {{wrk.format("POST", nil, h, [[{request_body(JSON_MODEL, False)}]]),
          wrk.format("POST", nil, h, [[{request_body(SSE_MODEL, True)}]])}}
end
request = function()
  n = n + 1
  return reqs[n % 2 + 1]
end
local seen = 0
response = function(status, headers, body)
  seen = seen + 1
  if seen == limit then
    local f = io.open("{marker}", "w")
    if f then f:close() end
    wrk.thread:stop()
  end
end
"""
        + LUA_DONE
    )


# Processes ---------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child: be killed if the benchmark itself dies without cleaning up (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


# Children get their own session (a Ctrl-C reaches only the benchmark, which then stops them in
# order) and die with it if it is killed outright. The benchmark starts no threads, so
# preexec_fn is safe here.
DETACHED: dict[str, Any] = {"start_new_session": True, "preexec_fn": _die_with_parent}


class Processes:
    """Every long-running process the benchmark starts; `stop_all()` ends them, newest first."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: list[str], log: Path, **kwargs) -> subprocess.Popen[bytes]:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                **DETACHED,
                **kwargs,
            )
        self.procs.append((name, proc))
        return proc

    def stop_all(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for _, proc in reversed(self.procs):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs.clear()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cpu: int | None, args: list[str]) -> list[str]:
    return args if cpu is None else ["taskset", "-c", str(cpu), *args]


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from the 3rd (state) on


def tree(pid: int) -> list[int]:
    """`pid` and all its live descendants."""
    parent: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            parent.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(parent.get(p, []))
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process and its children (live ones, and exited ones it waited for)."""
    ticks = 0
    for p in tree(pid):
        if (fields := _stat(p)) is not None:
            ticks += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return ticks / CLOCK_TICKS


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def worker_pid(pid: int) -> int:
    """The process that serves requests: the server itself with one worker, else its first child."""
    children = [p for p in tree(pid) if p != pid]
    return children[0] if children else pid


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"{url}: the process exited ({proc.returncode}):\n{log.read_text(errors='replace')}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout}s:\n{log.read_text(errors='replace')}")


def post(url: str, body: str, token: str) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url,
        data=body.encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# Load --------------------------------------------------------------------------------


@dataclass
class Run:
    mode: str
    target: str
    connections: int
    requests: int = 0
    rps: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    non2xx: int = 0
    socket_errors: int = 0
    gateway_cpu_ms: float | None = None
    nginx_cpu_ms: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


def wrk(
    script: Path,
    url: str,
    connections: int,
    seconds: float,
    cpu: int | None,
    marker: Path | None = None,
) -> dict[str, float]:
    """One wrk run (at most `seconds`, or until `marker` appears); its figures as a dict."""
    args = pinned(
        cpu,
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "5s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
    )
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **DETACHED
    )
    deadline = time.monotonic() + seconds + 60
    try:
        # wrk sleeps for its whole duration even when its thread stops early; the soak's script
        # leaves a marker when it has seen enough responses, and SIGINT makes wrk report at once.
        while proc.poll() is None and time.monotonic() < deadline:
            if marker is not None and marker.exists():
                proc.send_signal(signal.SIGINT)
                break
            time.sleep(0.2)
        stdout, stderr = proc.communicate(timeout=max(1, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)
    match = re.search(r"^BENCH_RESULT (\{.*\})$", out.stdout, re.MULTILINE)
    if out.returncode != 0 or match is None:
        raise SystemExit(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    result = json.loads(match.group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out.stdout)
    result["non2xx"] = int(non2xx.group(1)) if non2xx else 0
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out.stdout
    )
    result["socket_errors"] = sum(int(v) for v in sock.groups()) if sock else 0
    return result


@dataclass
class Bench:
    args: argparse.Namespace
    work: Path
    procs: Processes
    nginx_port: int = 0
    gateway_port: int = 0
    nginx: subprocess.Popen[bytes] | None = None
    gateway: subprocess.Popen[bytes] | None = None
    token: str = ""
    scripts: dict[str, Path] = field(default_factory=dict)

    @property
    def load_cpu(self) -> int | None:
        return self.args.load_cpu if self.args.pin else None

    def start_nginx(self) -> None:
        folder = self.work / "nginx"
        folder.mkdir()
        self.nginx_port = free_port()
        conf = folder / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                dir=folder, port=self.nginx_port, json=completion_body(), sse=stream_body()
            )
        )
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        log = folder / "stdout.log"
        self.nginx = self.procs.start(
            "nginx",
            pinned(
                self.load_cpu,
                [nginx, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(conf)],
            ),
            log,
        )
        wait_http(f"http://127.0.0.1:{self.nginx_port}/", self.nginx, log)

    def start_gateway(self) -> None:
        folder = self.work / "gateway"
        folder.mkdir()
        self.gateway_port = free_port()
        upstream = f"http://127.0.0.1:{self.nginx_port}"
        config = {
            "bench_json": {
                "name": "Bench JSON",
                "adapter": "openai",
                "base_url": f"{upstream}/json/v1",
                "api_key_env": "BENCH_UPSTREAM_KEY",
                "supported_models": [JSON_MODEL],
                "payload_extra_parameters": {},
            },
            "bench_sse": {
                "name": "Bench SSE",
                "adapter": "openai",
                "base_url": f"{upstream}/sse/v1",
                "api_key_env": "BENCH_UPSTREAM_KEY",
                "supported_models": [SSE_MODEL],
                "payload_extra_parameters": {},
            },
        }
        (folder / "config.json").write_text(json.dumps(config, indent=2))
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{folder / 'gateway.db'}",
            "LLM_WRAPPER_CONFIG": str(folder / "config.json"),
            "LLM_WRAPPER_LOG_FILE": str(folder / "llm_proxy.log"),
            "LLM_WRAPPER_ENV_FILE": str(folder / ".env"),
            "BENCH_UPSTREAM_KEY": "sk-bench",
            "LOG_LEVEL": "warning",
        }
        added = subprocess.run(
            [
                str(BIN / "llm-wrapper"),
                "tokens",
                "add",
                "--username",
                "bench",
                "--expiry",
                "2099-01-01 00:00:00",
                "--rate-limit",
                "1000000000",
                "--json",
            ],
            env=env,
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if added.returncode != 0:
            raise SystemExit(f"llm-wrapper tokens add failed:\n{added.stderr}")
        self.token = json.loads(added.stdout)["token"]
        log = folder / "server.log"
        self.gateway = self.procs.start(
            "gateway",
            pinned(
                self.args.gateway_cpu if self.args.pin else None,
                [
                    str(BIN / "llm-wrapper"),
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.gateway_port),
                    "--workers",
                    "1",
                ],
            ),
            log,
            env=env,
            cwd=folder,
        )
        wait_http(f"http://127.0.0.1:{self.gateway_port}/healthz", self.gateway, log)

    def write_scripts(self) -> None:
        for mode, model, stream in (("json", JSON_MODEL, False), ("sse", SSE_MODEL, True)):
            path = self.work / f"{mode}.lua"
            path.write_text(lua_single(request_body(model, stream), self.token))
            self.scripts[mode] = path

    def url(self, mode: str, target: str) -> str:
        if target == "direct":
            return f"http://127.0.0.1:{self.nginx_port}/{mode}/v1/chat/completions"
        return f"http://127.0.0.1:{self.gateway_port}/v1/chat/completions"

    def check_answers(self) -> None:
        """One request of each kind first: a broken gateway fails loudly, not as 500s in a table."""
        gateway = self.url("json", "gateway")
        status, body = post(gateway, request_body(JSON_MODEL, False), self.token)
        if status != 200 or json.loads(body).get("object") != "chat.completion":
            raise SystemExit(f"the gateway's JSON answer is wrong ({status}): {body[:500]!r}")
        status, body = post(gateway, request_body(SSE_MODEL, True), self.token)
        chunks = body.count(b'"chat.completion.chunk"')
        if status != 200 or chunks != CHUNKS or not body.rstrip().endswith(b"data: [DONE]"):
            raise SystemExit(
                f"the gateway's stream is wrong ({status}, {chunks} chunks): {body[:500]!r}"
            )

    def measure(self, mode: str, target: str, connections: int, seconds: float) -> Run:
        assert self.nginx and self.gateway
        gw_before, ng_before = cpu_seconds(self.gateway.pid), cpu_seconds(self.nginx.pid)
        result = wrk(
            self.scripts[mode], self.url(mode, target), connections, seconds, self.load_cpu
        )
        gw_cpu = cpu_seconds(self.gateway.pid) - gw_before
        ng_cpu = cpu_seconds(self.nginx.pid) - ng_before
        n = max(1, result["requests"])
        return Run(
            mode=mode,
            target=target,
            connections=connections,
            requests=result["requests"],
            rps=result["requests"] / (result["duration_us"] / 1e6),
            p50_ms=result["p50"] / 1000,
            p90_ms=result["p90"] / 1000,
            p99_ms=result["p99"] / 1000,
            non2xx=max(result["non2xx"], result["status"]),
            socket_errors=result["socket_errors"],
            gateway_cpu_ms=gw_cpu * 1000 / n if target == "gateway" else None,
            nginx_cpu_ms=ng_cpu * 1000 / n,
        )

    def profile(self, mode: str, seconds: float) -> dict[str, object]:
        """A py-spy record of the gateway during one run (JSON or SSE) at 32 connections."""
        assert self.gateway
        py_spy = BIN / "py-spy"
        if not py_spy.exists():
            raise SystemExit(
                "--profile needs py-spy in the virtual environment (bench/run installs it)"
            )
        raw = self.work / f"profile-{mode}.txt"
        spy = subprocess.Popen(
            pinned(
                self.load_cpu,
                [
                    str(py_spy),
                    "record",
                    "--pid",
                    str(worker_pid(self.gateway.pid)),
                    "--duration",
                    str(round(seconds)),
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--output",
                    str(raw),
                    "--nonblocking",
                    "--threads",
                ],
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            **DETACHED,
        )
        try:
            time.sleep(0.5)
            run = self.measure(mode, "gateway", 32, seconds)
            spy.wait(seconds + 30)
        finally:
            if spy.poll() is None:
                spy.kill()
                spy.wait()
        if not raw.exists():
            raise SystemExit(
                f"py-spy wrote nothing: {spy.stderr.read().decode() if spy.stderr else ''}"
            )
        if out := self.args.profile_out:
            shutil.copy(raw, out.with_name(f"{out.stem}-{mode}{out.suffix}"))
        return {"mode": mode, "run": run, **summarise_profile(raw.read_text())}

    def soak(self) -> dict[str, float]:
        assert self.gateway
        worker = worker_pid(self.gateway.pid)
        warm, total = self.args.soak_warmup, self.args.soak_requests
        limits = self.args.soak_max_seconds
        warm_script, soak_script = self.work / "soak-warm.lua", self.work / "soak.lua"
        warm_marker, soak_marker = self.work / "soak-warm.done", self.work / "soak.done"
        warm_script.write_text(lua_soak(self.token, warm, warm_marker))
        soak_script.write_text(lua_soak(self.token, total, soak_marker))
        url = self.url("json", "gateway")
        warmed = wrk(warm_script, url, 32, limits, self.load_cpu, warm_marker)
        before = rss_kib(worker)
        started = time.monotonic()
        soaked = wrk(soak_script, url, 32, limits, self.load_cpu, soak_marker)
        elapsed = time.monotonic() - started
        after = rss_kib(worker)
        return {
            "warmup_requests": warmed["requests"],
            "requests": soaked["requests"],
            "seconds": elapsed,
            "errors": soaked["non2xx"] + soaked["socket_errors"] + soaked["status"],
            "rss_before_kib": before,
            "rss_after_kib": after,
            "rss_pct": (after - before) * 100 / before,
        }


# Profile summary ---------------------------------------------------------------------


def _frame_key(frame: str) -> tuple[str, bool]:
    """'function (path/file.py:123)' -> ('path/file.py:function', is_ours)."""
    m = re.match(r"^(.*) \((.*?):\d+\)$", frame.strip())
    if not m:
        return frame.strip(), False
    function, path = m.groups()
    ours = "llm_wrapper" in path
    if ours:
        path = "src/llm_wrapper/" + path.split("llm_wrapper/", 1)[-1]
    else:
        path = re.sub(r"^.*/(site-packages|python3\.\d+)/", "", path)
    return f"{path}:{function}", ours


# Start-up frames under every event-loop sample: not worth listing.
ENTRY_FRAMES = {
    "src/llm_wrapper/cli.py:main",
    "src/llm_wrapper/cli.py:serve",
    "src/llm_wrapper/server.py:serve",
}


def summarise_profile(text: str) -> dict[str, object]:
    """Self and inclusive shares of samples from py-spy's raw (collapsed) output."""
    own: Counter[str] = Counter()
    ours_inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f for f in stack.split(";") if f]
        if frames and (thread := re.match(r"^thread \(\w+\):?\s*(.*)$", frames[0])):
            threads[thread.group(1) or "unnamed"] += n
            frames = frames[1:]
        keys = [_frame_key(f) for f in frames]
        if not keys:
            continue
        own[keys[-1][0]] += n
        for key, ours in set(keys):
            if ours and key not in ENTRY_FRAMES:
                ours_inclusive[key] += n
    total = max(1, total)

    def top(counts: Counter[str], n: int = 15) -> list[tuple[str, float]]:
        return [(k, v * 100 / total) for k, v in counts.most_common(n)]

    return {
        "samples": total,
        "threads": top(threads, 5),
        "self": top(own),
        "ours_inclusive": top(ours_inclusive),
    }


# Report ------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def busy(run: Run) -> str:
    """The share of one core the gateway used: well under 100% means it waited or was starved."""
    if run.gateway_cpu_ms is None:
        return "–"
    return f"{run.rps * run.gateway_cpu_ms / 10:.0f}%"


def table(runs: list[Run]) -> str:
    head = (
        "| load | path | conns | req/s | p50 ms | p90 ms | p99 ms | non-2xx | socket errors "
        "| gateway CPU ms/req | gateway core busy | nginx CPU ms/req |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in runs:
        lines.append(
            f"| {r.mode.upper()} | {r.target} | {r.connections} | {fmt(r.rps, 0)} "
            f"| {fmt(r.p50_ms, 3)} "
            f"| {fmt(r.p90_ms, 3)} | {fmt(r.p99_ms, 3)} | {r.non2xx} | {r.socket_errors} "
            f"| {fmt(r.gateway_cpu_ms, 3)} | {busy(r)} | {fmt(r.nginx_cpu_ms, 3)} |"
        )
    return "\n".join(lines)


def find(runs: list[Run], mode: str, target: str, connections: int) -> Run | None:
    return next(
        (r for r in runs if (r.mode, r.target, r.connections) == (mode, target, connections)), None
    )


def verdicts(
    runs: list[Run], soak: dict[str, float] | None
) -> list[tuple[str, str, str, bool | None]]:
    out: list[tuple[str, str, str, bool | None]] = []
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
    for mode in ("json", "sse"):
        g, d = find(runs, mode, "gateway", 1), find(runs, mode, "direct", 1)
        if g and d:
            added = g.p50_ms - d.p50_ms
            out.append(
                (
                    f"added median latency, {mode.upper()}, 1 connection",
                    f"≤ {TARGETS['added_p50_ms']} ms",
                    f"{added:.3f} ms",
                    added <= TARGETS["added_p50_ms"],
                )
            )
    if soak:
        out.append(
            (
                f"RSS change over {soak['requests']:,} requests",
                f"within {TARGETS['rss_pct']:.0f}%",
                f"{soak['rss_pct']:+.1f}%",
                abs(soak["rss_pct"]) <= TARGETS["rss_pct"] and soak["requests"] >= 100_000,
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
    if not args.pin:
        return "- Layout: nothing pinned (fewer than 2 CPUs)."
    return (
        f"- Layout: `llm-wrapper serve --workers 1` pinned to CPU {args.gateway_cpu}; nginx "
        f"(1 worker) and wrk (1 thread) pinned to CPU {args.load_cpu}. {args.duration:g} s per "
        "run. SQLite token store, analytics log on, a real token with a large daily limit."
    )


def report(
    args: argparse.Namespace,
    info: dict[str, str],
    runs: list[Run],
    soak: dict[str, float] | None,
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
    for what, target, measured, ok in verdicts(runs, soak):
        lines.append(f"| {what} | {target} | {measured} | {'yes' if ok else 'no'} |")
    lines += ["", "### Throughput, latency and CPU", "", table(runs), ""]
    lines.append(
        '"direct" is wrk straight to nginx; "gateway" goes through llm-wrapper to the same nginx '
        "location. CPU per request is utime + stime from `/proc/PID/stat` (children included) "
        'over the run, divided by the requests wrk completed; "gateway core busy" is req/s × '
        "CPU per request, the share of its one core the gateway used (well under 100% at 32 "
        "connections means it was starved by other work on that core, or waiting)."
    )
    if soak:
        lines += [
            "",
            "### Memory soak",
            "",
            (
                f"{soak['requests']:,} requests (JSON and 20-chunk streams alternating, "
                f"32 connections, {soak['seconds']:.0f} s, {soak['errors']} errors) after a "
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
            f"### Profile (py-spy, {str(profile['mode']).upper()}, 32 connections)",
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


def update_doc(path: Path, body: str) -> None:
    block = f"{BEGIN}\n{body}\n{END}"
    if path.exists() and BEGIN in (text := path.read_text()) and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
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
bench/run                      # the full run: 8 load runs of 10 s, then a 100,000-request soak
bench/run --duration 3 --no-soak   # a quick look (printed only; this file is left alone)
bench/run --profile            # also py-spy profiles of a JSON and an SSE run (installs py-spy)
```

The section between the markers below is rewritten by each full run (default options,
`--profile` allowed); the rest of this file is kept.

"""


# Main --------------------------------------------------------------------------------


def shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10, help="seconds per load run (default 10)")
    p.add_argument(
        "--connections", default="1,32", help="comma-separated connection counts (default 1,32)"
    )
    p.add_argument("--soak-requests", type=int, default=100_000, help="requests in the memory soak")
    p.add_argument(
        "--soak-warmup", type=int, default=10_000, help="requests before the first RSS reading"
    )
    p.add_argument(
        "--soak-max-seconds", type=float, default=300, help="upper bound on each soak phase"
    )
    p.add_argument("--no-soak", action="store_true", help="skip the memory soak")
    p.add_argument(
        "--profile", action="store_true", help="also profile a JSON and an SSE run with py-spy"
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
    try:
        bench = Bench(args, work, procs)
        bench.start_nginx()
        bench.start_gateway()
        bench.write_scripts()
        bench.check_answers()
        for mode in (
            "json",
            "sse",
        ):  # connections, pools and code paths warm before anything counts
            wrk(
                bench.scripts[mode],
                bench.url(mode, "gateway"),
                32,
                min(3.0, args.duration),
                bench.load_cpu,
            )
        runs: list[Run] = []
        for mode in ("json", "sse"):
            for conns in args.conns:
                for target in ("direct", "gateway"):
                    run = bench.measure(mode, target, conns, args.duration)
                    runs.append(run)
                    print(
                        f"  {mode:4} {target:7} c={conns:<3} {run.rps:9,.0f} req/s  "
                        f"p50 {run.p50_ms:.3f} ms"
                        f"  non-2xx {run.non2xx}  socket errors {run.socket_errors}",
                        file=sys.stderr,
                    )
        modes = ("json", "sse") if args.profile else ()
        profiles = [bench.profile(mode, args.duration) for mode in modes]
        soak = None
        if not args.no_soak:
            print(f"  soak: {args.soak_requests:,} requests …", file=sys.stderr)
            soak = bench.soak()
        body = report(args, info, runs, soak, command, profiles)
        print("\n" + body)
        # Quick looks print only, so they never replace the published figures by accident.
        full = not args.no_soak and args.duration >= 10 and {1, 32} <= set(args.conns)
        if args.no_doc or (args.doc is None and not full):
            print("\ndocs/benchmarks.md left as it is (only a full run or --doc PATH writes it)")
        else:
            args.doc = args.doc or ROOT / "docs" / "benchmarks.md"
            update_doc(args.doc, body)
            print(f"\nwrote {shown(args.doc)}")
        return 0
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; everything it started is stopped", file=sys.stderr)
        sys.exit(130)
