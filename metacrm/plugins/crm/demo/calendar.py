"""When things happen in the demo year: working hours in China (09:00 to 18:00, Monday to Friday,
UTC+8) over the year up to `now`. Every moment is a UTC datetime; moments of one record follow
each other strictly, so its steps keep their order when all steps are sorted by time."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

LOCAL = timezone(timedelta(hours=8))
OPENS, CLOSES = 9, 18
YEAR = timedelta(days=365)
# The least time between two steps of one record.
TICK = timedelta(minutes=1)


class Calendar:
    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now = now
        self.start = now - YEAR

    def snap(self, moment: datetime) -> datetime:
        """The moment if it falls in working hours, else a little after the next opening."""
        local = moment.astimezone(LOCAL)
        if local.weekday() < 5 and OPENS <= local.hour < CLOSES:
            return moment
        day = local.replace(hour=OPENS, minute=0, second=0, microsecond=0)
        if local.hour >= OPENS:
            day += timedelta(days=1)
        while day.weekday() >= 5:
            day += timedelta(days=1)
        opened = day + timedelta(minutes=self.rng.uniform(0, 90))
        return opened.astimezone(UTC)

    def within(self, low: datetime, high: datetime) -> datetime | None:
        """A working moment between `low` and `high` (and not after now); None when there is
        no room (a few tries)."""
        high = min(high, self.now)
        if high <= low:
            return None
        span = (high - low).total_seconds()
        for _ in range(8):
            moment = self.snap(low + timedelta(seconds=self.rng.uniform(0, span)))
            if low < moment <= high:
                return moment
        return None

    def during_year(self, earliest_day: float = 0.0, latest_day: float = 365.0) -> datetime:
        """A working moment between those days of the year (day 0 a year ago); never after
        now."""
        low = self.start + timedelta(days=earliest_day)
        high = self.start + timedelta(days=latest_day)
        return self.within(low, high) or min(high, self.now) - timedelta(minutes=5)

    def after(self, moment: datetime, low_hours: float, high_hours: float) -> datetime:
        """A working moment some hours after `moment` (possibly after now: the caller stops
        a record's story there)."""
        later = moment + timedelta(hours=self.rng.uniform(low_hours, high_hours))
        return max(self.snap(later), moment + TICK)

    def days_after(self, moment: datetime, low_days: float, high_days: float) -> datetime:
        return self.after(moment, low_days * 24, high_days * 24)
