"""Every response and request schema of the OpenAPI document is complete (issue 10: the history
response was `{"type": "array"}` without items, so a generated client dropped it), over a
database with entities of every field type, a pipeline, an approval process, a role that hides
fields and entities, and names that collide with the document's own schemas; and what the API
answers matches what the document says."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Api
from jsonschema import Draft202012Validator, FormatChecker
from openapi_lint import lint
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from metacrm.runtime.api.openapi import build_openapi

V1 = "/api/v1"
OPENAPI = f"{V1}/openapi.json"
FORMULAS = ("text", "integer", "decimal", "boolean", "date", "datetime")

EVERYTHING = {
    "name": "account",
    "label": {"en": "Account"},
    "title_field": "name",
    "fields": [
        {"name": "name", "type": "text", "required": True, "max_length": 200},
        {"name": "notes", "type": "textarea"},
        {"name": "employees", "type": "integer", "min": 0},
        {"name": "revenue", "type": "decimal", "precision": 14, "scale": 2},
        {"name": "active", "type": "boolean", "default": True},
        {"name": "founded", "type": "date"},
        {"name": "last_contact", "type": "datetime"},
        {"name": "email", "type": "email"},
        {"name": "phone", "type": "phone"},
        {"name": "website", "type": "url"},
        {"name": "tier", "type": "picklist", "options": [{"value": "gold"}, {"value": "silver"}]},
        {"name": "tags", "type": "multipicklist", "options": [{"value": "vip"}, {"value": "new"}]},
        {"name": "parent", "type": "lookup", "target": "account"},
        {"name": "manager", "type": "user"},
        {"name": "number", "type": "autonumber", "pattern": "ACC-{seq:4}"},
        *(
            {
                "name": f"f_{kind}",
                "type": "formula",
                "result_type": kind,
                "expression": {
                    "text": "upper(name)",
                    "integer": "employees + 1",
                    "decimal": "revenue * 2",
                    "boolean": "employees > 10",
                    "date": "founded",
                    "datetime": "last_contact",
                }[kind],
            }
            for kind in FORMULAS
        ),
    ],
}
DEAL = {
    "name": "deal",
    "label": {"en": "Deal"},
    "title_field": "name",
    "fields": [
        {"name": "name", "type": "text", "required": True},
        {"name": "account", "type": "lookup", "target": "account"},
        {"name": "amount", "type": "decimal", "precision": 14, "scale": 2},
        {"name": "discount", "type": "integer", "min": 0, "max": 100},
        {"name": "stage", "type": "picklist", "options": [{"value": "new"}, {"value": "won"}]},
    ],
}
# Named like schemas the document has of its own ("Webhook") and in two words ("SalesOrder").
WEBHOOK_ENTITY = {
    "name": "webhook",
    "label": {"en": "Webhook (an entity)"},
    "fields": [{"name": "topic", "type": "text"}],
}
SALES_ORDER = {
    "name": "sales_order",
    "label": {"en": "Sales order"},
    "fields": [
        {"name": "deal", "type": "lookup", "target": "deal"},
        {"name": "lines", "type": "integer"},
    ],
}
PIPELINE = {
    "name": "sales",
    "label": {"en": "Sales"},
    "entity": "deal",
    "field": "stage",
    "stages": [
        {"key": "new", "label": {"en": "New"}, "category": "open", "probability": 10},
        {"key": "won", "label": {"en": "Won"}, "category": "won", "probability": 100},
    ],
}
PROCESS = {
    "name": "discount",
    "label": {"en": "Discount"},
    "entity": "deal",
    "entry_condition": "discount > 10",
    "steps": [
        {
            "name": "boss",
            "label": {"en": "Boss"},
            "approvers": [{"type": "role", "role": "rep"}],
        }
    ],
}
# Record actions on deals: one with an input schema the rep may run, one needing a permission
# the rep lacks (so their document leaves it out).
DISCOUNT_ACTION = {
    "name": "give_discount",
    "label": {"en": "Give a discount"},
    "entity": "deal",
    "permission": "update",
    "input_schema": {
        "type": "object",
        "required": ["percent"],
        "additionalProperties": False,
        "properties": {
            "percent": {"type": "integer", "minimum": 0, "maximum": 100},
            "why": {"type": "string", "maxLength": 200},
        },
    },
    "steps": [{"type": "set_fields", "values": {"discount": "input.percent"}}],
}
WIN_ACTION = {
    "name": "win",
    "label": {"en": "Win"},
    "entity": "deal",
    "permission": "delete",
    "steps": [{"type": "move_stage", "stage": "won"}],
}
# Sees deals (not accounts: a deal's lookup expands to an unknown record) and sales orders
# without their line counts.
REP = {
    "name": "rep",
    "label": {"en": "Rep"},
    "entities": {
        "deal": {"actions": {"read": "all", "create": "own", "update": "all"}},
        "sales_order": {"actions": {"read": "all"}, "fields": {"lines": {"access": "hidden"}}},
    },
}


def made(response: Any, status: int = 201) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
def crm(api: Api) -> Api:
    for entity in (EVERYTHING, DEAL, WEBHOOK_ENTITY, SALES_ORDER):
        api.make_entity(entity)
    made(api.post(f"{V1}/meta/roles", REP))
    made(api.post(f"{V1}/meta/pipelines", PIPELINE))
    made(api.post(f"{V1}/meta/approval-processes", PROCESS))
    made(api.post(f"{V1}/meta/actions", DISCOUNT_ACTION))
    made(api.post(f"{V1}/meta/actions", WIN_ACTION))
    return api


def document_of(api: Api, token: str | None = None) -> dict[str, Any]:
    return made(api.get(OPENAPI, headers={"Authorization": f"Bearer {token or api.token}"}), 200)


def response_validator(document: dict[str, Any], path: str, method: str, status: int) -> Any:
    """Validates a body against the document's schema for that response, references and all."""
    registry = Registry().with_resource("urn:doc", DRAFT202012.create_resource(document))
    content = document["paths"][path][method]["responses"][str(status)]["content"]
    pointer = "/".join(
        part.replace("~", "~0").replace("/", "~1")
        for part in ("paths", path, method, "responses", str(status), "content")
    )
    media = next(iter(content))
    schema = {"$ref": f"urn:doc#/{pointer}/{media.replace('/', '~1')}/schema"}
    return Draft202012Validator(schema, registry=registry, format_checker=FormatChecker())


def conforms(document: dict[str, Any], path: str, method: str, response: Any) -> None:
    validator = response_validator(document, path, method, response.status_code)
    errors = sorted(validator.iter_errors(response.json()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


# ---- the document ----------------------------------------------------------------------------


def test_the_admins_document_is_valid_and_every_schema_in_it_is_complete(crm: Api) -> None:
    document = document_of(crm)
    validate(document, cls=OpenAPIV31SpecValidator)
    assert lint(document) == []
    schemas = document["components"]["schemas"]
    assert {"Account", "Deal", "SalesOrder", "Entity_webhook", "Webhook"} <= set(schemas)
    assert schemas["Webhook"]["properties"]["url"]["format"] == "uri"  # ours, not the entity's
    assert "topic" in schemas["Entity_webhookInput"]["properties"]
    # The record's lookups name what `expand` embeds: the target's own schema.
    parent = schemas["Account"]["properties"]["parent"]["anyOf"]
    assert {"$ref": "#/components/schemas/Account"} in parent


def test_a_restricted_callers_document_is_complete_too(crm: Api) -> None:
    document = document_of(crm, crm.new_user("rep@example.com", roles=("rep",)))
    validate(document, cls=OpenAPIV31SpecValidator)
    assert lint(document) == []
    schemas = document["components"]["schemas"]
    assert "Account" not in schemas and "lines" not in schemas["SalesOrder"]["properties"]
    # A lookup to an entity the caller can't use expands to an object with its id.
    account = schemas["Deal"]["properties"]["account"]["anyOf"]
    assert any(s.get("required") == ["id"] for s in account)


def test_the_reference_without_metadata_is_complete(crm: Api) -> None:
    document = build_openapi(crm.client.app.state.routes, None)
    validate(document, cls=OpenAPIV31SpecValidator)
    assert lint(document) == []
    assert "/api/v1/records/{entity}" in document["paths"]
    assert "Account" not in document["components"]["schemas"]


def test_each_action_has_its_own_operation_with_its_input_schema(crm: Api) -> None:
    paths = document_of(crm)["paths"]
    own = paths[f"{V1}/records/deal/{{id}}/actions/give_discount"]["post"]
    assert own["operationId"] == "run_deal_give_discount"
    assert own["summary"] == "Give a discount"
    body = own["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == DISCOUNT_ACTION["input_schema"]
    result = own["responses"]["200"]["content"]["application/json"]["schema"]
    assert result["properties"]["result"]["properties"]["record"] == {
        "$ref": "#/components/schemas/Deal"
    }
    assert {"409", "422", "423"} <= set(own["responses"])
    win = paths[f"{V1}/records/deal/{{id}}/actions/win"]["post"]
    assert win["requestBody"]["required"] is False
    # The operation taking any action's name is there too, for every entity.
    assert "post" in paths[f"{V1}/records/deal/{{id}}/actions/{{action}}"]
    assert "post" in paths[f"{V1}/records/account/{{id}}/actions/{{action}}"]
    assert not any(p.startswith(f"{V1}/records/account/{{id}}/actions/") and "{action}" not in p
                   for p in paths)  # fmt: skip


def test_a_callers_document_lists_only_the_actions_their_roles_may_run(crm: Api) -> None:
    paths = document_of(crm, crm.new_user("rep@example.com", roles=("rep",)))["paths"]
    assert f"{V1}/records/deal/{{id}}/actions/give_discount" in paths
    assert f"{V1}/records/deal/{{id}}/actions/win" not in paths


def test_the_history_response_describes_its_entries(crm: Api) -> None:
    history = document_of(crm)["paths"][f"{V1}/records/deal/{{id}}/history"]["get"]
    schema = history["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["properties"]["data"]["items"] == {"$ref": "#/components/schemas/HistoryEntry"}


def test_every_operation_has_a_summary_and_a_unique_operation_id(crm: Api) -> None:
    document = document_of(crm)
    operations = [
        op for item in document["paths"].values() for op in item.values() if isinstance(op, dict)
    ]
    assert len(operations) > 100
    assert all(op.get("summary") for op in operations)
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids))


# ---- answers match the document --------------------------------------------------------------


def test_answers_of_management_and_record_endpoints_match_their_schemas(crm: Api) -> None:
    document = document_of(crm)
    rep_token = crm.new_user("rep@example.com", roles=("rep",))
    rep_id = made(crm.get(f"{V1}/me", headers={"Authorization": f"Bearer {rep_token}"}), 200)["id"]
    account = made(crm.post(f"{V1}/records/account", {"name": "Acme", "tags": ["vip"]}))
    deal = made(
        crm.post(
            f"{V1}/records/deal",
            {"name": "Big", "account": account["id"], "amount": "10.50", "discount": 20},
        )
    )
    made(crm.patch(f"{V1}/records/deal/{deal['id']}", {"stage": "won"}), 200)
    deal_path = f"{V1}/records/deal/{{id}}"
    checks = [
        (deal_path, "get", crm.get(f"{V1}/records/deal/{deal['id']}?expand=account")),
        (f"{deal_path}/history", "get", crm.get(f"{V1}/records/deal/{deal['id']}/history")),
        (f"{deal_path}/stages", "get", crm.get(f"{V1}/records/deal/{deal['id']}/stages")),
        (
            f"{deal_path}/approvals",
            "post",
            crm.post(f"{V1}/records/deal/{deal['id']}/approvals", {"process": "discount"}),
        ),
        (f"{deal_path}/approvals", "get", crm.get(f"{V1}/records/deal/{deal['id']}/approvals")),
        (f"{deal_path}/actions", "get", crm.get(f"{V1}/records/deal/{deal['id']}/actions")),
        (
            f"{deal_path}/actions/give_discount",
            "post",
            crm.post(f"{V1}/records/deal/{deal['id']}/actions/give_discount", {"percent": 5}),
        ),
        (f"{V1}/meta/actions", "get", crm.get(f"{V1}/meta/actions")),
        (f"{V1}/meta/actions/{{name}}", "get", crm.get(f"{V1}/meta/actions/deal.win")),
        (f"{V1}/records/account", "get", crm.get(f"{V1}/records/account?count=true")),
        (f"{V1}/meta/entities", "get", crm.get(f"{V1}/meta/entities")),
        (f"{V1}/meta/entities/{{name}}", "get", crm.get(f"{V1}/meta/entities/deal")),
        (
            f"{V1}/meta/entities/{{name}}/fields",
            "post",
            crm.post(f"{V1}/meta/entities/deal/fields", {"name": "memo", "type": "text"}),
        ),
        (
            f"{V1}/meta/entities/{{name}}",
            "put",
            crm.put(f"{V1}/meta/entities/webhook?dry_run=true", WEBHOOK_ENTITY),
        ),
        (
            f"{V1}/meta/entities/{{name}}/versions",
            "get",
            crm.get(f"{V1}/meta/entities/deal/versions"),
        ),
        (
            f"{V1}/meta/entities/{{name}}/rules/test",
            "post",
            crm.post(f"{V1}/meta/entities/deal/rules/test", {"expression": "discount > 5"}),
        ),
        (f"{V1}/meta/pipelines", "get", crm.get(f"{V1}/meta/pipelines")),
        (f"{V1}/meta/pipelines/{{name}}", "get", crm.get(f"{V1}/meta/pipelines/sales")),
        (f"{V1}/meta/roles", "get", crm.get(f"{V1}/meta/roles")),
        (f"{V1}/meta/approval-processes", "get", crm.get(f"{V1}/meta/approval-processes")),
        (
            f"{V1}/approvals",
            "get",
            crm.get(f"{V1}/approvals", headers={"Authorization": f"Bearer {rep_token}"}),
        ),
        (f"{V1}/me/permissions", "get", crm.get(f"{V1}/me/permissions")),
        (f"{V1}/users", "get", crm.get(f"{V1}/users")),
        (
            f"{V1}/webhooks",
            "post",
            crm.post(
                f"{V1}/webhooks",
                {"name": "n", "url": "https://example.com/h", "events": ["*"], "entity": "deal"},
            ),
        ),
        (
            f"{V1}/me/delegations",
            "post",
            crm.post(
                f"{V1}/me/delegations",
                {
                    "delegate": rep_id,
                    "starts_at": "2030-01-01T00:00:00Z",
                    "ends_at": "2030-02-01T00:00:00Z",
                },
            ),
        ),
        (f"{V1}/notifications", "get", crm.get(f"{V1}/notifications")),
        ("/healthz", "get", crm.client.get("/healthz")),
    ]
    for path, method, response in checks:
        assert response.status_code < 300, f"{method} {path}: {response.text}"
        conforms(document, path, method, response)


def test_a_response_that_breaks_its_schema_is_noticed(crm: Api) -> None:
    document = document_of(crm)
    response = crm.get(f"{V1}/meta/entities")
    validator = response_validator(document, f"{V1}/meta/entities", "get", 200)
    assert validator.is_valid(response.json())
    broken = response.json()
    broken["data"][0]["fields"] = "many"
    assert not validator.is_valid(broken)


# ---- a generated client ---------------------------------------------------------------------


def generate_client(document: dict[str, Any], where: Path) -> str:
    """Generate a Python client with openapi-python-client; its output (warnings included)."""
    source = where / "openapi.json"
    source.write_text(json.dumps(document))
    tools = Path(sys.executable).parent
    command = [str(tools / "openapi-python-client"), "generate", "--path", str(source)]
    done = subprocess.run(
        [*command, "--output-path", str(where / "client"), "--overwrite"],
        cwd=where,
        env={**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def test_a_generated_client_keeps_every_operation_and_reads_history(
    crm: Api, tmp_path: Path
) -> None:
    document = document_of(crm)
    output = generate_client(document, tmp_path)
    assert "Warning" not in output and "Unable" not in output, output
    account = made(crm.post(f"{V1}/records/account", {"name": "Acme"}))
    made(crm.patch(f"{V1}/records/account/{account['id']}", {"employees": 12}), 200)
    sys.path.insert(0, str(tmp_path / "client"))
    try:
        package = importlib.import_module("metacrm_client")
        client = package.AuthenticatedClient(base_url="http://testserver", token=crm.token)
        crm.client.headers["Authorization"] = f"Bearer {crm.token}"
        client.set_httpx_client(crm.client)
        history = importlib.import_module("metacrm_client.api.account.history_account")
        found = history.sync(id=account["id"], client=client)
        assert [entry.version for entry in found.data] == [2, 1]
        assert found.data[0].changes.additional_properties["employees"].new == 12
        deal = made(crm.post(f"{V1}/records/deal", {"name": "Big"}))
        discount = importlib.import_module("metacrm_client.api.deal.run_deal_give_discount")
        models = importlib.import_module("metacrm_client.models")
        given = discount.sync(
            id=deal["id"], client=client, body=models.RunDealGiveDiscountBody(percent=15)
        )
        assert given.result.record.discount == 15
        listing = importlib.import_module("metacrm_client.api.account.list_account")
        page = listing.sync(client=client, count=True)
        assert page.count == 1 and page.data[0].name == "Acme"
    finally:
        sys.path.remove(str(tmp_path / "client"))
        for name in [n for n in sys.modules if n.split(".")[0] == "metacrm_client"]:
            del sys.modules[name]


def test_the_generator_complains_about_an_incomplete_document(crm: Api, tmp_path: Path) -> None:
    document = document_of(crm)
    document["components"]["schemas"]["HistoryEntry"]["title"] = "Account"
    assert "duplicate models" in generate_client(document, tmp_path)
