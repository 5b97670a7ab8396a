"""Entry point for `python -m bench.events`; everything happens in bench/events/run.py."""

import sys

from bench.events.run import main

sys.exit(main())
