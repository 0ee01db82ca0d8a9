#!/usr/bin/env python3
"""`python3 llm-wrapper.py` starts the gateway, as `llm-wrapper serve` does (arguments pass through)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from llm_wrapper.launcher import run  # noqa: E402

if __name__ == "__main__":
    run(["serve"], __file__, "llm-wrapper.py")
