"""The original command lines (`python3 llm-wrapper.py`, `python3 tokens/manage_tokens.py`,
`python3 monitor/create_monitor.py`), run from a checkout with any `python3`.

Stdlib only until the package's dependencies are known to import: when they do
not (a system Python outside the virtual environment), the command re-runs
itself with the checkout's `.venv` Python, which `scripts/serve` creates.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(prefix: list[str], script: str, prog_name: str) -> None:
    try:
        from .cli import main
    except ImportError as exc:
        venv_python = ROOT / ".venv" / "bin" / "python"
        in_venv = Path(sys.prefix).resolve() == (ROOT / ".venv").resolve()
        if venv_python.exists() and not in_venv:
            os.execv(str(venv_python), [str(venv_python), script, *sys.argv[1:]])
        sys.exit(
            f"{prog_name}: the package's dependencies are not installed ({exc.name} is missing): "
            "run scripts/serve once, or `pip install .`"
        )
    main([*prefix, *sys.argv[1:]], prog_name=prog_name)
