"""The test servers themselves: they start, answer, isolate databases and stop cleanly.

If these fail, every other integration test's result is meaningless.
"""

from __future__ import annotations

import pytest
import redis
import sqlalchemy as sa
from servers import PostgresServer, RedisServer, start_or_missing


def test_postgres_server_accepts_a_connection_and_reports_its_version(
    postgres_server: PostgresServer,
) -> None:
    engine = sa.create_engine(postgres_server.url)
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.text("select version()")).scalar_one()
    finally:
        engine.dispose()
    assert version.startswith("PostgreSQL ")


def test_databases_created_on_one_server_do_not_share_tables(
    postgres_server: PostgresServer,
) -> None:
    first = sa.create_engine(postgres_server.create_database("isolation_first"))
    second = sa.create_engine(postgres_server.create_database("isolation_second"))
    try:
        with first.begin() as conn:
            conn.execute(sa.text("create table only_in_first (id integer primary key)"))
        assert sa.inspect(first).has_table("only_in_first")
        assert not sa.inspect(second).has_table("only_in_first")
    finally:
        first.dispose()
        second.dispose()
        postgres_server.drop_database("isolation_first")
        postgres_server.drop_database("isolation_second")


def test_database_url_is_an_empty_writable_database_of_the_requested_kind(
    database_url: str, request: pytest.FixtureRequest
) -> None:
    engine = sa.create_engine(database_url)
    try:
        kind = request.node.callspec.params["database_url"]
        assert engine.dialect.name == {"sqlite": "sqlite", "postgres": "postgresql"}[kind]
        assert sa.inspect(engine).get_table_names() == []
        with engine.begin() as conn:
            conn.execute(sa.text("create table probe (id integer primary key)"))
            conn.execute(sa.text("insert into probe (id) values (7)"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("select id from probe")).scalar_one() == 7
    finally:
        engine.dispose()


def test_redis_server_stores_and_returns_a_value(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.set("metacrm:probe", "value")
        assert client.get("metacrm:probe") == b"value"
    finally:
        client.close()


def test_stopped_redis_server_refuses_connections_and_leaves_no_files() -> None:
    server = start_or_missing(RedisServer.start)
    url, base = server.url, server.base
    server.stop()
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        with pytest.raises(redis.ConnectionError):
            client.ping()
    finally:
        client.close()
    assert not base.exists()
