"""The events benchmark: how long a committed record change takes to reach a webhook receiver, and
how many deliveries a second the platform makes, with one Celery worker and embedded, against a
plain POST loop to the same receiver.

Run it with `python -m bench.events` (or `python -m bench --events-only`); it is not part of
`make bench` or `make test`. bench/README.md explains it.
"""
