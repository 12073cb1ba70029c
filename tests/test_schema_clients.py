"""The OpenAPI schema is usable by clients: token schemes to authorize, file bodies to send."""

from __future__ import annotations

import pytest
import yaml

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(labeler_api):
    response = labeler_api.get("/api/v1/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def test_the_token_schemes_we_accept_are_declared(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["Token"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "An API token as `Token <key>` (Account → API tokens).",
    }
    assert schemes["Bearer"]["type"] == "http" and schemes["Bearer"]["scheme"] == "bearer"
    assert schemes["ApiKey"]["in"] == "header" and schemes["ApiKey"]["name"] == "x-api-key"
    security = schema["paths"]["/api/v1/detect/"]["post"]["security"]
    # Any one scheme is enough (a list of alternatives), not all three at once.
    assert {"Token": []} in security and {"Bearer": []} in security and {"ApiKey": []} in security


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/api/v1/detect/", ["image"]),
        ("/v1/vision/detection", ["image"]),
        ("/api/v1/faces/verify/", ["source_image", "target_image"]),
        ("/api/v1/faces/recognize/", ["image"]),
        ("/api/v1/faces/subjects/{id}/faces/", ["image"]),
        ("/api/v1/images/", ["file"]),
    ],
)
def test_file_bodies_are_multipart_with_binary_fields(schema, path, fields):
    body = schema["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]
    ref = body["schema"]["$ref"].rsplit("/", 1)[-1]
    properties = schema["components"]["schemas"][ref]["properties"]
    for field in fields:
        prop = properties[field]
        binary = prop.get("format") == "binary" or prop.get("items", {}).get("format") == "binary"
        assert binary, (path, field, prop)


def test_waiting_endpoints_document_wait_and_their_errors(schema):
    operation = schema["paths"]["/api/v1/faces/verify/"]["post"]
    assert any(p["name"] == "wait" and p["in"] == "query" for p in operation["parameters"])
    assert {"200", "202", "400", "413", "503"} <= set(operation["responses"])
    error = operation["responses"]["400"]["content"]["application/json"]["schema"]["$ref"]
    assert error.endswith("/ErrorBody")


def _resolved(schema, node):
    if "$ref" in node:
        return schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def test_compat_routes_describe_their_bodies_and_query(schema):
    """CompreFace's and DeepStack's routes: named fields in, a described answer out (they
    were free-form objects, so generated clients and the fuzzer saw nothing)."""
    compat = {
        p: ops
        for p, ops in schema["paths"].items()
        if p.startswith(("/api/v1/recognition/", "/api/v1/verification/", "/v1/vision/"))
    }
    assert len(compat) == 7  # 6 CompreFace paths and DeepStack detection
    for path, operations in compat.items():
        for method, operation in operations.items():
            answers = [s for s in operation["responses"] if s.startswith("2")]
            assert answers, (method, path)
            for status in answers:
                body = operation["responses"][status]["content"]["application/json"]["schema"]
                assert _resolved(schema, body).get("properties"), (method, path, status)
            for content in operation.get("requestBody", {}).get("content", {}).values():
                body = _resolved(schema, content["schema"])
                assert body.get("properties") and body.get("required"), (method, path, body)
    add = schema["paths"]["/api/v1/recognition/faces/"]["post"]
    assert {p["name"]: p.get("required", False) for p in add["parameters"]}["subject"] is True
    recognize = schema["paths"]["/api/v1/recognition/recognize/"]["post"]
    query = {p["name"]: p["schema"] for p in recognize["parameters"]}
    assert query["prediction_count"] == {"type": "integer", "minimum": 1, "maximum": 100}
    assert query["wait"]["exclusiveMinimum"] is True  # answers only with the result
    form = recognize["requestBody"]["content"]["multipart/form-data"]
    assert form["encoding"]["file"]["contentType"].startswith("image/jpeg, image/png")


def test_request_bodies_say_what_validation_refuses(schema):
    run = schema["paths"]["/api/v1/training/runs/"]["post"]["requestBody"]["content"]
    body = run["application/json"]["schema"]
    assert body["additionalProperties"] is False and body["required"] == ["dataset"]
    assert body["properties"]["batch_size"]["enum"][-1] == 1024
    assert body["properties"]["img_size"]["multipleOf"] == 32
    splits = _resolved(
        schema,
        schema["paths"]["/api/v1/datasets/{id}/splits/"]["post"]["requestBody"]["content"][
            "application/json"
        ]["schema"],
    )
    assert splits["additionalProperties"] is False
    new_box = _resolved(
        schema,
        schema["paths"]["/api/v1/images/{id}/boxes/"]["post"]["requestBody"]["content"][
            "application/json"
        ]["schema"],
    )
    assert set(new_box["required"]) == {"x1", "y1", "x2", "y2"}
    subject = _resolved(
        schema,
        schema["paths"]["/api/v1/faces/subjects/"]["post"]["requestBody"]["content"][
            "application/json"
        ]["schema"],
    )
    assert subject["properties"]["name"]["maxLength"] == 255
    assert "\\u0000" in subject["properties"]["name"]["pattern"]  # NUL is refused
