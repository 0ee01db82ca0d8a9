#!/usr/bin/env python3
"""The original monitor command: `python3 monitor/create_monitor.py …` = `llm-wrapper monitors create …`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from llm_wrapper.launcher import run  # noqa: E402

if __name__ == "__main__":
    run(["monitors", "create"], __file__, "create_monitor.py")
