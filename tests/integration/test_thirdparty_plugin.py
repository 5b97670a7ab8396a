"""A third-party plugin works like a built-in one (issue 12): `tests/plugins/acme_plugin`, a
distribution of its own, is installed with pip (offline, with the setuptools of this venv)
into a directory of its own; processes started with that directory on PYTHONPATH find it by its
`metacrm.plugins` entry point. `metacrm plugins list` shows it, `plugins install acme` brings
its package, and a real `metacrm serve` runs its entity's records, its hook action, its
validator and its periodic job through the HTTP API; `plugins upgrade` merges a newer version's
package with the admin's edits.

Slow (pip builds and installs the distribution, and every step is a process of its own):
marked `slow`; `make quick` leaves it out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import free_port

pytestmark = pytest.mark.slow

SOURCE = Path(__file__).resolve().parents[1] / "plugins" / "acme_plugin"
ADMIN = "admin@example.com"
V1 = "/api/v1"
WARRANTIES = f"{V1}/records/warranty"
EXTENSIONS = f"{V1}/records/warranty_extension"
START_TIMEOUT = 60.0
JOB_TIMEOUT = 30.0
TODAY = date.today()


# ---- the distribution and the processes that find it --------------------------------------


def pip_install(source: Path, target: Path) -> Path:
    """Build the distribution at `source` with this venv's setuptools and install it into
    `target` alone: no index, no build isolation, no dependencies (metacrm is the host)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"pip install failed:\n{done.stdout}\n{done.stderr}"
    assert (target / "acme_metacrm" / "package" / "entities.json").is_file()
    return target


def copy_source(to: Path) -> Path:
    """The plugin's source, copied: setuptools builds in the source tree, which stays clean."""
    return Path(shutil.copytree(SOURCE, to, ignore=shutil.ignore_patterns("__pycache__")))


@pytest.fixture(scope="module")
def acme_v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("acme-v1")
    return pip_install(copy_source(work / "src"), work / "site")


def environment(database: Path, site: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METACRM_")}
    path = [str(site), *filter(None, [env.get("PYTHONPATH")])]
    return {
        **env,
        "METACRM_DATABASE_URL": f"sqlite:///{database}",
        "PYTHONPATH": os.pathsep.join(path),
        **extra,
    }


def cli(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "metacrm.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"metacrm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@contextmanager
def serving(env: dict[str, str], cwd: Path, token: str) -> Iterator[httpx.Client]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "metacrm.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if server.poll() is not None:
                output = server.stdout.read() if server.stdout else ""
                pytest.fail(f"`metacrm serve` exited with {server.returncode}:\n{output}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"`metacrm serve` did not answer within {START_TIMEOUT:.0f} s")
            time.sleep(0.2)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            yield client
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=20)
        if server.stdout is not None:
            server.stdout.close()


# ---- what the tests send ---------------------------------------------------------------------


def serial(body: str) -> str:
    """`body` with its Luhn check digit: a serial the plugin's validator accepts."""
    for check in "0123456789":
        candidate = body + check
        total = 0
        for position, char in enumerate(reversed(candidate)):
            value = int(char) * (2 if position % 2 else 1)
            total += value - 9 if value > 9 else value
        if total % 10 == 0:
            return candidate
    raise AssertionError("a Luhn check digit always exists")


def mistyped(good: str) -> str:
    """A serial with its check digit off by one: the validator refuses it."""
    return good[:-1] + str((int(good[-1]) + 1) % 10)


def warranty(client: httpx.Client, body: str, **values: Any) -> dict[str, Any]:
    document = {
        "serial": serial(body),
        "product": "Roadrunner trap",
        "starts_on": (TODAY - timedelta(days=400)).isoformat(),
        "ends_on": (TODAY + timedelta(days=365)).isoformat(),
        **values,
    }
    made = client.post(WARRANTIES, json=document)
    assert made.status_code == 201, made.text
    created: dict[str, Any] = made.json()
    return created


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def field_errors(response: httpx.Response) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in response.json().get("errors", [])]


# ---- the tests -------------------------------------------------------------------------------


def test_a_plugin_installed_with_pip_works_through_the_api_like_a_built_in_one(
    acme_v1: Path, tmp_path: Path
) -> None:
    # The expiry job runs every second in the serving process, so the test sees it work.
    env = environment(tmp_path / "acme.db", acme_v1, ACME_EXPIRY_EVERY="1")
    cli(env, tmp_path, "init", "--no-templates")
    listed = cli(env, tmp_path, "plugins", "list").splitlines()
    assert "acme\t1.0.0\tnot installed\tAcme warranties" in listed
    installed = cli(env, tmp_path, "plugins", "install", "acme").splitlines()
    assert installed[0] == "install acme 1.0.0"
    for change in ("warranty: create the table", "action warranty.extend: created"):
        assert f"  {change}" in installed
    assert "acme\t1.0.0\t1.0.0\tAcme warranties" in cli(env, tmp_path, "plugins", "list")
    token = cli(env, tmp_path, "token", "create", "--user", ADMIN).strip()
    with serving(env, tmp_path, token) as client:
        its_entity_serves_records_and_is_in_the_openapi_document(client)
        its_validator_refuses_a_bad_serial_and_nothing_is_written(client)
        its_hook_action_is_listed_runs_and_writes_with_history(client)
        its_action_refuses_bad_input_and_an_unmet_condition(client)
        its_periodic_job_runs_in_the_serving_process(client)


def its_entity_serves_records_and_is_in_the_openapi_document(client: httpx.Client) -> None:
    entities = {e["name"] for e in ok(client.get(f"{V1}/meta/entities"))["data"]}
    assert {"warranty", "warranty_extension"} <= entities
    made = warranty(client, "1000001", product="Anvil")
    url = f"{WARRANTIES}/{made['id']}"
    assert (made["status"], made["extensions"], made["version"]) == ("active", 0, 1)
    changed = ok(client.patch(url, json={"product": "Giant anvil"}, headers={"If-Match": '"1"'}))
    assert (changed["product"], changed["version"]) == ("Giant anvil", 2)
    assert ok(client.get(WARRANTIES, params={"filter": 'product == "Giant anvil"'}))["data"] == [
        changed
    ]
    assert ok(client.delete(url), 204) is None
    assert client.get(url).status_code == 404
    paths = ok(client.get(f"{V1}/openapi.json"))["paths"]
    assert {WARRANTIES, f"{WARRANTIES}/{{id}}", EXTENSIONS} <= set(paths)
    extend = paths[f"{WARRANTIES}/{{id}}/actions/extend"]["post"]
    assert extend["operationId"] == "run_warranty_extend"
    schema = extend["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["months"]
    assert schema["properties"]["months"] == {"type": "integer", "minimum": 1, "maximum": 36}


def its_validator_refuses_a_bad_serial_and_nothing_is_written(client: httpx.Client) -> None:
    good = serial("2000002")
    document = {
        "serial": mistyped(good),
        "product": "Rocket skates",
        "starts_on": TODAY.isoformat(),
        "ends_on": (TODAY + timedelta(days=30)).isoformat(),
    }
    refused = client.post(WARRANTIES, json=document)
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["errors"]
    assert (error["field"], error["code"]) == ("serial", "serial_checksum")
    assert "check digit" in error["message"]
    letters = client.post(WARRANTIES, json={**document, "serial": "ACME-1"})
    assert field_errors(letters) == [("serial", "serial_checksum")]
    # The validator and the condition rules answer together.
    backwards = client.post(
        WARRANTIES, json={**document, "ends_on": (TODAY - timedelta(days=1)).isoformat()}
    )
    assert set(field_errors(backwards)) == {
        ("serial", "serial_checksum"),
        ("ends_on", "ends_after_start"),
    }
    product = 'product == "Rocket skates"'
    assert ok(client.get(WARRANTIES, params={"filter": product}))["data"] == []
    # `when` leaves void warranties unchecked; an update is checked like a create.
    void = ok(client.post(WARRANTIES, json={**document, "status": "void"}), 201)
    active = ok(client.post(WARRANTIES, json={**document, "serial": good}), 201)
    reserialled = client.patch(f"{WARRANTIES}/{active['id']}", json={"serial": mistyped(good)})
    assert field_errors(reserialled) == [("serial", "serial_checksum")]
    assert ok(client.get(f"{WARRANTIES}/{active['id']}"))["serial"] == good
    assert void["serial"] == mistyped(good)


def its_hook_action_is_listed_runs_and_writes_with_history(client: httpx.Client) -> None:
    me = ok(client.get(f"{V1}/me"))["id"]
    made = warranty(client, "3000003", ends_on="2030-01-31")
    url = f"{WARRANTIES}/{made['id']}"
    [listed] = ok(client.get(f"{url}/actions"))["data"]
    assert (listed["name"], listed["available"]) == ("extend", True)
    assert listed["label"] == {"en": "Extend", "zh-CN": "延长保修"}
    assert listed["input_schema"]["required"] == ["months"]
    result = ok(client.post(f"{url}/actions/extend", json={"months": 1, "reason": "goodwill"}))[
        "result"
    ]
    # What the hook returned joins the result; the record is read after the hook's writes.
    assert result["ends_on"] == "2030-02-28"
    assert (result["record"]["ends_on"], result["record"]["extensions"]) == ("2030-02-28", 1)
    logged = ok(client.get(f"{EXTENSIONS}/{result['extension']}"))
    assert (logged["warranty"], logged["months"], logged["reason"]) == (made["id"], 1, "goodwill")
    assert (logged["previous_end"], logged["new_end"]) == ("2030-01-31", "2030-02-28")
    assert logged["created_by"] == me
    latest = ok(client.get(f"{url}/history"))["data"][0]
    assert (latest["action"], latest["changed_by"], latest["version"]) == ("update", me, 2)
    assert latest["changes"]["ends_on"] == {"old": "2030-01-31", "new": "2030-02-28"}
    assert latest["changes"]["extensions"] == {"old": 0, "new": 1}


def its_action_refuses_bad_input_and_an_unmet_condition(client: httpx.Client) -> None:
    made = warranty(client, "4000004")
    url = f"{WARRANTIES}/{made['id']}"
    for bad in ({}, {"months": 0}, {"months": "six"}, {"months": 6, "colour": "red"}):
        refused = client.post(f"{url}/actions/extend", json=bad)
        assert refused.status_code == 422, (bad, refused.text)
    assert ok(client.get(url))["version"] == 1
    assert (
        ok(client.get(EXTENSIONS, params={"filter": f'warranty == "{made["id"]}"'}))["data"] == []
    )
    ok(client.patch(url, json={"status": "void"}))
    [listed] = ok(client.get(f"{url}/actions"))["data"]
    assert (listed["available"], listed["reason_code"]) == (False, "condition")
    assert listed["reason"]["en"] == "Only an active warranty can be extended"
    refused = client.post(f"{url}/actions/extend", json={"months": 6})
    assert refused.status_code == 409, refused.text


def its_periodic_job_runs_in_the_serving_process(client: httpx.Client) -> None:
    lapsed = warranty(client, "5000005", ends_on=(TODAY - timedelta(days=30)).isoformat())
    current = warranty(client, "6000006")
    url = f"{WARRANTIES}/{lapsed['id']}"
    deadline = time.monotonic() + JOB_TIMEOUT
    while ok(client.get(url))["status"] != "expired":
        assert time.monotonic() < deadline, "the expiry job did not run"
        time.sleep(0.3)
    [expired] = ok(client.get(f"{url}/history"))["data"][:1]
    assert expired["changes"]["status"] == {"old": "active", "new": "expired"}
    assert expired["changed_by"] == "system"
    assert ok(client.get(f"{WARRANTIES}/{current['id']}"))["status"] == "active"


def test_upgrading_to_a_newer_distribution_merges_its_package_with_the_admins_edits(
    acme_v1: Path, tmp_path: Path
) -> None:
    env = environment(tmp_path / "acme.db", acme_v1)
    cli(env, tmp_path, "init", "--no-templates")
    cli(env, tmp_path, "plugins", "install", "acme")
    # The admin renames the product field's English label.
    exported = json.loads(cli(env, tmp_path, "meta", "export", "warranty"))
    [entity] = exported["entities"]
    field(entity, "product")["label"]["en"] = "Item"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps({**exported, "entities": [entity]}))
    cli(env, tmp_path, "meta", "import", str(edited))
    # Version 1.1.0 relabels the field too and adds one.
    source = copy_source(tmp_path / "src-v2")
    module = source / "acme_metacrm" / "__init__.py"
    module.write_text(module.read_text("utf-8").replace('VERSION = "1.0.0"', 'VERSION = "1.1.0"'))
    project = source / "pyproject.toml"
    project.write_text(project.read_text("utf-8").replace('"1.0.0"', '"1.1.0"'))
    package = source / "acme_metacrm" / "package" / "entities.json"
    entities = json.loads(package.read_text("utf-8"))
    field(entities[0], "product")["label"]["en"] = "Product name"
    entities[0]["fields"].append({"name": "registered_by", "type": "email"})
    package.write_text(json.dumps(entities, ensure_ascii=False))
    v2 = environment(tmp_path / "acme.db", pip_install(source, tmp_path / "site-v2"))
    assert "acme\t1.1.0\t1.0.0\tAcme warranties" in cli(v2, tmp_path, "plugins", "list")
    dry = cli(v2, tmp_path, "plugins", "upgrade", "acme", "--dry-run")
    assert dry.splitlines()[0] == "upgrade acme 1.0.0 → 1.1.0"
    assert "warranty: add column registered_by" in dry and "dry run" in dry
    conflict = (
        "  entity warranty /fields/product/label/en: kept yours 'Item'; "
        "the new version has 'Product name' (was 'Product')"
    )
    assert conflict in dry.splitlines()
    assert "registered_by" not in cli(v2, tmp_path, "meta", "export", "warranty")
    assert conflict in cli(v2, tmp_path, "plugins", "upgrade", "acme").splitlines()
    assert "acme\t1.1.0\t1.1.0\tAcme warranties" in cli(v2, tmp_path, "plugins", "list")
    [after] = json.loads(cli(v2, tmp_path, "meta", "export", "warranty"))["entities"]
    assert field(after, "product")["label"]["en"] == "Item"  # the admin's edit won
    assert field(after, "registered_by")["type"] == "email"
    assert after["validation_rules"][0]["hook"] == "acme.serial_checksum"


def field(entity: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(f for f in entity["fields"] if f["name"] == name)
    return found
