"""Load from wrk: the Lua scripts it runs, one run's figures, and `Run`, a row of the table."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .processes import DETACHED, pinned
from .upstream import ERROR_MODEL, FAILOVER_MODEL, JSON_MODEL, SSE_MODEL, request_body

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
    """JSON, streams, failovers and errors in turn; after `limit` responses, stop and touch `marker`.

    Of every eight requests: three JSON, two streams, one that fails over (its model's first
    deployment refuses connections), one a provider answers 503 (retried, then the error, given
    back), and one for an unknown model (404).
    """
    bodies = [
        request_body(JSON_MODEL, False), request_body(SSE_MODEL, True), request_body(FAILOVER_MODEL, False),
        request_body(JSON_MODEL, False), request_body(ERROR_MODEL, False), request_body(SSE_MODEL, True),
        request_body(JSON_MODEL, False), request_body("no-such-model", False),
    ]
    formatted = ",\n          ".join(f"wrk.format(\"POST\", nil, h, [[{body}]])" for body in bodies)
    return (
        f"""
local reqs, n, limit = nil, 0, {limit}
init = function(args)
  local h = {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer {token}"}}
  reqs = {{{formatted}}}
end
request = function()
  n = n + 1
  return reqs[n % {len(bodies)} + 1]
end
local seen, statuses = 0, {{}}
response = function(status, headers, body)
  seen = seen + 1
  statuses[status] = (statuses[status] or 0) + 1
  if seen == limit then
    local parts = {{}}
    for code, count in pairs(statuses) do parts[#parts + 1] = string.format('"%d":%d', code, count) end
    local f = io.open("{marker}", "w")
    if f then f:write("{{" .. table.concat(parts, ",") .. "}}"); f:close() end
    wrk.thread:stop()
  end
end
"""
        + LUA_DONE
    )



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
