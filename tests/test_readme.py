"""The README's front door stays true: its two commands exist and CI runs the test one; its commands parse."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from .gateway_process import BIN

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_quickstart_commands_exist_and_ci_runs_the_test_command():
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    assert "scripts/serve" in quickstart and "scripts/test" in quickstart
    for script in ("scripts/serve", "scripts/test", ".ci/run"):
        assert os.access(ROOT / script, os.X_OK), script
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^exec scripts/test\s*$", ci, re.M)


def test_every_command_in_the_readme_table_parses():
    table = README.split("## Commands", 1)[1].split("\n## ", 1)[0]
    commands = sorted(set(re.findall(r"`(?:llm-wrapper )?((?:tokens |monitors )[a-z]+|serve|usage)\b", table)))
    assert len(commands) >= 9, commands
    for command in commands:
        result = subprocess.run([str(BIN / "llm-wrapper"), *command.split(), "--help"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage:" in result.stdout
