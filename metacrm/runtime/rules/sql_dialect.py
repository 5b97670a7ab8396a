"""SQL pieces that SQLite and PostgreSQL spell differently, as small compiled constructs.

SQLite keeps dates as 'YYYY-MM-DD' text and datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' UTC text.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Date, DateTime, Numeric, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


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
    number, places = _args(element, compiler, **kw)
    return f"round(CAST({number} AS NUMERIC), CAST({places} AS INTEGER))"


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
