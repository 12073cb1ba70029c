"""The OpenAPI description of the CompreFace-compatible routes (``webapp.faces.compreface``).

The views read their requests themselves, as CompreFace's clients send them: an image as a
multipart file or as base64 in a JSON body, options as query parameters. The serializers
here only describe that, and what each route answers, so generated clients and the fuzzer
in CI see the same contract CompreFace documents.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import serializers

from webapp.api.schema import ANSWER_WAIT_PARAMETER, image_form
from webapp.api.serializers import PixelBox
from webapp.faces.api import NameField
from webapp.faces.enrollment import NAME_SCHEMA

# The most a page number or a result count may be: past it a query's offset overflows.
MAX_COUNT = 1_000_000


def _query(name: str, schema: dict[str, Any], description: str, **more: Any) -> OpenApiParameter:
    return OpenApiParameter(name, schema, OpenApiParameter.QUERY, description=description, **more)


LIMIT = _query(
    "limit", {"type": "integer", "minimum": 0, "maximum": MAX_COUNT}, "The most faces (0: all)."
)
DET_PROB = _query(
    "det_prob_threshold",
    {"type": "number", "minimum": 0, "maximum": 1},
    "Keep faces whose detection score is at least this.",
)
PREDICTION_COUNT = _query(
    "prediction_count",
    {"type": "integer", "minimum": 1, "maximum": 100},
    "Candidates per face (default 1).",
)
SUBJECT = _query("subject", NAME_SCHEMA, "The subject's name.")
PAGE = _query("page", {"type": "integer", "minimum": 0, "maximum": MAX_COUNT}, "From 0.")
SIZE = _query("size", {"type": "integer", "minimum": 1, "maximum": 1000}, "Default 20.")


class VerifyFiles(serializers.Serializer[Any]):
    source_image = serializers.FileField()
    target_image = serializers.FileField()


class VerifyBase64(serializers.Serializer[Any]):
    source_image = serializers.CharField(help_text="The image as base64.")
    target_image = serializers.CharField(help_text="The image as base64.")


class ImageFile(serializers.Serializer[Any]):
    file = serializers.FileField()


class ImageBase64(serializers.Serializer[Any]):
    file = serializers.CharField(help_text="The image as base64 (a data: URL is fine).")


VERIFY_BODIES = {
    "multipart/form-data": image_form(VerifyFiles, "source_image", "target_image"),
    "application/json": VerifyBase64,
}
IMAGE_BODIES = {
    "multipart/form-data": image_form(ImageFile, "file"),
    "application/json": ImageBase64,
}


class CompreFaceBox(PixelBox):
    probability = serializers.FloatField()


class BoxOnly(serializers.Serializer[Any]):
    box = CompreFaceBox()


class FaceMatch(serializers.Serializer[Any]):
    box = CompreFaceBox()
    similarity = serializers.FloatField(help_text="0..1; 0.85 at the calibrated threshold.")


class VerifyResult(serializers.Serializer[Any]):
    source_image_face = BoxOnly()
    face_matches = FaceMatch(many=True)


class VerifyAnswer(serializers.Serializer[Any]):
    result = VerifyResult(many=True)


class SubjectSimilarity(serializers.Serializer[Any]):
    subject = serializers.CharField()
    similarity = serializers.FloatField()


class RecognizedFace(serializers.Serializer[Any]):
    box = CompreFaceBox()
    subjects = SubjectSimilarity(many=True)


class RecognizeAnswer(serializers.Serializer[Any]):
    result = RecognizedFace(many=True)


class Example(serializers.Serializer[Any]):
    image_id = serializers.CharField()
    subject = serializers.CharField()


class ExamplePage(serializers.Serializer[Any]):
    faces = Example(many=True)
    page_number = serializers.IntegerField()
    page_size = serializers.IntegerField()
    total_pages = serializers.IntegerField()
    total_elements = serializers.IntegerField()


class Deleted(serializers.Serializer[Any]):
    deleted = serializers.IntegerField(help_text="How many were deleted.")


class SubjectName(serializers.Serializer[Any]):
    subject = serializers.CharField(max_length=255)


class SubjectList(serializers.Serializer[Any]):
    subjects = serializers.ListField(child=serializers.CharField())


class Updated(serializers.Serializer[Any]):
    updated = serializers.BooleanField()


class NewName(serializers.Serializer[Any]):
    subject = NameField()


def _name_body() -> dict[str, Any]:
    return {"application/json": NewName, "multipart/form-data": NewName}


def compat(
    answer: Any,
    *,
    status: int = 200,
    request: Any = None,
    parameters: tuple[OpenApiParameter, ...] = (),
    waits: bool = False,
    **more: Any,
) -> Callable[[Any], Any]:
    """``extend_schema`` for one CompreFace route: its body, query and answer."""
    return extend_schema(
        request=request,
        parameters=[*parameters, *([ANSWER_WAIT_PARAMETER] if waits else [])],
        responses={status: OpenApiResponse(answer)},
        tags=["compreface"],
        **more,
    )


verify_schema = compat(
    VerifyAnswer,
    request=VERIFY_BODIES,
    parameters=(LIMIT, DET_PROB),
    waits=True,
)
recognize_schema = compat(
    RecognizeAnswer,
    request=IMAGE_BODIES,
    parameters=(LIMIT, PREDICTION_COUNT, DET_PROB),
    waits=True,
)
add_example_schema = compat(
    Example,
    status=201,
    request=IMAGE_BODIES,
    parameters=(_query("subject", NAME_SCHEMA, "The subject's name.", required=True),),
    waits=True,
)
list_examples_schema = compat(ExamplePage, parameters=(SUBJECT, PAGE, SIZE))
delete_examples_schema = compat(
    Deleted, parameters=(SUBJECT,), description="Without `subject`: every example (admins only)."
)
delete_example_schema = compat(Example, operation_id="compreface_delete_example")
list_subjects_schema = compat(SubjectList)
add_subject_schema = compat(SubjectName, status=201, request=_name_body())
delete_subjects_schema = compat(Deleted, description="Every subject (admins only).")
rename_subject_schema = compat(
    Updated, request=_name_body(), description="Rename; into an existing name merges."
)
delete_subject_schema = compat(SubjectName, operation_id="compreface_delete_subject")
