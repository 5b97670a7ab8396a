"""Entry point for `python -m bench.rules`; everything happens in bench/rules/run.py."""

import sys

from bench.rules.run import main

sys.exit(main())
