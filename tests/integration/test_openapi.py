"""The OpenAPI document (docs/api.md, "HTTP basics"): valid OpenAPI 3.1, generated from the
metadata as it is now, and honoured by the API itself, as a bounded schemathesis run over it
shows."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
import schemathesis
from conftest import ACCOUNT, OPPORTUNITY, Api
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

OPENAPI = "/api/v1/openapi.json"
RECORDS = "/api/v1/records"
META = "/api/v1/meta/entities"

# 20 generated requests per operation (records, metadata, approvals, webhooks, notifications,
# delegations), each half valid and half off the document in one place: enough to find a 500,
# a quarter of a minute on SQLite (the suite has a ten-minute budget).
EXAMPLES_PER_OPERATION = 20
# Whole metadata documents (entities, roles, pipelines, approval processes) are described by
# their real JSON Schemas: each generated one is a deep, mostly valid document, slow to make
# and to apply, and a few of them go further than twenty random objects would.
EXAMPLES_PER_DOCUMENT_WRITE = 8
DOCUMENT_WRITE = re.compile(r"^(POST|PUT) /api/v1/meta/[a-z-]+(/\{name\})?$")
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]


@pytest.fixture
def crm(api: Api) -> Api:
    api.make_entity(ACCOUNT)
    api.make_entity(OPPORTUNITY)
    return api


def openapi(api: Api) -> dict[str, Any]:
    response = api.get(OPENAPI)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def named(document: dict[str, Any], schema: str) -> Draft202012Validator:
    """A validator of one of the document's schemas, its references resolved in the document."""
    registry = Registry().with_resource("urn:doc", DRAFT202012.create_resource(document))
    return Draft202012Validator(
        {"$ref": f"urn:doc#/components/schemas/{schema}"},
        registry=registry,
        format_checker=FormatChecker(),
    )


def create(api: Api, entity: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(f"{RECORDS}/{entity}", body)
    assert response.status_code == 201, response.text
    return response.json()


# ---- the document ----------------------------------------------------------------------------


def test_openapi_json_is_a_valid_openapi_3_1_document(crm: Api) -> None:
    document = openapi(crm)
    assert document["openapi"].startswith("3.1")
    validate(document, cls=OpenAPIV31SpecValidator)


def test_openapi_json_is_valid_without_any_entities(api: Api) -> None:
    validate(openapi(api), cls=OpenAPIV31SpecValidator)


def test_openapi_describes_the_records_endpoints_of_every_entity(crm: Api) -> None:
    paths = openapi(crm)["paths"]
    for entity in ("account", "opportunity"):
        assert set(paths[f"{RECORDS}/{entity}"]) >= {"get", "post"}
        assert set(paths[f"{RECORDS}/{entity}/{{id}}"]) >= {"get", "patch", "delete"}
        assert "post" in paths[f"{RECORDS}/{entity}/{{id}}/restore"]
        assert "get" in paths[f"{RECORDS}/{entity}/{{id}}/history"]
    assert set(paths[META]) >= {"get", "post"}
    assert set(paths[f"{META}/{{name}}"]) >= {"get", "put"}
    assert "post" in paths[f"{META}/{{name}}/fields"]
    assert set(paths[f"{META}/{{name}}/fields/{{field}}"]) >= {"patch", "delete"}


def test_openapi_has_a_record_schema_and_an_input_schema_per_entity(crm: Api) -> None:
    schemas = openapi(crm)["components"]["schemas"]
    assert {"Account", "AccountInput", "Opportunity", "OpportunityInput"} <= set(schemas)
    record = schemas["Opportunity"]["properties"]
    for name in ("id", "version", "owner", "created_at", "updated_at", "name", "amount", "tags"):
        assert name in record, name
    assert "deleted_at" not in record
    assert set(record["stage"]["enum"]) >= {"qualify", "proposal", "negotiation", "won", "lost"}
    accepted = schemas["OpportunityInput"]
    assert accepted["additionalProperties"] is False
    assert "number" in accepted["properties"]  # an autonumber: described, never accepted
    assert set(schemas["Account"]["properties"]) >= {"id", "name", "industry", "website"}


def test_records_the_api_returns_match_their_published_schema(crm: Api) -> None:
    account = create(crm, "account", {"name": "Acme", "industry": "retail"})
    opportunity = create(
        crm,
        "opportunity",
        {
            "name": "Big deal",
            "amount": "1200.50",
            "account": account["id"],
            "close_date": "2030-01-31",
            "tags": ["hot"],
            "email": "buyer@example.com",
        },
    )
    document = openapi(crm)
    named(document, "Account").validate(account)
    named(document, "Opportunity").validate(opportunity)
    expanded = crm.get(f"{RECORDS}/opportunity/{opportunity['id']}", params={"expand": "account"})
    assert expanded.status_code == 200, expanded.text
    named(document, "Opportunity").validate(expanded.json())
    assert not named(document, "Opportunity").is_valid({**expanded.json(), "account": {"x": 1}})


def test_a_field_added_through_the_metadata_api_is_in_the_next_document(crm: Api) -> None:
    before = openapi(crm)["components"]["schemas"]
    assert "discount" not in before["Opportunity"]["properties"]
    response = crm.post(
        f"{META}/opportunity/fields", {"name": "discount", "type": "integer", "min": 0}
    )
    assert response.status_code == 201, response.text
    after = openapi(crm)
    validate(after, cls=OpenAPIV31SpecValidator)
    schemas = after["components"]["schemas"]
    assert "integer" in schemas["Opportunity"]["properties"]["discount"]["type"]
    assert "integer" in schemas["OpportunityInput"]["properties"]["discount"]["type"]


def test_a_caller_sees_only_the_entities_and_fields_their_roles_show(crm: Api) -> None:
    role = {
        "name": "viewer",
        "label": {"en": "Viewer"},
        "entities": {
            "account": {"actions": {"read": "own"}, "fields": {"name": {"access": "hidden"}}}
        },
    }
    assert crm.post("/api/v1/meta/roles", role).status_code == 201
    token = crm.new_user("viewer@example.com", roles=("viewer",))
    response = crm.get(OPENAPI, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    document = response.json()
    validate(document, cls=OpenAPIV31SpecValidator)
    schemas = document["components"]["schemas"]
    assert "name" not in schemas["Account"]["properties"]
    assert "name" not in schemas["AccountInput"]["properties"]
    assert "Opportunity" not in schemas
    assert f"{RECORDS}/opportunity" not in document["paths"]
    # The admin still sees everything.
    assert "name" in openapi(crm)["components"]["schemas"]["Account"]["properties"]


def test_a_new_entity_gets_paths_and_schemas_in_the_next_document(crm: Api) -> None:
    assert f"{RECORDS}/contact" not in openapi(crm)["paths"]
    crm.make_entity(
        {
            "name": "contact",
            "label": {"en": "Contact"},
            "fields": [{"name": "full_name", "type": "text", "required": True}],
        }
    )
    after = openapi(crm)
    validate(after, cls=OpenAPIV31SpecValidator)
    assert f"{RECORDS}/contact" in after["paths"]
    assert "full_name" in after["components"]["schemas"]["Contact"]["properties"]


def test_the_docs_page_is_html(api: Api) -> None:
    response = api.get("/api/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()
    assert OPENAPI in response.text


# ---- the API against its own document --------------------------------------------------------


# A record action with an input schema, so its own operation is exercised with generated input.
SET_PROBABILITY = {
    "name": "set_probability",
    "label": "Set probability",
    "entity": "opportunity",
    "permission": "update",
    "input_schema": {
        "type": "object",
        "required": ["probability"],
        "additionalProperties": False,
        "properties": {
            "probability": {"type": "integer", "minimum": 0, "maximum": 100},
            "close": {"type": "string", "format": "date"},
            "note": {"type": "string", "maxLength": 100},
        },
    },
    "steps": [
        {
            "type": "set_fields",
            "values": {
                "probability": "input.probability",
                "close_date": "coalesce(input.close, close_date)",
            },
        }
    ],
}


def _seed(api: Api) -> dict[str, list[str]]:
    api.make_entity(ACCOUNT)
    api.make_entity(OPPORTUNITY)
    assert api.post("/api/v1/meta/actions", SET_PROBABILITY).status_code == 201
    acme = create(api, "account", {"name": "Acme", "industry": "retail"})
    globex = create(api, "account", {"name": "Globex", "website": "https://globex.example"})
    deals = [
        create(
            api, "opportunity", {"name": "Big deal", "amount": "1200.50", "account": acme["id"]}
        ),
        create(api, "opportunity", {"name": "Small deal", "close_date": "2030-06-30"}),
    ]
    return {
        "account": [acme["id"], globex["id"]],
        "opportunity": [deal["id"] for deal in deals],
    }


def _real_path_values(operation: Any, ids: dict[str, list[str]]) -> st.SearchStrategy[Any]:
    """Sometimes point a generated request at a seeded record or a real entity, not a made-up
    one, so the handlers past the 404 are exercised too."""
    path = operation.path
    if path.startswith(RECORDS) and "{id}" in path:
        entity = path.removeprefix(f"{RECORDS}/").split("/")[0]
        real = {"id": st.sampled_from(ids[entity])}
        if "{action}" in path:
            real["action"] = st.just(SET_PROBABILITY["name"])
        return st.one_of(st.none(), st.fixed_dictionaries(real))
    if path.startswith(f"{META}/{{name}}"):
        return st.one_of(st.none(), st.fixed_dictionaries({"name": st.sampled_from(list(ids))}))
    return st.none()


def _cases(operation: Any) -> st.SearchStrategy[Any]:
    """Valid requests, and requests that break the document in one place (which must get a 4xx,
    never a 5xx)."""
    return st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )


def _send(api: Api, case: Any) -> httpx.Response:
    """Send a generated request through the test client, which turns an unhandled exception into
    the 500 a real server would answer, so the checks see it and print the request."""
    request = case.as_transport_kwargs(base_url=str(api.client.base_url))
    # Always signed in: negative cases would otherwise spend a fifth of the budget on 401s.
    headers = {**request.get("headers", {}), **api.headers()}
    return api.client.request(
        request["method"],
        request["url"],
        params=request.get("params"),
        # Bytes, as a server reads them: generated header values may be any latin-1 text.
        headers={k: v.encode("latin-1") for k, v in headers.items()},
        json=request.get("json"),
        content=request.get("data"),
    )


@pytest.mark.slow
def test_schemathesis_finds_no_server_errors_and_no_response_breaking_the_document(
    sqlite_api: Api,
) -> None:
    ids = _seed(sqlite_api)
    schema = schemathesis.openapi.from_dict(openapi(sqlite_api)).include(
        path_regex=r"^/api/v1/(records/|meta/|approvals|webhooks|notifications|me/delegations)"
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    # Deleting an entity takes it (and its records) away from every later request: run it last.
    operations.sort(key=lambda op: (op.method.upper(), op.path) == ("DELETE", f"{META}/{{name}}"))
    assert len(operations) >= 20
    found: list[str] = []

    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_DOCUMENT_WRITE
            if DOCUMENT_WRITE.match(operation.label)
            else EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=_cases(operation), real=_real_path_values(operation, ids))
        def exercise(case: Any, real: dict[str, str] | None) -> None:
            if real is not None:
                case.path_parameters.update(real)
            response = _send(sqlite_api, case)
            case.validate_response(response, checks=CHECKS, headers=sqlite_api.headers())

        try:
            exercise()
        except (Exception, BaseExceptionGroup) as failure:
            found.append(f"{operation.label}:\n{failure}")

    assert not found, "\n\n".join(found)
