"""What the OpenAPI schema needs beyond what drf-spectacular infers.

- The token schemes we accept, so Swagger's *Authorize* button and generated clients
  work: ``Authorization: Token <key>``, ``Authorization: Bearer <key>`` and ``x-api-key``
  (CompreFace's header). Any one of them is enough.
- The error body every endpoint answers with, and a helper to list the statuses an
  operation returns.
- The ``?wait=SECONDS`` parameter of the endpoints that wait for their job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers

F = TypeVar("F", bound=Callable[..., Any])
TOKEN_SCHEMES = ["Token", "Bearer", "ApiKey"]


class ApiTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Our API tokens, under the three headers clients send them in."""

    target_class = "webapp.accounts.authentication.ApiTokenAuthentication"
    match_subclasses = True  # DeepStack's variant also reads the `api_key` form field
    name = TOKEN_SCHEMES

    def get_security_definition(self, auto_schema: AutoSchema) -> list[dict[str, Any]]:
        return [
            {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "An API token as `Token <key>` (Account → API tokens).",
            },
            {
                "type": "http",
                "scheme": "bearer",
                "description": "An API token as `Bearer <key>`.",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": "x-api-key",
                "description": "An API token in CompreFace's header.",
            },
        ]

    def get_security_requirement(self, auto_schema: AutoSchema) -> list[dict[str, list[Any]]]:
        return [{name: []} for name in TOKEN_SCHEMES]  # any one of them (OR)


ErrorBody = inline_serializer(
    "ErrorBody",
    {
        "error": inline_serializer(
            "ErrorDetail",
            {
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "details": serializers.DictField(),
            },
        )
    },
)

_MEANINGS = {
    400: "The request is invalid; `error.message` says which field and why.",
    401: "No credentials, or an invalid or revoked token.",
    403: "Your role may not do this.",
    404: "An id in the request does not exist.",
    409: "Conflicts with the current state (a duplicate, a cancelled job).",
    410: "An upload the job needed is gone.",
    413: "A file is over the size or pixel limit.",
    422: "Understood but not doable (for example no face in the photo).",
    503: "No model is active for this yet.",
    504: "The job did not finish within the wait; it goes on running.",
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """``{status: the error body}`` for an operation's ``responses``."""
    return {s: OpenApiResponse(ErrorBody, description=_MEANINGS.get(s, "")) for s in statuses}


WAIT_PARAMETER = OpenApiParameter(
    "wait",
    float,
    description=(
        "Seconds to wait for the job before answering (default and maximum 60): the "
        "result when it is done in time, else 202 with the job to poll. 0 answers with "
        "the job at once."
    ),
)


def waiting_schema(
    body: Any, errors: tuple[int, ...], *, done: tuple[int, ...] = (200,), **more: Any
) -> Callable[[F], F]:
    """``extend_schema`` for an endpoint that takes a multipart ``body``, waits for its job
    (``?wait=``) and answers its result (``done`` statuses), 202, or one of ``errors``."""
    parameters = [WAIT_PARAMETER, *more.pop("parameters", [])]
    return extend_schema(
        request={"multipart/form-data": body},
        parameters=parameters,
        responses={
            **dict.fromkeys((*done, 202), OpenApiTypes.OBJECT),
            **error_responses(*errors),
        },
        **more,
    )


# ----------------------------------------------------------------------------- every status
_HTTP_METHODS = ("get", "put", "post", "delete", "patch")
_MEANINGS_MORE = {
    429: "Too many attempts (bad tokens or logins): wait and retry.",
    **_MEANINGS,
}
_ERROR_SCHEMAS = {
    "ErrorBody": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {"type": "object", "additionalProperties": {}},
                },
            }
        },
    },
    "CompreFaceError": {
        "type": "object",
        "description": "CompreFace's error body: its numeric code where it has one, else 0.",
        "required": ["message", "code"],
        "properties": {"message": {"type": "string"}, "code": {"type": "integer"}},
    },
    "DeepStackError": {
        "type": "object",
        "description": "DeepStack's error body.",
        "required": ["success", "error"],
        "properties": {
            "success": {"type": "boolean", "enum": [False]},
            "error": {"type": "string"},
            "code": {"type": "integer"},
        },
    },
}


def _error_schema_of(path: str) -> str:
    if path.startswith(("/api/v1/recognition/", "/api/v1/verification/")):
        return "CompreFaceError"
    if path.startswith("/v1/vision/"):
        return "DeepStackError"
    return "ErrorBody"


def _statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses any operation of this shape can answer (besides its own)."""
    statuses = {401, 403, 429}
    writes = method in ("post", "put", "patch", "delete")
    if writes or operation.get("parameters") or "requestBody" in operation:
        statuses |= {400, 404}  # a malformed body or parameter; an id (path, query, body) unknown
    if writes:
        statuses |= {409, 413}  # a conflicting state; a body over REQUEST_MAX_BYTES
    if method == "post":
        statuses.add(503)  # a job that cannot be queued, or no active model
    if any(p.get("name") == "wait" for p in operation.get("parameters", [])):
        statuses.add(504)
    return statuses


def document_every_status(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: every operation lists every error status it can
    answer, each with the body it really has (ours, CompreFace's or DeepStack's).

    The views document what is particular to them; what every endpoint shares (401 and 403
    from authentication, 400 from parsing, 404 from ids, 413 from the body cap, 429 from
    throttling, 503 when a job cannot be queued, 504 from waits) is added here, so clients
    and schema-driven tests see the statuses and shapes the API answers.
    """
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in _ERROR_SCHEMAS.items():
        schemas.setdefault(name, schema)
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            ref = {"$ref": f"#/components/schemas/{_error_schema_of(path)}"}
            for status in sorted(_statuses(path, method, operation)):
                responses.setdefault(str(status), {"description": _MEANINGS_MORE.get(status, "")})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = {"application/json": {"schema": ref}}
                    response.setdefault("description", _MEANINGS_MORE.get(int(status), ""))
    return result
