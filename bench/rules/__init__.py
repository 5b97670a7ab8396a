"""The rule-language benchmark: compiled rules against hand-written Python, and compile time.

Run it with `python -m bench.rules` (or as part of `make bench`); bench/README.md explains it.
"""
