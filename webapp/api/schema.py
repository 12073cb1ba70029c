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
    OpenApiRequest,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers

from webapp.api.serializers import JobSerializer

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
    {"type": "number", "minimum": 0},
    description=(
        "Seconds to wait for the job before answering (default 60; more is read as 60): "
        "the result when it is done in time, else 202 with the job to poll. 0 answers "
        "with the job at once."
    ),
)
# The DeepStack and CompreFace routes answer only with the result: a wait of 0 is refused.
ANSWER_WAIT_PARAMETER = OpenApiParameter(
    "wait",
    {"type": "number", "exclusiveMinimum": True, "minimum": 0},
    description=(
        "Seconds to wait for the result (default 60; more is read as 60), then 504. "
        "This route answers only with the result, so 0 is refused."
    ),
)
# What an image field takes (webapp.images.validation.ACCEPTED_FORMATS), as the multipart
# part's Content-Type: generated clients and fuzzers then send images, not any bytes.
IMAGE_CONTENT_TYPES = (
    "image/jpeg, image/png, image/webp, image/bmp, image/tiff, image/gif, image/x-portable-pixmap"
)


JOB_ACCEPTED = OpenApiResponse(
    inline_serializer("JobAccepted", {"job": JobSerializer()}),
    description="Not done within the wait: the job, to poll at /api/v1/jobs/{id}/.",
)


def image_form(body: Any, *fields: str) -> OpenApiRequest:
    """A multipart ``body`` whose ``fields`` are image files."""
    return OpenApiRequest(body, encoding={f: {"contentType": IMAGE_CONTENT_TYPES} for f in fields})


def waiting_schema(
    body: Any,
    errors: tuple[int, ...],
    *,
    done: tuple[int, ...] = (200,),
    images: tuple[str, ...] = ("image",),
    answer_only: bool = False,
    result: Any = OpenApiTypes.OBJECT,
    **more: Any,
) -> Callable[[F], F]:
    """``extend_schema`` for an endpoint that takes a multipart ``body`` (``images``: its
    image fields), waits for its job (``?wait=``) and answers its result (``done``
    statuses, the body ``result``), 202 with the job (unless ``answer_only``), or one of
    ``errors``. A ``request`` in ``more`` replaces the multipart body (several content
    types)."""
    parameters = [ANSWER_WAIT_PARAMETER if answer_only else WAIT_PARAMETER]
    parameters += more.pop("parameters", [])
    request = more.pop("request", None) or {"multipart/form-data": image_form(body, *images)}
    answers: dict[int, Any] = dict.fromkeys(done, result)
    if not answer_only:
        answers[202] = JOB_ACCEPTED
    return extend_schema(
        request=request,
        parameters=parameters,
        responses={
            **answers,
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


# Request bodies whose views refuse a field they do not know (the rest ignore them).
CLOSED_BODIES = {"SplitsBodyRequest", "SizesBodyRequest"}


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
    for name in CLOSED_BODIES & set(schemas):
        schemas[name]["additionalProperties"] = False
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
