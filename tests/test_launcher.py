"""The original command lines work with a Python outside the virtual environment (they re-run with it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE_PYTHON = Path(sys.base_prefix) / "bin" / "python3"


def test_manage_tokens_from_a_python_outside_the_venv(tmp_path):
    assert Path(sys.prefix).resolve() != Path(sys.base_prefix).resolve(), "the tests run in a virtual environment"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'launch.db'}"}
    env.pop("VIRTUAL_ENV", None)
    script = str(ROOT / "tokens" / "manage_tokens.py")
    added = subprocess.run(
        [str(BASE_PYTHON), script, "add", "--username", "orig", "--expiry", "2030-01-01 00:00:00",
         "--rate-limit", "5", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["username"] == "orig"
    listed = subprocess.run([str(BASE_PYTHON), script, "list", "--json"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert [row["username"] for row in json.loads(listed.stdout)] == ["orig"]
