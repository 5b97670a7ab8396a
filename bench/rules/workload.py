"""What the rules benchmark evaluates: the deals, the 6-clause rule with its hand-written twin,
and the 30-clause expression whose compile time is measured."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from bench.baseline_app import REGIONS, STAGES

SEED = 20240601
USER = {"id": "u-bench", "role": "admin", "org_unit": "emea"}
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

# Six clauses over five value types: decimal, text (picklist and free text), integer, date, and a
# negated membership test.
RULE = (
    'amount > 1000 and stage != "lost" and probability >= 20 and close_date >= "2025-01-01"'
    ' and name contains "ra" and not (region in ["latam", "apac"])'
)
_CUTOFF = date(2025, 1, 1)
_EXCLUDED_REGIONS = ("latam", "apac")


def by_hand(record: dict[str, Any]) -> bool:
    """RULE as someone would write it in Python. The data has no nulls, so SQL's null rules
    (a comparison with null is not true) never come into play and need no code here."""
    return (
        record["amount"] > 1000
        and record["stage"] != "lost"
        and record["probability"] >= 20
        and record["close_date"] >= _CUTOFF
        and "ra" in record["name"]
        and record["region"] not in _EXCLUDED_REGIONS
    )


_WORDS = ("acme", "globex", "initech", "umbrella", "stark", "wayne", "tyrell", "soylent", "hooli")
_SUFFIXES = ("renewal", "expansion", "pilot", "upgrade", "trial", "framework", "migration")


def records(count: int, seed: int = SEED) -> list[dict[str, Any]]:
    """`count` deals with every field set (no nulls), the Python types the record service holds:
    Decimal amounts, date close dates, int probabilities, str text and picklists."""
    rng = random.Random(seed)
    first_day = date(2024, 1, 1)
    days = [first_day + timedelta(days=n) for n in range(901)]
    notes = [" ".join(rng.choices(_WORDS, k=rng.randint(4, 20))) for _ in range(1000)]
    rows = []
    for n in range(count):
        rows.append(
            {
                "name": f"{rng.choice(_WORDS).title()} {rng.choice(_SUFFIXES)} {n}",
                "amount": Decimal(rng.randint(0, 10_000_000)).scaleb(-2),
                "stage": rng.choice(STAGES),
                "close_date": rng.choice(days),
                "probability": rng.randint(0, 100),
                "owner_email": f"rep{rng.randint(1, 40)}@example.com",
                "region": rng.choice(REGIONS),
                "notes": rng.choice(notes),
            }
        )
    return rows


# Ten kinds of clause; three rounds of them with different constants make the 30 clauses.
_CLAUSES = (
    "amount > {n}",
    'stage == "{stage}"',
    "probability >= {p}",
    'close_date < "2026-{month:02d}-01"',
    'name contains "{word}"',
    'region in ["amer", "{region}"]',
    'lower(owner_email) endswith "@example.com"',
    "notes is not blank",
    "abs(amount - {n}) < 500",
    "year(close_date) == {year}",
)


def long_expression(rounds: int = 3) -> str:
    """30 clauses (with rounds=3): groups of five joined by `and`, the groups by `or`."""
    clauses = []
    for r in range(rounds):
        for template in _CLAUSES:
            clauses.append(
                template.format(
                    n=1000 * (r + 1),
                    stage=STAGES[r % len(STAGES)],
                    p=10 * (r + 2),
                    month=r + 3,
                    word=_WORDS[r],
                    region=REGIONS[r % len(REGIONS)],
                    year=2024 + r,
                )
            )
    groups = [clauses[i : i + 5] for i in range(0, len(clauses), 5)]
    # One group negated, so `not` over a parenthesised group is part of the work too.
    parts = [f"({' and '.join(group)})" for group in groups]
    parts[-1] = f"not {parts[-1]}"
    return " or ".join(parts)
