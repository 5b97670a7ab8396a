"""Background work across processes: a real redis-server, real `metacrm worker` and `metacrm beat`
processes, and the app enqueueing to Redis. A webhook is delivered signed; a worker killed
mid-delivery loses nothing; a burst of 1,000 events is delivered in full; beat runs the sweep;
a metadata change made through one app reaches another app's cache through Redis."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from celery.beat import PersistentScheduler
from conftest import ACCOUNT, Api
from passwords import password_hash
from servers import RedisServer, log_tail
from sqlalchemy import func, select
from starlette.testclient import TestClient
from webhook_receiver import Receiver, receiving

from metacrm.platform.celery_app import make_celery
from metacrm.platform.clock import utcnow
from metacrm.platform.db import make_engine, writing
from metacrm.platform.install import install
from metacrm.platform.invalidation import CHANNEL
from metacrm.platform.settings import Settings
from metacrm.platform.systables import events, webhook_deliveries
from metacrm.platform.users import create_token, create_user
from metacrm.runtime.api.app import build_app
from metacrm.runtime.catalog import CatalogCache
from metacrm.runtime.events import publish
from metacrm.runtime.startup import build_registry, build_services

T = TypeVar("T")
V1 = "/api/v1"
RECORDS = f"{V1}/records"
VISIBILITY_TIMEOUT = 3
# A Redis database per test (each xdist worker has its own redis-server).
_databases = itertools.count(1)


class Worker:
    """`metacrm worker` (or `beat`) in its own process group, logging to a file."""

    def __init__(self, env: dict[str, str], log: Path, *command: str) -> None:
        self.log = log
        argv = command or ("worker", "--pool", "solo", "--loglevel", "INFO")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "metacrm.cli", *argv],
            env=env,
            cwd=log.parent,
            stdin=subprocess.DEVNULL,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        """SIGKILL the whole group: nothing gets to clean up or acknowledge."""
        self.signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class Cluster:
    """An app enqueueing to Redis, the processes started for it, and a webhook receiver."""

    api: Api
    env: dict[str, str]
    redis_url: str
    receiver: Receiver
    tmp: Path
    workers: list[Worker] = field(default_factory=list)

    def start(self, name: str, *command: str) -> Worker:
        worker = Worker(self.env, self.tmp / f"{name}.log", *command)
        self.workers.append(worker)
        return worker

    def logs(self) -> str:
        return "\n".join(f"--- {w.log.name}\n{log_tail(w.log, 30)}" for w in self.workers)

    def eventually(self, check: Callable[[], T], what: str, timeout: float = 60) -> T:
        """Poll an effect of the other processes until it shows, or fail with their logs."""
        deadline = time.monotonic() + timeout
        while True:
            found = check()
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout:g} s\n{self.logs()}")
            time.sleep(0.1)

    def statuses(self) -> dict[str, int]:
        with self.api.engine.connect() as conn:
            rows = conn.execute(
                select(webhook_deliveries.c.status, func.count()).group_by(
                    webhook_deliveries.c.status
                )
            )
            return {status: count for status, count in rows}


def app_with_redis(database_url: str, redis_url: str) -> Api:
    engine = make_engine(database_url)
    install(engine)
    with writing(engine) as conn:
        admin = create_user(
            conn,
            email="admin@example.com",
            password_hash=password_hash("a-long-password"),
            is_admin=True,
        )
        token = create_token(conn, admin)
    settings = Settings(database_url=database_url, redis_url=redis_url)
    services = build_services(settings, engine)
    app = build_app(settings, services=services)
    return Api(TestClient(app, raise_server_exceptions=False), services, database_url, token)


def fresh_redis_url(server: RedisServer) -> str:
    url = server.url.rsplit("/", 1)[0] + f"/{next(_databases)}"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


def cluster_on(database_url: str, server: RedisServer, tmp: Path) -> Iterator[Cluster]:
    redis_url = fresh_redis_url(server)
    api = app_with_redis(database_url, redis_url)
    env = {
        **os.environ,
        "METACRM_DATABASE_URL": database_url,
        "METACRM_REDIS_URL": redis_url,
        "METACRM_TASK_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "PYTHONUNBUFFERED": "1",
    }
    with receiving() as receiver, api.client:
        cluster = Cluster(api, env, redis_url, receiver, tmp)
        try:
            yield cluster
        finally:
            for worker in cluster.workers:
                worker.stop()
    api.engine.dispose()


@pytest.fixture
def cluster(postgres_url: str, redis_server: RedisServer, tmp_path: Path) -> Iterator[Cluster]:
    yield from cluster_on(postgres_url, redis_server, tmp_path)


@pytest.fixture
def any_cluster(database_url: str, redis_server: RedisServer, tmp_path: Path) -> Iterator[Cluster]:
    yield from cluster_on(database_url, redis_server, tmp_path)


def make_hook(api: Api, url: str, **body: Any) -> dict[str, Any]:
    response = api.post(f"{V1}/webhooks", {"name": "sync", "url": url, "events": ["*"], **body})
    assert response.status_code == 201, response.text
    return response.json()


def test_a_worker_delivers_a_signed_webhook(any_cluster: Cluster) -> None:
    cluster, api = any_cluster, any_cluster.api
    api.make_entity(ACCOUNT)
    hook = make_hook(api, cluster.receiver.url, entity="account")
    cluster.start("worker")
    record = api.post(f"{RECORDS}/account", {"name": "Acme"}).json()
    cluster.eventually(lambda: cluster.statuses() == {"delivered": 1}, "the delivery is recorded")
    [request] = cluster.receiver.snapshot()
    assert request.signed_by(hook["secret"])
    assert request.json["event"] == "record.created"
    assert request.json["data"]["id"] == record["id"]


def test_a_worker_killed_mid_delivery_loses_nothing(cluster: Cluster) -> None:
    api, receiver = cluster.api, cluster.receiver
    api.make_entity(ACCOUNT)
    make_hook(api, receiver.url)
    receiver.holding = True
    first = cluster.start("worker-1")
    api.post(f"{RECORDS}/account", {"name": "Acme"})
    cluster.eventually(receiver.held.is_set, "the first worker is posting the delivery")
    first.kill()
    with receiver.changed:
        receiver.holding = False
    receiver.release.set()
    assert cluster.statuses() == {"pending": 1}  # the killed worker recorded nothing

    cluster.start("worker-2")
    cluster.eventually(lambda: cluster.statuses() == {"delivered": 1}, "the delivery is made")
    got = receiver.snapshot()
    assert len(got) >= 2 and len({r.json["id"] for r in got}) == 1
    with api.engine.connect() as conn:
        [row] = conn.execute(select(webhook_deliveries))
    assert (row.status, row.attempts, row.response_code) == ("delivered", 1, 200)


def test_a_burst_of_a_thousand_events_is_delivered_in_full(cluster: Cluster) -> None:
    api, receiver = cluster.api, cluster.receiver
    make_hook(api, receiver.url)
    cluster.start("worker")
    published: list[int] = []
    for batch in range(4):
        with api.services.writing() as conn:
            ctx = api.services.system_context(conn)
            for n in range(250):
                record_id = f"R{batch:02d}{n:04d}"
                published.append(
                    publish(
                        ctx,
                        "record.created",
                        entity="account",
                        record_id=record_id,
                        payload={"entity": "account", "id": record_id},
                    )
                )
    cluster.eventually(
        lambda: cluster.statuses() == {"delivered": 1000}, "1,000 deliveries made", timeout=100
    )
    with api.engine.connect() as conn:
        delivered = set(conn.execute(select(webhook_deliveries.c.event_id)).scalars())
        undispatched = conn.execute(
            select(func.count()).where(events.c.dispatched_at.is_(None))
        ).scalar_one()
    assert delivered == set(published)
    assert undispatched == 0
    assert {r.json["event_id"] for r in receiver.snapshot()} == set(published)


def test_beat_runs_the_sweep_that_dispatches_a_stranded_event(cluster: Cluster) -> None:
    api, receiver = cluster.api, cluster.receiver
    make_hook(api, receiver.url)
    settings = Settings(database_url=api.url, redis_url=cluster.redis_url)
    schedule = make_celery(settings, build_registry()).conf.beat_schedule
    assert schedule == {
        "events.sweep": {"task": "events.sweep", "schedule": 30.0},
        "notifications.email": {"task": "notifications.email", "schedule": 15.0},
        "approvals.escalate": {"task": "approvals.escalate", "schedule": 60.0},
        "automations.scheduled": {"task": "automations.scheduled", "schedule": 60.0},
    }
    # An event committed an hour ago that no consumer took and whose hand-over was lost.
    bare = make_engine(api.url)
    try:
        with writing(bare) as conn:
            stranded = int(
                conn.execute(
                    events.insert().values(
                        type="record.created",
                        entity="account",
                        record_id="S",
                        payload={},
                        created_at=utcnow() - timedelta(hours=1),
                    )
                ).inserted_primary_key[0]
            )
    finally:
        bare.dispose()
    # Beat's schedule file says every job last ran long ago, so beat sends them all at once
    # rather than after their first interval.
    schedule_file = cluster.tmp / "beat-schedule"
    scheduler = PersistentScheduler(
        app=make_celery(settings, build_registry()), schedule_filename=str(schedule_file)
    )
    for entry in scheduler.schedule.values():
        entry.last_run_at = entry.default_now() - timedelta(hours=1)
    scheduler.sync()
    scheduler.close()

    cluster.start("worker")
    cluster.start("beat", "beat", "--schedule", str(schedule_file), "--loglevel", "INFO")
    cluster.eventually(
        lambda: receiver.snapshot() and receiver.snapshot()[0].json["event_id"] == stranded,
        "the sweep sent by beat dispatches the stranded event",
    )
    assert "Sending due task events.sweep" in (cluster.tmp / "beat.log").read_text()


class WatchedCache(CatalogCache):
    """A catalog cache that says when it is invalidated."""

    def __init__(self) -> None:
        super().__init__()
        self.invalidated = threading.Event()

    def invalidate(self) -> None:
        super().invalidate()
        self.invalidated.set()


def test_a_metadata_change_through_one_app_invalidates_another_apps_cache(
    cluster: Cluster,
) -> None:
    first = cluster.api
    first.make_entity(ACCOUNT)
    settings = Settings(database_url=first.url, redis_url=cluster.redis_url)
    services = build_services(settings)
    watched = WatchedCache()
    services.catalogs = watched  # before the lifespan subscribes its listener
    app = build_app(settings, services=services)
    second = TestClient(app, raise_server_exceptions=False)
    headers = first.headers()
    try:
        with second:
            assert second.get(f"{RECORDS}/account", headers=headers).status_code == 200
            assert not watched.invalidated.is_set()
            wait_for_listeners(cluster.redis_url, 2)
            added = first.post(
                f"{V1}/meta/entities/account/fields", {"name": "employees", "type": "integer"}
            )
            assert added.status_code == 201, added.text
            assert watched.invalidated.wait(10), "the second app heard nothing"

            # A broken connection to Redis: announcements may have been missed, so the cache
            # is dropped, and the listener reconnects to hear the next one.
            watched.invalidated.clear()
            with redis.Redis.from_url(cluster.redis_url) as client:
                assert client.client_kill_filter(_type="pubsub") >= 1
            assert watched.invalidated.wait(10), "a lost connection did not drop the cache"
            wait_for_listeners(cluster.redis_url, 2)
            watched.invalidated.clear()
            added = first.post(
                f"{V1}/meta/entities/account/fields", {"name": "founded", "type": "integer"}
            )
            assert added.status_code == 201, added.text
            assert watched.invalidated.wait(10), "the reconnected listener heard nothing"
            created = second.post(
                f"{RECORDS}/account",
                json={"name": "Acme", "employees": 5, "founded": 1990},
                headers=headers,
            )
            assert created.status_code == 201, created.text
    finally:
        services.engine.dispose()


def wait_for_listeners(redis_url: str, count: int) -> None:
    deadline = time.monotonic() + 20
    with redis.Redis.from_url(redis_url) as client:
        while dict(client.pubsub_numsub(CHANNEL)).get(CHANNEL.encode(), 0) < count:
            assert time.monotonic() < deadline, "the listeners did not subscribe"
            time.sleep(0.05)
