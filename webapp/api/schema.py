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
