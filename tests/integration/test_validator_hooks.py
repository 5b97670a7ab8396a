"""Validation rules that name a Python validator registered at start-up (`{"name", "hook"}`), on
SQLite and PostgreSQL: every write path asks it (create, update, bulk update, record actions),
a refusal is a 422 with field errors and nothing is written, `when` limits it, saving metadata
naming a validator the server lacks is refused at its pointer, and a server that lacks one
refuses writes (503) rather than letting records through unjudged."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from conftest import ADMIN_EMAIL, Api
from starlette.testclient import TestClient

from metacrm.metadata.model import EntityDef
from metacrm.platform.errors import FieldError, Unprocessable
from metacrm.platform.users import find_user
from metacrm.runtime.api.app import build_app
from metacrm.runtime.context import Records
from metacrm.runtime.packages import apply_package
from metacrm.runtime.startup import build_registry, build_services

V1 = "/api/v1"
DEVICES = f"{V1}/records/device"
CHECKSUM = "test.serial_checksum"
UNRETIRE = "test.no_unretire"

DEVICE: dict[str, Any] = {
    "name": "device",
    "label": {"en": "Device"},
    "fields": [
        {"name": "serial", "type": "text", "required": True},
        {
            "name": "status",
            "type": "picklist",
            "default": "active",
            "options": [{"value": "active"}, {"value": "retired"}],
        },
        {"name": "notes", "type": "text"},
    ],
    "validation_rules": [
        {
            "name": "serial_checksum",
            "hook": CHECKSUM,
            "field": "serial",
            "message": {"en": "The serial's check digit is wrong", "zh-CN": "序列号校验位错误"},
        },
        {
            "name": "no_unretire",
            "hook": UNRETIRE,
            "when": 'changed(status) and old.status == "retired"',
        },
        {
            "name": "short_notes",
            "condition": "len(notes) <= 20",
            "field": "notes",
            "message": {"en": "Notes are at most 20 characters"},
        },
    ],
}

GOOD, BAD = "12345678", "12345670"  # the last digit is the sum of the others, mod 10


class Seen:
    """What the validators were called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []

    def checksum(
        self,
        records: Records,
        entity: EntityDef,
        record: Mapping[str, Any],
        old: Mapping[str, Any] | None,
    ) -> list[str]:
        self.calls.append((CHECKSUM, dict(record), dict(old) if old is not None else None))
        serial = record["serial"]
        digits = [int(c) for c in serial] if serial.isdigit() and len(serial) == 8 else None
        if digits is None or sum(digits[:-1]) % 10 != digits[-1]:
            return [f"{serial} fails the checksum"]
        return []

    def no_unretire(
        self,
        records: Records,
        entity: EntityDef,
        record: Mapping[str, Any],
        old: Mapping[str, Any] | None,
    ) -> list[FieldError]:
        self.calls.append((UNRETIRE, dict(record), dict(old) if old is not None else None))
        return [FieldError("status", "retired", "a retired device stays retired")]


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def devices(make_api: Callable[..., Api], seen: Seen) -> Iterator[Api]:
    registry = build_registry()
    registry.validator(CHECKSUM, seen.checksum)
    registry.validator(UNRETIRE, seen.no_unretire)
    api = make_api(registry=registry)
    api.make_entity(DEVICE)
    yield api


def errors_of(response: Any) -> list[tuple[str, str, str]]:
    return [(e["field"], e["code"], e["message"]) for e in response.json().get("errors", [])]


def all_devices(api: Api) -> list[dict[str, Any]]:
    listed = api.get(DEVICES)
    assert listed.status_code == 200, listed.text
    data: list[dict[str, Any]] = listed.json()["data"]
    return data


def test_a_validator_refuses_a_create_with_a_field_error_and_nothing_is_written(
    devices: Api, seen: Seen
) -> None:
    refused = devices.post(DEVICES, {"serial": BAD})
    assert refused.status_code == 422, refused.text
    # A message from the validator is put at the rule's field, worded by the rule's message.
    assert errors_of(refused) == [
        ("serial", "serial_checksum", "The serial's check digit is wrong")
    ]
    assert all_devices(devices) == []
    # It judged the record as the create would save it: defaults filled, no stored record.
    [(name, record, old)] = seen.calls
    assert name == CHECKSUM and old is None
    assert record["serial"] == BAD and record["status"] == "active" and record["version"] == 1
    made = devices.post(DEVICES, {"serial": GOOD})
    assert made.status_code == 201, made.text


def test_condition_rules_and_validators_are_reported_together(devices: Api) -> None:
    refused = devices.post(DEVICES, {"serial": BAD, "notes": "x" * 21})
    assert refused.status_code == 422
    assert {(f, c) for f, c, _ in errors_of(refused)} == {
        ("notes", "short_notes"),
        ("serial", "serial_checksum"),
    }


def test_a_validator_refuses_an_update_and_sees_the_stored_record(devices: Api, seen: Seen) -> None:
    device = devices.post(DEVICES, {"serial": GOOD, "notes": "spare"}).json()
    seen.calls.clear()
    url = f"{DEVICES}/{device['id']}"
    refused = devices.patch(url, {"serial": BAD})
    assert refused.status_code == 422, refused.text
    assert errors_of(refused) == [
        ("serial", "serial_checksum", "The serial's check digit is wrong")
    ]
    [(_, record, old)] = seen.calls
    assert (record["serial"], record["notes"]) == (BAD, "spare")
    assert old is not None and old["serial"] == GOOD
    stored = devices.get(url).json()
    assert (stored["serial"], stored["version"]) == (GOOD, 1)


def test_when_limits_a_validator_to_the_changes_it_names(devices: Api, seen: Seen) -> None:
    device = devices.post(DEVICES, {"serial": GOOD, "status": "retired"}).json()
    url = f"{DEVICES}/{device['id']}"
    seen.calls.clear()
    assert devices.patch(url, {"notes": "in the cellar"}).status_code == 200
    assert [name for name, _, _ in seen.calls] == [CHECKSUM]
    refused = devices.patch(url, {"status": "active"})
    assert refused.status_code == 422
    # A FieldError from the validator stands as it is.
    assert errors_of(refused) == [("status", "retired", "a retired device stays retired")]
    assert devices.get(url).json()["status"] == "retired"


def test_a_bulk_update_asks_the_validator_for_each_record_and_writes_none(devices: Api) -> None:
    first = devices.post(DEVICES, {"serial": GOOD}).json()
    second = devices.post(DEVICES, {"serial": "11111117"}).json()
    with pytest.raises(Unprocessable) as refused, devices.services.writing() as conn:
        records = devices.records(conn, find_user(conn, ADMIN_EMAIL))
        records.update_many(
            "device", {first["id"]: {"notes": "fine"}, second["id"]: {"serial": BAD}}
        )
    assert [(e.field, e.code) for e in refused.value.errors] == [
        (f"{second['id']}/serial", "serial_checksum")
    ]
    assert {d["id"]: d.get("notes") for d in all_devices(devices)} == {
        first["id"]: None,
        second["id"]: None,
    }


def test_a_record_action_writing_what_the_validator_refuses_is_a_422_and_changes_nothing(
    devices: Api,
) -> None:
    action = {
        "name": "reserial",
        "label": "Change serial",
        "entity": "device",
        "permission": "update",
        "input_schema": {
            "type": "object",
            "required": ["serial"],
            "properties": {"serial": {"type": "string"}},
        },
        "steps": [
            {"type": "set_fields", "values": {"notes": '"re-serialled"'}},
            {"type": "set_fields", "values": {"serial": "input.serial"}},
        ],
    }
    assert devices.post(f"{V1}/meta/actions", action).status_code == 201
    device = devices.post(DEVICES, {"serial": GOOD}).json()
    run = f"{DEVICES}/{device['id']}/actions/reserial"
    refused = devices.post(run, {"serial": BAD})
    assert refused.status_code == 422, refused.text
    assert "step 2" in refused.json()["detail"]
    assert [(f, c) for f, c, _ in errors_of(refused)] == [("serial", "serial_checksum")]
    stored = devices.get(f"{DEVICES}/{device['id']}").json()
    assert (stored["serial"], stored.get("notes"), stored["version"]) == (GOOD, None, 1)
    assert devices.post(run, {"serial": "11111117"}).status_code == 200


def test_metadata_naming_a_validator_the_server_lacks_is_refused_at_its_pointer(
    devices: Api,
) -> None:
    doc = {**DEVICE, "name": "gadget"}
    doc["validation_rules"] = [{"name": "gone", "hook": "acme.gone", "field": "serial"}]
    refused = devices.post(f"{V1}/meta/entities", doc)
    assert refused.status_code == 422, refused.text
    [(where, code, message)] = errors_of(refused)
    assert (where, code) == ("/validation_rules/0/hook", "unknown_validator")
    assert "acme.gone" in message and CHECKSUM in message
    # A package naming it is refused the same way, and nothing of it stays.
    package = {"format": "metacrm.package", "format_version": 1, "entities": [doc]}
    with pytest.raises(Unprocessable) as imported, devices.services.writing() as conn:
        apply_package(devices.records(conn, find_user(conn, ADMIN_EMAIL)), package)
    assert ("/validation_rules/0/hook", "unknown_validator") in {
        (e.field, e.code) for e in imported.value.errors
    }
    assert devices.get(f"{V1}/meta/entities/gadget").status_code == 404


def test_a_server_lacking_a_validator_refuses_writes_it_would_judge_and_says_why(
    devices: Api, caplog: pytest.LogCaptureFixture
) -> None:
    device = devices.post(DEVICES, {"serial": GOOD}).json()
    # The same database served by a process without the plugin: the built-in registry.
    services = build_services(devices.services.settings, devices.engine)
    assert CHECKSUM not in services.registry.validators
    app = build_app(services.settings, services=services)
    with (
        TestClient(app, raise_server_exceptions=False) as client,
        caplog.at_level(logging.ERROR, "metacrm.validators"),
    ):
        headers = devices.headers()
        created = client.post(DEVICES, json={"serial": GOOD}, headers=headers)
        assert created.status_code == 503, created.text
        problem = created.json()
        assert problem["validator"] == CHECKSUM and CHECKSUM in problem["detail"]
        changed = client.patch(f"{DEVICES}/{device['id']}", json={"notes": "x"}, headers=headers)
        assert changed.status_code == 503, changed.text
        # Reading needs no validator.
        assert client.get(f"{DEVICES}/{device['id']}", headers=headers).status_code == 200
    assert CHECKSUM in caplog.text
    assert [d["id"] for d in all_devices(devices)] == [device["id"]]
    assert devices.get(f"{DEVICES}/{device['id']}").json()["version"] == 1
