"""The yardstick: a small hand-written Starlette + SQLAlchemy Core app over the same `deal` table.

It does what a careful developer would write by hand for three endpoints, and nothing more.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    create_engine,
    event,
    select,
)
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from metacrm.platform.ids import new_id

T = TypeVar("T")

STAGES = ("qualify", "proposal", "negotiation", "won", "lost")
REGIONS = ("amer", "emea", "apac", "latam")
LIST_LIMIT = 50
DATABASE_ENV = "BENCH_BASELINE_DATABASE_URL"
TOKEN_ENV = "BENCH_BASELINE_TOKEN"
USER_ENV = "BENCH_BASELINE_USER_ID"

metadata = MetaData()

# Column for column and index for index what metacrm builds for the `deal` entity; the bench
# compares the two CREATE statements before it measures anything.
deal = Table(
    "deal",
    metadata,
    Column("id", String(26), primary_key=True, nullable=False),
    Column("owner", String(26)),
    Column("created_at", DateTime(timezone=True)),
    Column("created_by", String(26)),
    Column("updated_at", DateTime(timezone=True)),
    Column("updated_by", String(26)),
    Column("version", Integer()),
    Column("deleted_at", DateTime(timezone=True)),
    Column("name", Text()),
    Column("amount", Numeric(14, 2, asdecimal=True)),
    Column("stage", Text()),
    Column("close_date", Date()),
    Column("probability", BigInteger()),
    Column("owner_email", Text()),
    Column("region", Text()),
    Column("notes", Text()),
)
Index("ix_deal_owner", deal.c.owner)
Index("ix_deal_updated_at", deal.c.updated_at, deal.c.id)
Index("ix_deal_created_at", deal.c.created_at, deal.c.id)
Index("ix_deal_amount", deal.c.amount)
Index("ix_deal_stage", deal.c.stage)


def make_engine(url: str) -> Engine:
    """SQLite with the pragmas metacrm sets on every connection."""
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the lock up front, as metacrm does, so concurrent inserts queue.
        immediate = conn.get_execution_options().get("bench_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def row_json(row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row._mapping.items():
        if key == "deleted_at":
            continue
        if isinstance(value, Decimal):
            value = format(value, "f")
        elif isinstance(value, datetime):
            value = value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
        elif isinstance(value, date):
            value = value.isoformat()
        out[key] = value
    return out


def json_response(content: Any, status: int = 200) -> Response:
    body = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json")


def error(status: int, detail: str) -> Response:
    return json_response({"status": status, "detail": detail}, status)


class Problem(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def parse_deal(body: Any) -> dict[str, Any]:
    """The columns for a new deal from a JSON object, or Problem(422)."""
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
        raise Problem(422, "name is required")
    try:
        amount = Decimal(str(body["amount"])) if body.get("amount") is not None else None
        close_date = date.fromisoformat(body["close_date"]) if body.get("close_date") else None
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise Problem(422, f"bad value: {exc}") from None
    stage = body.get("stage", "qualify")
    if stage not in STAGES:
        raise Problem(422, "stage must be one of " + ", ".join(STAGES))
    if body.get("region") is not None and body["region"] not in REGIONS:
        raise Problem(422, "region must be one of " + ", ".join(REGIONS))
    probability = body.get("probability")
    if probability is not None and (
        not isinstance(probability, int) or not 0 <= probability <= 100
    ):
        raise Problem(422, "probability must be an integer from 0 to 100")
    return {
        "name": body["name"],
        "amount": amount,
        "stage": stage,
        "close_date": close_date,
        "probability": probability,
        "owner_email": body.get("owner_email"),
        "region": body.get("region"),
        "notes": body.get("notes"),
    }


class Deals:
    """The three endpoints, each one short transaction in a worker thread."""

    def __init__(self, engine: Engine, token: str, user_id: str) -> None:
        self.engine = engine
        self.expected = f"Bearer {token}".encode()
        self.user_id = user_id

    async def _guarded(self, request: Request, work: Callable[[], Response]) -> Response:
        header = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(header, self.expected):
            return error(401, "bad token")
        try:
            return await run_in_threadpool(work)
        except Problem as problem:
            return error(problem.status, problem.detail)

    async def get(self, request: Request) -> Response:
        record_id = request.path_params["id"]

        def work() -> Response:
            stmt = select(deal).where(deal.c.id == record_id, deal.c.deleted_at.is_(None))
            with self.engine.connect() as conn, conn.begin():
                row = conn.execute(stmt).first()
            if row is None:
                raise Problem(404, "no such deal")
            return json_response(row_json(row))

        return await self._guarded(request, work)

    async def list(self, request: Request) -> Response:
        stage = request.query_params.get("stage")
        min_amount = request.query_params.get("min_amount")

        def work() -> Response:
            stmt = select(deal).where(deal.c.deleted_at.is_(None))
            if stage is not None:
                stmt = stmt.where(deal.c.stage == stage)
            if min_amount is not None:
                try:
                    stmt = stmt.where(deal.c.amount > Decimal(min_amount))
                except InvalidOperation:
                    raise Problem(400, "min_amount must be a number") from None
            # Same order as metacrm's `sort=-amount` (which breaks ties by ascending id).
            stmt = stmt.order_by(deal.c.amount.desc(), deal.c.id.asc()).limit(LIST_LIMIT)
            with self.engine.connect() as conn, conn.begin():
                rows = conn.execute(stmt).all()
            return json_response({"data": [row_json(r) for r in rows]})

        return await self._guarded(request, work)

    async def create(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return error(400, "the body is not JSON")

        def work() -> Response:
            values = parse_deal(body)
            now = datetime.now(UTC)
            record_id = new_id()
            values.update(
                id=record_id,
                owner=self.user_id,
                created_at=now,
                created_by=self.user_id,
                updated_at=now,
                updated_by=self.user_id,
                version=1,
            )
            with self.engine.connect() as conn:
                conn.execution_options(bench_write=True)
                with conn.begin():
                    conn.execute(deal.insert().values(values))
                    row = conn.execute(select(deal).where(deal.c.id == record_id)).one()
            return json_response(row_json(row), 201)

        return await self._guarded(request, work)


def build_app(url: str, token: str, user_id: str) -> Starlette:
    deals = Deals(make_engine(url), token, user_id)
    return Starlette(
        routes=[
            Route("/deals", deals.list, methods=["GET"]),
            Route("/deals", deals.create, methods=["POST"]),
            Route("/deals/{id}", deals.get, methods=["GET"]),
        ]
    )


def app_from_env() -> Starlette:
    """The factory uvicorn calls in the server process."""
    return build_app(os.environ[DATABASE_ENV], os.environ[TOKEN_ENV], os.environ[USER_ENV])


__all__ = ["REGIONS", "STAGES", "app_from_env", "build_app", "deal", "make_engine", "metadata"]
