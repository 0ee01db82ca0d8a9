"""A private PostgreSQL server for `bench/run --database postgresql`, in a temporary folder.

initdb with trust authentication for 127.0.0.1, a free port, its socket in the
folder, fsync off (the bench measures the gateway, not the disk). `initdb` and
`postgres` refuse to run as root, so as root they run as the `postgres` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .processes import free_port, pinned


def bindir() -> Path:
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(folder) / "initdb").is_file():
            return Path(folder)
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise SystemExit("PostgreSQL server binaries not found: bench/run installs the postgresql package")


def _as_server_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class Postgres:
    def __init__(self, cpu: int | None = None) -> None:
        self.cpu = cpu  # pinned with the load, off the gateway's CPU
        self.bin = bindir()
        # A folder of its own: the server's user must reach it, and the bench's folder is private.
        self.root = Path(tempfile.mkdtemp(prefix="llm-wrapper-bench-pg-"))
        self.data = self.root / "data"
        self.port = free_port()

    def start(self) -> str:
        """Start the server; its DSN."""
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"])
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        start = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                 str(self.root / "server.log"), "-w", "start"]
        self._run(start, cpu=self.cpu)
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(
                _as_server_user([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"]),
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, args: list[str], cpu: int | None = None) -> None:
        done = subprocess.run(
            pinned(cpu, _as_server_user(args)), capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"PostgreSQL: {args[0]} failed:\n{done.stdout}\n{done.stderr}")
