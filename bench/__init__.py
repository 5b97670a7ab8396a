"""The metacrm benchmark: metacrm against a hand-written Starlette + SQLAlchemy baseline.

Run it with `make bench` or `python -m bench --help`; bench/README.md explains the figures.
"""
