"""The real gateway as a separate process (`llm-wrapper serve`), the way users run it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from .fakes.server import free_port

BIN = Path(sys.executable).parent


class GatewayProcess:
    """`start()` waits until `/healthz` answers; `stop()` sends SIGTERM and waits."""

    def __init__(
        self,
        workdir: Path,
        env: dict[str, str],
        *,
        config: dict[str, Any] | None = None,
        workers: int = 1,
        port: int | None = None,
        scheme: str = "http",
        command: list[str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.workers = workers
        self.command = command or [str(BIN / "llm-wrapper"), "serve"]  # or the original `llm-wrapper.py`
        self.env = {**os.environ, **env}
        if config is not None:
            path = workdir / "config.json"
            path.write_text(json.dumps(config))
            self.env["LLM_WRAPPER_CONFIG"] = str(path)
        self.env.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'gateway.db'}")
        self.env.setdefault("LLM_WRAPPER_LOG_FILE", str(workdir / "llm_proxy.log"))
        self.env.setdefault("LLM_WRAPPER_ENV_FILE", str(workdir / ".env"))
        self.log_path = workdir / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `llm-wrapper ARGS` with this gateway's environment."""
        result = subprocess.run(
            [str(BIN / "llm-wrapper"), *args], env=self.env, cwd=self.workdir,
            capture_output=True, text=True, timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"llm-wrapper {' '.join(args)} failed: {result.stderr}")
        return result

    def add_token(self, username: str = "alice", rate_limit: int = 1000, expiry: str = "2099-01-01 00:00:00") -> str:
        out = self.cli("tokens", "add", "--username", username, "--expiry", expiry,
                       "--rate-limit", str(rate_limit), "--json")
        return json.loads(out.stdout)["token"]

    def start(self, timeout: float = 30) -> GatewayProcess:
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [*self.command, "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", str(self.workers)],
                env=self.env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1, verify=False).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"gateway did not start in {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 15) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)
