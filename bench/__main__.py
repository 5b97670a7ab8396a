"""Entry point for `python -m bench` (and `make bench`).

Everything happens in bench/run.py; this only hands over the command line and exit status.
"""

import sys

from bench.run import main

sys.exit(main())
