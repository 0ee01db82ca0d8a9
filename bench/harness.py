"""`Bench`: nginx and the gateway started, the wrk scripts written, and each measurement taken."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .load import Run, lua_single, lua_soak, wrk
from .processes import (
    DETACHED,
    Processes,
    cpu_seconds,
    free_port,
    pinned,
    post,
    rss_kib,
    wait_http,
    worker_pid,
)
from .pyspy import summarise_profile
from .upstream import (
    CHUNKS,
    EMBED_MODEL,
    ERROR_MODEL,
    FAILOVER_MODEL,
    JSON_MODEL,
    NGINX_CONF,
    SSE_MODEL,
    completion_body,
    embedding_body,
    embedding_request,
    request_body,
    stream_body,
)

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Bench:
    args: argparse.Namespace
    work: Path
    procs: Processes
    nginx_port: int = 0
    gateway_port: int = 0
    bare_port: int = 0
    nginx: subprocess.Popen[bytes] | None = None
    gateway: subprocess.Popen[bytes] | None = None
    bare: subprocess.Popen[bytes] | None = None
    single: subprocess.Popen[bytes] | None = None  # with --workers N > 1: a one-worker gateway too
    single_port: int = 0
    database_url: str = ""
    token: str = ""
    scripts: dict[str, Path] = field(default_factory=dict)

    @property
    def load_cpu(self) -> int | None:
        return self.args.load_cpu if self.args.pin else None

    @property
    def server_cpus(self) -> str | None:
        """Where the gateway (and the bare proxy) run: one CPU, or every CPU for several workers."""
        if not self.args.pin:
            return None
        return str(self.args.gateway_cpu) if self.args.workers == 1 else f"0-{(os.cpu_count() or 2) - 1}"

    def start_nginx(self) -> None:
        folder = self.work / "nginx"
        folder.mkdir()
        self.nginx_port = free_port()
        conf = folder / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                dir=folder, port=self.nginx_port, json=completion_body(), sse=stream_body(),
                embed=embedding_body(),
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
                "supported_models": [JSON_MODEL, EMBED_MODEL],  # the same nginx folder serves both
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
        if self.args.failover:
            # Each model's first deployment refuses connections (a port nothing listens on): every
            # request that reaches it fails over to the working one, until its cooldown skips it.
            for key in list(config):
                config[f"{key}_dead"] = {
                    **config[key], "name": f"{config[key]['name']} (down)",
                    "base_url": f"http://127.0.0.1:{free_port()}/v1", "priority": 0,
                }
                config[key]["priority"] = 1
        # The soak's failovers and errors (bench/load.py lua_soak): a model whose first deployment
        # refuses connections, and one whose only provider answers 503. Short cooldowns, so the
        # dead deployment is tried (and failed over from) again and again through the soak.
        config["bench_json"]["supported_models"].append(FAILOVER_MODEL)
        config["bench_json"].setdefault("priority", 1)
        config["bench_dead"] = {
            **config["bench_json"], "name": "Bench down", "priority": 0,
            "base_url": f"http://127.0.0.1:{free_port()}/v1", "supported_models": [FAILOVER_MODEL],
        }
        config["bench_down"] = {
            **config["bench_json"], "name": "Bench 503", "base_url": f"{upstream}/down/v1",
            "supported_models": [ERROR_MODEL],
        }
        config["routing"] = {"cooldown_seconds": 1, "allowed_fails": 3}
        (folder / "config.json").write_text(json.dumps(config, indent=2))
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url or f"sqlite:///{folder / 'gateway.db'}",
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
        self.gateway = self._serve("gateway", folder, env, self.gateway_port, self.args.workers, self.server_cpus)
        if self.args.workers > 1:
            # The one-worker gateway on one CPU, beside it, for the scaling ratio (same store and token).
            self.single_port = free_port()
            self.single = self._serve(
                "gateway1", folder, env, self.single_port, 1, str(self.args.gateway_cpu) if self.args.pin else None
            )

    def _serve(
        self, name: str, folder: Path, env: dict[str, str], port: int, workers: int, cpus: str | None
    ) -> subprocess.Popen[bytes]:
        log = folder / f"{name}.log"
        command = [str(BIN / "llm-wrapper"), "serve", "--host", "127.0.0.1", "--port", str(port)]
        process = self.procs.start(
            name, pinned(cpus, [*command, "--workers", str(workers)]), log, env=env, cwd=folder
        )
        wait_http(f"http://127.0.0.1:{port}/healthz", process, log)
        return process

    def start_bare(self) -> None:
        """The reference proxy (bench/bare.py), pinned where the gateway is."""
        folder = self.work / "bare"
        folder.mkdir()
        self.bare_port = free_port()
        log = folder / "server.log"
        self.bare = self.procs.start(
            "bare proxy",
            pinned(
                self.server_cpus,
                [
                    sys.executable, "-m", "bench.bare", "--port", str(self.bare_port),
                    "--upstream", f"http://127.0.0.1:{self.nginx_port}",
                ],
            ),
            log,
            cwd=ROOT,
        )
        wait_http(f"http://127.0.0.1:{self.bare_port}/", self.bare, log)

    def write_scripts(self) -> None:
        for mode, body in (
            ("json", request_body(JSON_MODEL, False)),
            ("sse", request_body(SSE_MODEL, True)),
            ("embed", embedding_request()),
        ):
            path = self.work / f"{mode}.lua"
            path.write_text(lua_single(body, self.token))
            self.scripts[mode] = path

    def url(self, mode: str, target: str) -> str:
        endpoint = "embeddings" if mode == "embed" else "chat/completions"
        if target == "direct":
            return f"http://127.0.0.1:{self.nginx_port}/{'json' if mode == 'embed' else mode}/v1/{endpoint}"
        port = {"bare": self.bare_port, "gateway1": self.single_port}.get(target, self.gateway_port)
        return f"http://127.0.0.1:{port}/v1/{endpoint}"

    def check_answers(self) -> None:
        """One request of each kind first: a broken server fails loudly, not as 500s in a table."""
        for target in ("gateway", "bare"):
            url = self.url("json", target)
            status, body = post(url, request_body(JSON_MODEL, False), self.token)
            if status != 200 or json.loads(body).get("object") != "chat.completion":
                raise SystemExit(f"the {target}'s JSON answer is wrong ({status}): {body[:500]!r}")
            if "embed" in self.args.mode_list:
                status, body = post(self.url("embed", target), embedding_request(), self.token)
                if status != 200 or json.loads(body).get("object") != "list":
                    raise SystemExit(f"the {target}'s embeddings answer is wrong ({status}): {body[:500]!r}")
            status, body = post(url, request_body(SSE_MODEL, True), self.token)
            chunks = body.count(b'"chat.completion.chunk"')
            if status != 200 or chunks != CHUNKS or not body.rstrip().endswith(b"data: [DONE]"):
                raise SystemExit(
                    f"the {target}'s stream is wrong ({status}, {chunks} chunks): {body[:500]!r}"
                )

    def measure(self, mode: str, target: str, connections: int, seconds: float) -> Run:
        assert self.nginx and self.gateway and self.bare
        server = {"bare": self.bare, "gateway1": self.single}.get(target) or self.gateway
        gw_before, ng_before = cpu_seconds(server.pid), cpu_seconds(self.nginx.pid)
        result = wrk(
            self.scripts[mode], self.url(mode, target), connections, seconds, self.load_cpu
        )
        gw_cpu = cpu_seconds(server.pid) - gw_before
        ng_cpu = cpu_seconds(self.nginx.pid) - ng_before
        n = max(1, result["requests"])
        return Run(
            mode=mode,
            target=target,
            connections=connections,
            requests=int(result["requests"]),
            rps=result["requests"] / (result["duration_us"] / 1e6),
            p50_ms=result["p50"] / 1000,
            p90_ms=result["p90"] / 1000,
            p99_ms=result["p99"] / 1000,
            non2xx=int(max(result["non2xx"], result["status"])),
            socket_errors=int(result["socket_errors"]),
            gateway_cpu_ms=gw_cpu * 1000 / n if target != "direct" else None,
            nginx_cpu_ms=ng_cpu * 1000 / n,
        )

    def profile(self, mode: str, seconds: float) -> dict[str, object]:
        """A py-spy record of the gateway during one run (JSON or SSE) at `--profile-connections`."""
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
            run = self.measure(mode, "gateway", self.args.profile_connections, seconds)
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
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(raw, out.with_name(f"{out.stem}-{mode}{out.suffix}"))
        return {"mode": mode, "run": run, **summarise_profile(raw.read_text())}

    def soak(self) -> dict[str, Any]:
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
        statuses = json.loads(soak_marker.read_text() or "{}") if soak_marker.exists() else {}
        expected = {"200", "404", "503"}  # answers, the unknown model, the provider that is down
        return {
            "statuses": statuses,
            "unexpected": sum(n for code, n in statuses.items() if code not in expected)
            + soaked["socket_errors"],
            "warmup_requests": warmed["requests"],
            "requests": soaked["requests"],
            "seconds": elapsed,
            "errors": soaked["non2xx"] + soaked["socket_errors"] + soaked["status"],
            "rss_before_kib": before,
            "rss_after_kib": after,
            "rss_pct": (after - before) * 100 / before,
        }
