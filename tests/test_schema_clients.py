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
