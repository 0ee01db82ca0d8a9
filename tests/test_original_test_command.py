"""The original design's test command keeps working: `python -m unittest tests/test-server.py`, run from the
repository root with the interpreter running these tests (the checkout's .venv under scripts/test).

pytest does not collect tests/test-server.py itself (the name does not match `test_*.py`), so its
end-to-end smoke check runs once, here, exactly as a user would type it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_python_m_unittest_tests_test_server_py_passes() -> None:
    result = subprocess.run([sys.executable, "-m", "unittest", "tests/test-server.py"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ran 2 tests" in result.stderr and result.stderr.rstrip().endswith("OK"), result.stderr

