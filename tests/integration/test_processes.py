"""Real `metacrm serve` processes on one database: concurrent edits lose nothing, and metadata
changed through one process is seen by another without a restart."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import ACCOUNT, start_api
from servers import free_port

RECORDS = "/api/v1/records"


class Server:
    def __init__(self, database_url: str, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "METACRM_DATABASE_URL": database_url}
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "metacrm.cli", "serve", "--port", str(self.port)],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{log.read_text()}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start:\n{log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture
def two_servers(database_url: str, tmp_path: Path) -> Iterator[tuple[Server, Server, str]]:
    api = start_api(database_url)
    with api.client:
        api.make_entity(ACCOUNT)
    api.engine.dispose()
    servers = [Server(database_url, tmp_path / f"server{i}.log") for i in range(2)]
    try:
        yield servers[0], servers[1], api.token
    finally:
        for server in servers:
            server.stop()


def test_metadata_changed_in_one_process_is_seen_by_another(
    two_servers: tuple[Server, Server, str],
) -> None:
    first, second, token = two_servers
    headers = {"Authorization": f"Bearer {token}"}
    # The second process has the entity cached before the change.
    assert httpx.get(f"{second.base}{RECORDS}/account", headers=headers).status_code == 200
    added = httpx.post(
        f"{first.base}/api/v1/meta/entities/account/fields",
        json={"name": "employees", "type": "integer"},
        headers=headers,
    )
    assert added.status_code == 201, added.text
    created = httpx.post(
        f"{second.base}{RECORDS}/account", json={"name": "A", "employees": 12}, headers=headers
    )
    assert created.status_code == 201, created.text
    assert created.json()["employees"] == 12
    spec = httpx.get(f"{second.base}/api/v1/openapi.json", headers=headers).json()
    assert "employees" in spec["components"]["schemas"]["Account"]["properties"]


def test_concurrent_patches_with_if_match_lose_no_update(
    two_servers: tuple[Server, Server, str],
) -> None:
    first, second, token = two_servers
    headers = {"Authorization": f"Bearer {token}"}
    record = httpx.post(
        f"{first.base}{RECORDS}/account", json={"name": "start"}, headers=headers
    ).json()
    url = f"{RECORDS}/account/{record['id']}"

    def attempt(i: int) -> int:
        base = (first, second)[i % 2].base
        response = httpx.patch(
            f"{base}{url}",
            json={"name": f"writer {i}"},
            headers={**headers, "If-Match": '"1"'},
            timeout=30,
        )
        return response.status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(attempt, range(16)))
    assert sorted(statuses) == [200] + [412] * 15
    final = httpx.get(f"{first.base}{url}", headers=headers).json()
    assert final["version"] == 2
    history = httpx.get(f"{first.base}{url}/history", headers=headers).json()["data"]
    assert len(history) == 2

    # Read-modify-write loops with If-Match: every increment lands exactly once.
    def increment(i: int) -> int:
        base = (first, second)[i % 2].base
        tries = 0
        while True:
            tries += 1
            current = httpx.get(f"{base}{url}", headers=headers, timeout=30)
            n = (
                int(current.json()["name"].split()[-1])
                if current.json()["name"].startswith("n ")
                else 0
            )
            response = httpx.patch(
                f"{base}{url}",
                json={"name": f"n {n + 1}"},
                headers={**headers, "If-Match": current.headers["etag"]},
                timeout=30,
            )
            if response.status_code == 200:
                return tries
            assert response.status_code == 412, response.text

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(increment, range(12)))
    assert httpx.get(f"{first.base}{url}", headers=headers).json()["name"] == "n 12"
