"""SQL pieces that SQLite and PostgreSQL spell differently, as small compiled constructs.

SQLite keeps dates as 'YYYY-MM-DD' text and datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' UTC text.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Date, DateTime, Numeric, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

# round() keeps between 0 and this many decimal places, SQLite's own limits.
MAX_ROUND_PLACES = 30
# The dates both databases and Python share; add_days() or add_hours() outside them give null.
FIRST_DATE, LAST_DATE = "0001-01-01", "9999-12-31"


def _args(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> list[str]:
    return [compiler.process(clause, **kw) for clause in element.clauses]


def _is_timestamp(element: FunctionElement[Any]) -> bool:
    (clause, *_) = element.clauses
    return isinstance(clause.type, DateTime)


class DateOf(FunctionElement[Any]):
    """The UTC calendar date of a datetime."""

    type = Date()
    name = "mc_date_of"
    inherit_cache = True


@compiles(DateOf)
def _date_of(element: DateOf, compiler: SQLCompiler, **kw: Any) -> str:
    (arg,) = _args(element, compiler, **kw)
    return f"substr({arg}, 1, 10)"


@compiles(DateOf, "postgresql")
def _date_of_pg(element: DateOf, compiler: SQLCompiler, **kw: Any) -> str:
    (arg,) = _args(element, compiler, **kw)
    if _is_timestamp(element):
        return f"CAST(({arg}) AT TIME ZONE 'UTC' AS DATE)"
    return f"CAST({arg} AS DATE)"


class _DatePart(FunctionElement[Any]):
    type = BigInteger()
    inherit_cache = True
    part = ""
    # Where the part sits in SQLite's ISO text: (start, length).
    text_slice = (0, 0)


class YearOf(_DatePart):
    name = "mc_year_of"
    inherit_cache = True
    part, text_slice = "YEAR", (1, 4)


class MonthOf(_DatePart):
    name = "mc_month_of"
    inherit_cache = True
    part, text_slice = "MONTH", (6, 2)


class DayOf(_DatePart):
    name = "mc_day_of"
    inherit_cache = True
    part, text_slice = "DAY", (9, 2)


def _date_part(element: _DatePart, compiler: SQLCompiler, **kw: Any) -> str:
    (arg,) = _args(element, compiler, **kw)
    start, length = element.text_slice
    return f"CAST(substr({arg}, {start}, {length}) AS INTEGER)"


def _date_part_pg(element: _DatePart, compiler: SQLCompiler, **kw: Any) -> str:
    (arg,) = _args(element, compiler, **kw)
    source = f"({arg}) AT TIME ZONE 'UTC'" if _is_timestamp(element) else f"({arg})"
    return f"CAST(EXTRACT({element.part} FROM {source}) AS INTEGER)"


for _part in (YearOf, MonthOf, DayOf):
    compiles(_part)(_date_part)
    compiles(_part, "postgresql")(_date_part_pg)


class DateStart(FunctionElement[Any]):
    """A date as the datetime of its first instant (UTC), to compare dates with datetimes."""

    type = DateTime(timezone=True)
    name = "mc_date_start"
    inherit_cache = True


@compiles(DateStart)
def _date_start(element: DateStart, compiler: SQLCompiler, **kw: Any) -> str:
    (arg,) = _args(element, compiler, **kw)
    return f"({arg} || ' 00:00:00.000000')"


@compiles(DateStart, "postgresql")
def _date_start_pg(element: DateStart, compiler: SQLCompiler, **kw: Any) -> str:
    (arg,) = _args(element, compiler, **kw)
    return f"(CAST({arg} AS TIMESTAMP) AT TIME ZONE 'UTC')"


class ToDecimal(FunctionElement[Any]):
    """A number as a fractional one, so integer division does not truncate."""

    type = Numeric()
    name = "mc_to_decimal"
    inherit_cache = True


@compiles(ToDecimal)
def _to_decimal(element: ToDecimal, compiler: SQLCompiler, **kw: Any) -> str:
    (arg,) = _args(element, compiler, **kw)
    return f"CAST({arg} AS REAL)"


@compiles(ToDecimal, "postgresql")
def _to_decimal_pg(element: ToDecimal, compiler: SQLCompiler, **kw: Any) -> str:
    (arg,) = _args(element, compiler, **kw)
    return f"CAST({arg} AS NUMERIC)"


class RoundNumber(FunctionElement[Any]):
    """round(x, places), half away from zero on both databases."""

    type = Numeric()
    name = "mc_round"
    inherit_cache = True


@compiles(RoundNumber)
def _round(element: RoundNumber, compiler: SQLCompiler, **kw: Any) -> str:
    number, places = _args(element, compiler, **kw)
    return f"round({number}, {places})"


@compiles(RoundNumber, "postgresql")
def _round_pg(element: RoundNumber, compiler: SQLCompiler, **kw: Any) -> str:
    # round(double precision, int) does not exist, and numeric rounds half away from zero.
    # Places are clamped to 0..30 as SQLite does (a negative count rounds to a whole number).
    number, places = _args(element, compiler, **kw)
    clamped = f"CAST(LEAST(GREATEST({places}, 0), {MAX_ROUND_PLACES}) AS INTEGER)"
    return f"round(CAST({number} AS NUMERIC), {clamped})"


class OrderedText(FunctionElement[Any]):
    """Text that orders by code point, as SQLite's default collation and Python do."""

    type = String()
    name = "mc_ordered_text"
    inherit_cache = True


@compiles(OrderedText)
def _ordered_text(element: OrderedText, compiler: SQLCompiler, **kw: Any) -> str:
    (arg,) = _args(element, compiler, **kw)
    return arg


@compiles(OrderedText, "postgresql")
def _ordered_text_pg(element: OrderedText, compiler: SQLCompiler, **kw: Any) -> str:
    (arg,) = _args(element, compiler, **kw)
    return f'({arg}) COLLATE "C"'


class _CaseMapped(FunctionElement[Any]):
    """lower(text) / upper(text) by the database's own locale, whatever collation the text
    carries: under COLLATE "C" (an OrderedText, as min() and max() give) PostgreSQL maps the
    case of ASCII letters only, where Python maps every letter. One class per function, so
    the statement cache tells them apart."""

    type = String()
    inherit_cache = True
    change = ""


class LowerCase(_CaseMapped):
    name = "mc_lower_case"
    inherit_cache = True
    change = "lower"


class UpperCase(_CaseMapped):
    name = "mc_upper_case"
    inherit_cache = True
    change = "upper"


def _case_mapped(element: _CaseMapped, compiler: SQLCompiler, **kw: Any) -> str:
    (arg,) = _args(element, compiler, **kw)
    return f"{element.change}({arg})"


def _case_mapped_pg(element: _CaseMapped, compiler: SQLCompiler, **kw: Any) -> str:
    (arg,) = _args(element, compiler, **kw)
    return f'{element.change}(({arg}) COLLATE "default")'


for _case_kind in (LowerCase, UpperCase):
    compiles(_case_kind)(_case_mapped)
    compiles(_case_kind, "postgresql")(_case_mapped_pg)


class _Extreme(FunctionElement[Any]):
    """min(a, b, ...) / max(...) of one value type; null when any argument is null."""

    inherit_cache = True
    aggregate = ""


class SmallestOf(_Extreme):
    name = "mc_smallest_of"
    inherit_cache = True
    aggregate = "min"


class LargestOf(_Extreme):
    name = "mc_largest_of"
    inherit_cache = True
    aggregate = "max"


def _extreme(element: _Extreme, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite's multi-argument min()/max() already give null when an argument is null.
    return f"{element.aggregate}({', '.join(_args(element, compiler, **kw))})"


def _extreme_pg(element: _Extreme, compiler: SQLCompiler, **kw: Any) -> str:
    # LEAST/GREATEST skip nulls; aggregating the arguments keeps each one written once, so
    # nested calls do not grow the statement, and the count finds a null among them.
    args = _args(element, compiler, **kw)
    rows = ", ".join(f"({arg})" for arg in args)
    return (
        f"(SELECT {element.aggregate}(mc_v) FROM (VALUES {rows}) AS mc_e(mc_v) "
        f"HAVING count(mc_v) = {len(args)})"
    )


for _extreme_kind in (SmallestOf, LargestOf):
    compiles(_extreme_kind)(_extreme)
    compiles(_extreme_kind, "postgresql")(_extreme_pg)


class DaysBetween(FunctionElement[Any]):
    """Whole days from the first date to the second (both already dates)."""

    type = BigInteger()
    name = "mc_days_between"
    inherit_cache = True


@compiles(DaysBetween)
def _days_between(element: DaysBetween, compiler: SQLCompiler, **kw: Any) -> str:
    first, second = _args(element, compiler, **kw)
    return f"CAST(julianday({second}) - julianday({first}) AS INTEGER)"


@compiles(DaysBetween, "postgresql")
def _days_between_pg(element: DaysBetween, compiler: SQLCompiler, **kw: Any) -> str:
    first, second = _args(element, compiler, **kw)
    return f"CAST(({second}) - ({first}) AS BIGINT)"


class AddDays(FunctionElement[Any]):
    """A date or datetime moved by whole days; null when it would leave years 1 to 9999."""

    inherit_cache = True
    name = "mc_add_days"


class AddDaysToDate(AddDays):
    type = Date()
    name = "mc_add_days_to_date"
    inherit_cache = True


class AddDaysToDatetime(AddDays):
    type = DateTime(timezone=True)
    name = "mc_add_days_to_datetime"
    inherit_cache = True


# The value and the day count are each written once, in an inner select, so nested calls
# do not grow the statement.
def _add_days(element: AddDays, compiler: SQLCompiler, **kw: Any) -> str:
    value, days = _args(element, compiler, **kw)
    shifted = "date(substr(mc_v, 1, 10), printf('%+d days', mc_n))"
    tail = " || substr(mc_v, 11)" if isinstance(element, AddDaysToDatetime) else ""
    return (
        f"(SELECT CASE WHEN mc_d >= '{FIRST_DATE}' THEN mc_d{tail} END FROM "
        f"(SELECT mc_v, CASE WHEN mc_n IS NOT NULL THEN {shifted} END AS mc_d FROM "
        f"(SELECT {value} AS mc_v, {days} AS mc_n)))"
    )


def _add_days_pg(element: AddDays, compiler: SQLCompiler, **kw: Any) -> str:
    value, days = _args(element, compiler, **kw)
    if isinstance(element, AddDaysToDatetime):
        day, result_day = (
            "CAST(mc_v AT TIME ZONE 'UTC' AS DATE)",
            "CAST(mc_r AT TIME ZONE 'UTC' AS DATE)",
        )
    else:
        day, result_day = "mc_v", "mc_r"
    # The count is clamped to just past either end of the years 1 to 9999, so the sum never
    # leaves what PostgreSQL holds (GREATEST/LEAST skip nulls, hence the explicit null tests:
    # without a value there are no bounds, and an unclamped count overflows).
    count = (
        f"CAST(LEAST(GREATEST(mc_n, DATE '{FIRST_DATE}' - {day} - 1), "
        f"DATE '{LAST_DATE}' - {day} + 1) AS INTEGER)"
    )
    if isinstance(element, AddDaysToDatetime):
        # A day is 24 hours in UTC; an interval of '1 day' would follow the session's zone.
        moved = f"mc_v + CAST({count} AS DOUBLE PRECISION) * INTERVAL '24 hours'"
    else:
        moved = f"mc_v + {count}"
    return (
        f"(SELECT CASE WHEN {result_day} BETWEEN DATE '{FIRST_DATE}' AND DATE '{LAST_DATE}' "
        f"THEN mc_r END FROM (SELECT CASE WHEN mc_n IS NOT NULL AND mc_v IS NOT NULL "
        f"THEN {moved} END AS mc_r "
        f"FROM (SELECT {value} AS mc_v, {days} AS mc_n) AS mc_a) AS mc_b)"
    )


for _shift_kind in (AddDaysToDate, AddDaysToDatetime):
    compiles(_shift_kind)(_add_days)
    compiles(_shift_kind, "postgresql")(_add_days_pg)


class AddHours(FunctionElement[Any]):
    """A datetime moved by whole hours; null when it would leave years 1 to 9999."""

    type = DateTime(timezone=True)
    name = "mc_add_hours"
    inherit_cache = True


# Far enough to leave the years 1 to 9999 from any datetime in them, near enough for SQLite's
# date arithmetic to stay exact (about 10,000 years of hours).
_HOURS_BOUND = 10_000 * 366 * 24


@compiles(AddHours)
def _add_hours(element: AddHours, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite's datetime() gives whole seconds: the fraction is carried over from the text. Past
    # year 9999 it gives null; before year 1 a year the lower bound refuses.
    value, hours = _args(element, compiler, **kw)
    count = f"max(min(mc_n, {_HOURS_BOUND}), -{_HOURS_BOUND})"
    shifted = f"datetime(substr(mc_v, 1, 19), printf('%+d hours', {count}))"
    return (
        f"(SELECT CASE WHEN mc_d >= '{FIRST_DATE}' THEN mc_d || substr(mc_v, 20) END FROM "
        f"(SELECT mc_v, CASE WHEN mc_n IS NOT NULL THEN {shifted} END AS mc_d FROM "
        f"(SELECT {value} AS mc_v, {hours} AS mc_n)))"
    )


@compiles(AddHours, "postgresql")
def _add_hours_pg(element: AddHours, compiler: SQLCompiler, **kw: Any) -> str:
    value, hours = _args(element, compiler, **kw)
    day = "CAST(mc_v AT TIME ZONE 'UTC' AS DATE)"
    # Clamped to a day or two past either end of the years 1 to 9999 (as add_days is), so the
    # sum never leaves what PostgreSQL holds and a count beyond them still gives null. Without
    # a value there are no bounds (LEAST/GREATEST skip nulls): nothing is added then.
    count = (
        f"LEAST(GREATEST(CAST(mc_n AS BIGINT), (DATE '{FIRST_DATE}' - {day}) * 24 - 24), "
        f"(DATE '{LAST_DATE}' - {day}) * 24 + 48)"
    )
    moved = f"mc_v + CAST({count} AS DOUBLE PRECISION) * INTERVAL '1 hour'"
    return (
        "(SELECT CASE WHEN CAST(mc_r AT TIME ZONE 'UTC' AS DATE) "
        f"BETWEEN DATE '{FIRST_DATE}' AND DATE '{LAST_DATE}' THEN mc_r END FROM "
        f"(SELECT CASE WHEN mc_n IS NOT NULL AND mc_v IS NOT NULL THEN {moved} END AS mc_r "
        f"FROM (SELECT {value} AS mc_v, {hours} AS mc_n) AS mc_a) AS mc_b)"
    )
