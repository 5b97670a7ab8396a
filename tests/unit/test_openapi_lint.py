"""The OpenAPI lint finds each hole a client generator falls into (so that its silence on our
document means something)."""

from __future__ import annotations

import copy
from typing import Any

from openapi_lint import lint


def document(schema: dict[str, Any], **operation: Any) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/things/{id}": {
                "get": {
                    "operationId": "get_thing",
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {
                            "description": "OK",
                            "content": {"application/json": {"schema": schema}},
                        }
                    },
                    **operation,
                }
            }
        },
        "components": {"schemas": {"Thing": {"type": "object", "properties": {"a": {}}}}},
    }


GOOD = {
    "type": "object",
    "properties": {
        "data": {"type": "array", "items": {"$ref": "#/components/schemas/Thing"}},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def test_a_complete_document_has_no_problems() -> None:
    assert lint(document(GOOD)) == []


def test_an_array_without_items_is_found_where_it_is() -> None:
    schema = copy.deepcopy(GOOD)
    schema["properties"]["history"] = {"type": "array"}
    schema["properties"]["empty"] = {"type": ["array", "null"], "items": {}}
    assert lint(document(schema)) == [
        "/paths/~1things~1{id}/get/responses/200/content/application~1json/schema"
        "/properties/empty: an array without items",
        "/paths/~1things~1{id}/get/responses/200/content/application~1json/schema"
        "/properties/history: an array without items",
    ]


def test_an_object_with_nothing_described_is_found_also_when_nested() -> None:
    schema = {"type": "object", "properties": {"x": {"anyOf": [{"type": "object"}, {}]}}}
    [problem] = lint(document(schema))
    assert problem.endswith("/properties/x/anyOf/0: an object without properties, "
                            "additionalProperties or $ref")  # fmt: skip


def test_a_success_response_without_a_schema_and_a_204_with_a_body_are_found() -> None:
    broken = document(GOOD)
    responses = broken["paths"]["/things/{id}"]["get"]["responses"]
    responses["201"] = {"description": "Created"}
    responses["204"] = {"description": "No content", "content": {"text/plain": {"schema": {}}}}
    problems = lint(broken)
    assert any("responses/201: no content" in p for p in problems)
    assert any("responses/204: a 204 with a body" in p for p in problems)


def test_an_operation_without_any_success_response_is_found() -> None:
    broken = document(GOOD)
    broken["paths"]["/things/{id}"]["get"]["responses"] = {"404": {"description": "no"}}
    assert "/paths/~1things~1{id}/get: no success response" in lint(broken)


def test_unresolved_and_external_references_are_found() -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": "#/components/schemas/Ghost"}}}
    schema["properties"]["b"] = {"$ref": "https://example.com/schema.json"}
    problems = lint(document(schema))
    assert len(problems) == 2
    assert all("does not resolve inside the document" in p for p in problems)


def test_a_request_body_without_a_schema_and_a_missing_path_parameter_are_found() -> None:
    broken = document(GOOD, requestBody={"content": {"application/json": {}}})
    broken["paths"]["/things/{id}"]["get"]["parameters"] = []
    problems = lint(broken)
    assert "/paths/~1things~1{id}/get/requestBody/content/application~1json: no schema" in problems
    assert "/paths/~1things~1{id}/get: path parameters [] != ['id']" in problems


def test_an_incomplete_named_schema_is_found_even_when_unused() -> None:
    broken = document(GOOD)
    broken["components"]["schemas"]["Loose"] = {"type": "object"}
    assert lint(broken) == [
        "/components/schemas/Loose: an object without properties, additionalProperties or $ref"
    ]
