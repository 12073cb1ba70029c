"""Check a real answer against what our OpenAPI schema documents for its operation."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import jsonschema  # type: ignore[import-untyped]  # no stubs installed


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable`` and boolean ``exclusiveMinimum`` as JSON Schema says them."""
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    for bound, name in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if out.get(bound) is True:
            out[bound] = out.pop(name)
        elif out.get(bound) is False:
            out.pop(bound)
    return out


def operation(schema: dict[str, Any], method: str, url: str) -> dict[str, Any]:
    """The operation of ``schema`` that serves ``method url``."""
    path = urlsplit(url).path
    for template, operations in schema["paths"].items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template.rstrip("/")))
        if re.fullmatch(pattern + "/?", path) and method.lower() in operations:
            found: dict[str, Any] = operations[method.lower()]
            return found
    raise AssertionError(f"{method} {path} is not in the schema")


def assert_documented(
    schema: dict[str, Any], method: str, url: str, status: int, body: Any
) -> None:
    """``status`` is documented for the operation and ``body`` is valid for it."""
    responses = operation(schema, method, url)["responses"]
    assert str(status) in responses, f"{method} {url}: {status} is not documented"
    content = responses[str(status)].get("content", {}).get("application/json")
    assert content is not None, f"{method} {url}: {status} documents no JSON body"
    root = _json_schema({**content["schema"], "components": schema["components"]})
    jsonschema.Draft7Validator(root).validate(body)
