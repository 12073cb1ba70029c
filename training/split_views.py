"""``/api/v1/datasets/{id}/splits/``: build, extend and read a dataset's data-mismatch splits.

Thin: the body is checked here (types, unknown fields), then :mod:`training.split_service`
checks the rest (the target source exists, the sizes fit) before its first write.
Everyone signed in reads; labelers, reviewers and admins build (the API's
``RolePermission``); viewers get 403.
"""

from __future__ import annotations

import math
from typing import Any

from django.core.exceptions import ValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from training.split_service import SplitRequest, build_splits, split_report
from training.splits import SizeRequest
from webapp.api.errors import ApiError
from webapp.api.parsers import JSONParser
from webapp.api.schema import error_responses
from webapp.images.models import Dataset, slug_validator

BODY_FIELDS = {"target_source", "sizes", "keep_existing"}
SIZE_FIELDS = ("val", "test", "train_val")


class SizesBody(serializers.Serializer[Any]):
    """For the schema: a number below 1 is a fraction, a whole number of 1 or more a count."""

    val = serializers.FloatField(required=False, help_text="Of the target images.")
    test = serializers.FloatField(required=False, help_text="Of the target images.")
    train_val = serializers.FloatField(required=False, help_text="Of the images left for training.")


class SplitsBody(serializers.Serializer[Any]):
    """For the schema: ``POST``'s body."""

    target_source = serializers.CharField(
        required=False, help_text="The source val and test come from (default: the dataset's)."
    )
    sizes = SizesBody(required=False)
    keep_existing = serializers.BooleanField(
        required=False,
        default=True,
        help_text="True: never move a stored split. False: move what breaks the rules.",
    )


def _dataset(pk: int) -> Dataset:
    found = Dataset.objects.filter(pk=pk).first()
    if found is None:
        raise ApiError("not_found", f"No dataset with id {pk}.", status_code=404)
    return found


def _invalid(message: str, field: str) -> ApiError:
    return ApiError("invalid", message, details={"field": field})


def _target_source(value: Any) -> str:
    if value is None or value == "":
        return ""
    try:
        if not isinstance(value, str):
            raise ValidationError("not text")
        slug_validator(value)
    except ValidationError:
        raise _invalid(f"target_source: {slug_validator.message}", "target_source") from None
    return value


def _size(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid(f"sizes.{name} must be a number.", f"sizes.{name}")
    return float(value)


def _sizes(value: Any) -> SizeRequest:
    if value is None:
        return SizeRequest()
    if not isinstance(value, dict):
        raise _invalid("sizes must be an object with val, test and/or train_val.", "sizes")
    unknown = sorted(set(value) - set(SIZE_FIELDS))
    if unknown:
        raise _invalid(f"sizes: unknown field(s) {unknown}; use {list(SIZE_FIELDS)}.", "sizes")
    return SizeRequest(**{name: _size(name, value.get(name)) for name in SIZE_FIELDS})


def parse_body(data: Any) -> SplitRequest:
    """The POST body as a :class:`SplitRequest`; 400 on anything malformed."""
    if not isinstance(data, dict):
        raise ApiError("invalid", "The body must be a JSON object.")
    unknown = sorted(set(data) - BODY_FIELDS)
    if unknown:
        raise _invalid(f"Unknown field(s) {unknown}; use {sorted(BODY_FIELDS)}.", unknown[0])
    keep = data.get("keep_existing", True)
    if not isinstance(keep, bool):
        raise _invalid("keep_existing must be true or false.", "keep_existing")
    return SplitRequest(_target_source(data.get("target_source")), _sizes(data.get("sizes")), keep)


class DatasetSplitsView(APIView):
    """Counts per split × source × class and duplicate groups (GET); build or extend (POST)."""

    parser_classes = [JSONParser]

    @extend_schema(responses={200: OpenApiTypes.OBJECT, **error_responses(401, 404)})
    def get(self, request: Request, pk: int) -> Response:
        return Response(split_report(_dataset(pk)))

    @extend_schema(
        request=SplitsBody,
        responses={200: OpenApiTypes.OBJECT, **error_responses(400, 401, 403, 404)},
    )
    def post(self, request: Request, pk: int) -> Response:
        dataset = _dataset(pk)
        return Response(build_splits(dataset, parse_body(request.data)))
