"""Entry point for `python -m bench.permissions`; everything happens in bench/permissions/run.py."""

import sys

from bench.permissions.run import main

sys.exit(main())
