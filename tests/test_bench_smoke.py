"""The benchmark runs: a few seconds of each load and a small soak, so `bench/run` cannot rot.

Nothing here asserts a speed (timings on a shared machine flake); the figures are
bench/run's report, in docs/benchmarks.md. This checks that every part of the run
works end to end: nginx, the bare proxy, the gateway, wrk, the soak's mix, the report.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_short_bench_run_reports_every_load_and_the_soak(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{os.environ.get('PATH', '')}:/usr/sbin"}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--modes", "json,sse,embed", "--duration", "1", "--connections", "4",
         "--soak-requests", "400", "--soak-warmup", "80", "--doc", str(tmp_path / "report.md")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = (tmp_path / "report.md").read_text()
    for load in ("JSON", "SSE", "EMBED"):
        for path in ("bare", "gateway"):
            row = re.search(rf"^\| {load} \| {path} \| 4 \| ([\d,]+) \|", report, re.MULTILINE)
            assert row, f"no {load} {path} row in:\n{report}"
            assert int(row.group(1).replace(",", "")) > 0
    soak = re.search(r"answers by status (.*?), (\d+) unexpected\)", report)
    assert soak, report
    statuses = dict(part.split(": ") for part in soak.group(1).split(", "))
    assert set(statuses) == {"200", "404", "503"} and soak.group(2) == "0"
