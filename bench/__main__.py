"""Entry point for `python -m bench` (and `make bench`): the HTTP benchmark, then the rules one.

The HTTP run lives in bench/run.py and the rules run in bench/rules/run.py; this only picks which
to run, hands over the command line and combines the exit statuses. The permissions benchmark
(bench/permissions/run.py, PostgreSQL) runs only when asked for, with --permissions-only, and the
events benchmark (bench/events/run.py: webhook latency and throughput) with --events-only.
"""

import argparse
import sys

from bench import run
from bench.events import run as events_run
from bench.permissions import run as permissions_run
from bench.rules import run as rules_run

# Worst first: an interrupted or broken run outranks a missed goal, which outranks success.
_SEVERITY = (130, 1, 2, 0)


def main() -> int:
    picker = argparse.ArgumentParser(prog="python -m bench", add_help=False)
    only = picker.add_mutually_exclusive_group()
    only.add_argument("--http-only", action="store_true")
    only.add_argument("--rules-only", action="store_true")
    only.add_argument("--permissions-only", action="store_true")
    only.add_argument("--events-only", action="store_true")
    picked, rest = picker.parse_known_args()
    if picked.permissions_only:
        return permissions_run.main(rest)
    if picked.events_only:
        return events_run.main(rest)
    wants_help = "-h" in rest or "--help" in rest
    if wants_help and not picked.rules_only:
        print("--http-only / --rules-only run one of the two benchmarks (default: both);")
        print("the options below are the HTTP benchmark's (`python -m bench.rules --help`).")
        print(
            "--permissions-only runs the PostgreSQL one (`python -m bench.permissions --help`).\n"
        )
    statuses = []
    if not picked.rules_only:
        statuses.append(run.main(rest))
        if statuses[-1] == 130:
            return 130
    if not picked.http_only:
        if statuses:
            print()
        statuses.append(rules_run.main(["--help"] if wants_help else []))
    return min(statuses, key=lambda status: _SEVERITY.index(status) if status in _SEVERITY else 1)


sys.exit(main())
