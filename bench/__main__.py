"""`python -m bench` (what `bench/run` runs): the benchmark, ended cleanly on Ctrl-C."""

import sys

from .main import main

try:
    sys.exit(main())
except KeyboardInterrupt:
    print("interrupted; everything it started is stopped", file=sys.stderr)
    sys.exit(130)
