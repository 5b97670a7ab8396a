"""The permissions benchmark: what the `subordinates` data scope costs a manager's list page on
PostgreSQL, against the same page listed without a permission condition (an admin).

Run it with `python -m bench.permissions` (or `python -m bench --permissions-only`); it is not
part of `make bench` or `make test`. bench/README.md explains it.
"""
