"""The measured operations and the requests each app receives for them.

Both apps are asked for the same work: the same ids, the same filter and order, the same new deal.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from urllib.parse import urlencode

OPERATIONS = ("get", "list", "create")
APPS = ("metacrm", "baseline")
LABELS = {"get": "get by id", "list": "filtered list page", "create": "create"}

ENTITY = "deal"
LIST_FILTER = 'stage == "negotiation" and amount > 5000'
LIST_QUERY = {
    "metacrm": "?" + urlencode({"filter": LIST_FILTER, "sort": "-amount", "limit": "50"}),
    "baseline": "?" + urlencode({"stage": "negotiation", "min_amount": "5000"}),
}
RECORDS = {"metacrm": f"/api/v1/records/{ENTITY}", "baseline": "/deals"}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes | None = None


def new_deal(rng: random.Random, n: int) -> dict[str, object]:
    return {
        "name": f"Bench deal {n}",
        "amount": f"{rng.randint(0, 9_999_999) / 100:.2f}",
        "stage": rng.choice(("qualify", "proposal", "negotiation", "won", "lost")),
        "close_date": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "probability": rng.randint(0, 100),
        "owner_email": f"rep{rng.randint(1, 40)}@example.com",
        "region": rng.choice(("amer", "emea", "apac", "latam")),
        "notes": "Created by the load generator; a short note of ordinary length.",
    }


class Workload:
    """Makes the next request of one operation against one app."""

    def __init__(self, app: str, operation: str, ids: list[str], seed: int) -> None:
        if app not in APPS or operation not in OPERATIONS:
            raise ValueError(f"unknown app or operation: {app} {operation}")
        self.app, self.operation, self.ids = app, operation, ids
        self.rng = random.Random(seed)
        self.created = 0

    def next(self) -> Request:
        base = RECORDS[self.app]
        if self.operation == "get":
            return Request("GET", f"{base}/{self.rng.choice(self.ids)}")
        if self.operation == "list":
            return Request("GET", base + LIST_QUERY[self.app])
        self.created += 1
        body = json.dumps(new_deal(self.rng, self.created)).encode()
        return Request("POST", base, body)
