#!/usr/bin/env python3
"""The original token command: `python3 tokens/manage_tokens.py add|list|delete …` = `llm-wrapper tokens …`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from llm_wrapper.launcher import run  # noqa: E402

if __name__ == "__main__":
    run(["tokens"], __file__, "manage_tokens.py")
