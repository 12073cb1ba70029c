"""Detection endpoints: the native `POST /api/v1/detect/` and DeepStack's
`POST /v1/vision/detection`, so tools that talk to DeepStack / CodeProject.AI work unchanged.

Both go through a Job on the `gpu` queue and wait for it, as DeepStack and CompreFace
answer: up to ``?wait=SECONDS`` (default and cap :data:`~webapp.jobs.waiting.MAX_WAIT_S`),
then 202 with the job; ``?wait=0`` asks for the job at once.

``min_confidence`` is on the scale the model serves: calibrated confidence (the probability
that a box is a true positive at IoU 0.5) for a version with a score calibration, else raw
scores. Without one, the model's working threshold (max F1 on its validation split)
applies. The native API answers each box's ``confidence`` and ``raw_score``; DeepStack's
answer keeps DeepStack's fields (``confidence`` only).
"""

from __future__ import annotations

import time
from typing import Any

from django.http import QueryDict
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.accounts.authentication import ApiTokenAuthentication, authenticate_throttled
from webapp.accounts.models import ApiToken, User, signed_in_user
from webapp.api.errors import ApiError
from webapp.api.parsers import JSONParser
from webapp.api.schema import image_form, waiting_schema
from webapp.api.serializers import PixelBox
from webapp.detection.services import resolve_version
from webapp.images import uploads
from webapp.images.models import Dataset, Image
from webapp.jobs.models import Job, JobKind
from webapp.jobs.services import start_job
from webapp.jobs.waiting import job_response, parse_wait, required_result, wait_for_job

# Largest id a database integer column holds: bigger ids are refused, not sent to the query.
MAX_ID = 2**63 - 1


class DetectOptions(serializers.Serializer[Any]):
    dataset = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=MAX_ID,
        help_text="Use this dataset's own detector (default: the images' dataset).",
    )
    min_confidence = serializers.FloatField(
        required=False,
        allow_null=True,
        min_value=0.0,
        max_value=1.0,
        help_text="Keep boxes with at least this (calibrated) confidence "
        "(default: the model's working threshold).",
    )
    iou_threshold = serializers.FloatField(
        required=False, default=0.45, min_value=0.0, max_value=1.0
    )
    model_version = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_ID
    )


class DetectRequest(DetectOptions):
    image = serializers.FileField(required=False, allow_empty_file=True)
    image_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID), required=False
    )


class DetectUpload(DetectOptions):
    """For the schema: a photo uploaded as multipart."""

    image = serializers.FileField()


class DetectStored(DetectOptions):
    """For the schema: stored images by id, as JSON."""

    image_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID), min_length=1
    )


def _with_query(request: Request, names: tuple[str, ...]) -> Any:
    """The body's fields, with query parameters filling in those the body does not send."""
    if isinstance(request.data, QueryDict):
        data: Any = QueryDict(mutable=True)
        for key in request.data:
            data.setlist(key, request.data.getlist(key))
    else:
        data = dict(request.data)
    for name in names:
        if name not in data and name in request.query_params:
            data[name] = request.query_params[name]
    return data


def _dataset_of(ids: list[int], dataset_id: int | None) -> Dataset | None:
    """The dataset whose own detector serves the request; the images must exist."""
    images = dict(Image.objects.filter(pk__in=ids).values_list("pk", "dataset_id"))
    missing = sorted(set(ids) - set(images))
    if missing:
        raise ApiError(
            "unknown_image",
            f"No image with id {missing[0]}.",
            status_code=404,
            details={"missing": missing},
        )
    wanted = dataset_id or (images[ids[0]] if ids else None)
    if wanted is None:
        return None
    dataset = Dataset.objects.filter(pk=wanted).first()
    if dataset is None:
        raise ApiError("unknown_dataset", f"Dataset {wanted} does not exist.", status_code=404)
    return dataset


def start_detection(
    user: User, params: dict[str, Any], upload: Any | None, dataset: Dataset | None
) -> Job:
    """Resolve the model (404/503 now, not as a failed job), stash the upload, start."""
    version = resolve_version(params.get("model_version"), dataset=dataset)
    params = {**params, "model_version": version.pk}
    if upload is not None:
        content = uploads.decode(uploads.read_limited(upload)).content
        params["uploads"] = [uploads.stash(content, name=upload.name or "", field="image")]
    return start_job(JobKind.DETECT, user=user, dataset=dataset, params=params)


class DetectView(APIView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @waiting_schema(
        DetectRequest,
        (400, 401, 403, 404, 413, 503, 504),
        request={
            "multipart/form-data": image_form(DetectUpload, "image"),
            "application/json": DetectStored,
        },
        parameters=[
            OpenApiParameter(
                "model_version", {"type": "integer", "minimum": 1}, description="As the field."
            )
        ],
    )
    def post(self, request: Request) -> Response:
        wait_s = parse_wait(request)
        if hasattr(request.FILES, "getlist"):
            uploads.single_file(request.FILES, "image")
        payload = DetectRequest(data=_with_query(request, ("model_version", "dataset")))
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        upload, ids = data.get("image"), data.get("image_ids") or []
        if (upload is None) == (not ids):
            raise ApiError("invalid", "Send either an `image` file or `image_ids`, not both.")
        dataset = _dataset_of(ids, data.get("dataset"))
        params = {
            "min_confidence": data.get("min_confidence"),
            "iou_threshold": data["iou_threshold"],
            "model_version": data.get("model_version"),
            "image_ids": ids,
        }
        job = start_detection(signed_in_user(request.user), params, upload, dataset)

        def single(result: dict[str, Any]) -> dict[str, Any]:
            one = upload is None and len(ids) == 1
            return {**result, **result["images"][0]} if one else result

        return job_response(wait_for_job(job, wait_s), shape=single)


class DeepStackAuthentication(ApiTokenAuthentication):
    """DeepStack clients send their key as an `api_key` form field."""

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        found = super().authenticate(request)
        if found is not None:
            return found
        key = request.POST.get("api_key", "").strip()
        return authenticate_throttled(request, key) if key else None


class DeepStackRequest(serializers.Serializer[Any]):
    """DeepStack's form, as its clients send it (documented; the view reads it itself)."""

    image = serializers.FileField()
    min_confidence = serializers.FloatField(
        required=False,
        min_value=0.0,
        max_value=1.0,
        help_text="Default: the model's working threshold.",
    )
    api_key = serializers.CharField(required=False, help_text="Instead of a token header.")


class DeepStackPrediction(PixelBox):
    label = serializers.CharField()  # type: ignore[assignment]  # a field named label
    confidence = serializers.FloatField()


class DeepStackAnswer(serializers.Serializer[Any]):
    """For the schema: DeepStack's detection answer, with our model version added."""

    success = serializers.BooleanField()
    predictions = DeepStackPrediction(many=True)
    count = serializers.IntegerField()
    message = serializers.CharField()
    code = serializers.IntegerField()
    inferenceMs = serializers.FloatField(allow_null=True)
    processMs = serializers.FloatField()
    moduleId = serializers.CharField()
    model_version = serializers.DictField(allow_null=True)


def _deepstack_confidence(raw: str) -> float | None:
    """The form's ``min_confidence``: ``None`` when not sent (the working threshold)."""
    if not raw.strip():
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise ApiError("invalid", "min_confidence must be a number between 0 and 1.")
    return value


class DeepStackDetectionView(APIView):
    parser_classes = [MultiPartParser, FormParser]
    authentication_classes = [DeepStackAuthentication]

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        error = response.data.get("error", {}) if isinstance(response.data, dict) else {}
        response.data = {
            "success": False,
            "error": error.get("message", str(exc)),
            "code": response.status_code,
        }
        return response

    @waiting_schema(
        DeepStackRequest,
        (400, 401, 413, 503, 504),
        answer_only=True,
        result=DeepStackAnswer,
        tags=["deepstack"],
    )
    def post(self, request: Request) -> Response:
        wait_s = parse_wait(request, answer_only=True)
        upload = uploads.single_file(request.FILES, "image")
        if upload is None:
            raise ApiError("invalid", "No `image` file in the request.")
        min_confidence = _deepstack_confidence(request.POST.get("min_confidence", ""))
        began = time.perf_counter()
        user = signed_in_user(request.user)
        job = start_detection(user, {"min_confidence": min_confidence}, upload, None)
        result = required_result(wait_for_job(job, wait_s))
        predictions = [
            {
                "label": p["label"],
                "confidence": p["confidence"],
                "x_min": round(p["x_min"]),
                "y_min": round(p["y_min"]),
                "x_max": round(p["x_max"]),
                "y_max": round(p["y_max"]),
            }
            for p in result.get("predictions", [])
        ]
        return Response(
            {
                "success": True,
                "predictions": predictions,
                "count": len(predictions),
                "message": f"Found {len(predictions)} objects",
                "code": 200,
                "inferenceMs": result.get("inference_ms"),
                "processMs": round((time.perf_counter() - began) * 1000, 1),
                "moduleId": "vision-workbench-yolo",
                "model_version": result.get("model_version"),
            }
        )


__all__ = ["DeepStackDetectionView", "DetectView"]
