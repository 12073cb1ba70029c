"""Detection endpoints: the native `POST /api/v1/detect/` and DeepStack's
`POST /v1/vision/detection`, so tools that talk to DeepStack / CodeProject.AI work unchanged.

Both go through a Job on the `gpu` queue; small requests wait for it (`?wait=SECONDS`).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.accounts.authentication import ApiTokenAuthentication
from webapp.accounts.models import ApiToken, User, hash_token
from webapp.api.errors import ApiError
from webapp.api.serializers import JobSerializer
from webapp.images.models import Image
from webapp.images.validation import ImageRejected, decode_upload
from webapp.jobs.models import Job, JobStatus
from webapp.jobs.services import start_job

MAX_WAIT_S = 60.0
_POLL_S = 0.02


class DetectRequest(serializers.Serializer[Any]):
    image = serializers.FileField(required=False, allow_empty_file=True)
    image_ids = serializers.ListField(child=serializers.IntegerField(), required=False)
    min_confidence = serializers.FloatField(
        required=False, default=0.25, min_value=0.0, max_value=1.0
    )
    iou_threshold = serializers.FloatField(
        required=False, default=0.45, min_value=0.0, max_value=1.0
    )
    model_version = serializers.IntegerField(required=False, allow_null=True)


TEMP_MAX_AGE_S = 3600.0


def sweep_stale_uploads(now: float | None = None) -> int:
    """Delete transient uploads older than an hour (their job was cancelled or never ran)."""
    folder = Path(settings.MEDIA_ROOT) / "tmp"
    if not folder.is_dir():
        return 0
    cutoff = (now or time.time()) - TEMP_MAX_AGE_S
    stale = [p for p in folder.iterdir() if p.is_file() and p.stat().st_mtime < cutoff]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def stash_upload(uploaded: Any) -> str:
    """Validate an uploaded image like any upload and keep it where the worker can read it.

    The detect job deletes the file once read; files whose job never ran are swept here.
    """
    sweep_stale_uploads()
    if uploaded.size and uploaded.size > settings.UPLOAD_MAX_BYTES:
        raise ImageRejected("file_too_large", "The image is larger than the upload limit.")
    decoded = decode_upload(
        uploaded.read(), max_bytes=settings.UPLOAD_MAX_BYTES, max_pixels=settings.UPLOAD_MAX_PIXELS
    )
    name = default_storage.save(
        f"tmp/{uuid.uuid4().hex}{decoded.extension}", ContentFile(decoded.content)
    )
    return default_storage.path(name)


def wait_for_job(job: Job, wait_s: float) -> Job:
    deadline = time.monotonic() + min(max(wait_s, 0.0), MAX_WAIT_S)
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if not job.is_active:
            return job
        time.sleep(_POLL_S)
    job.refresh_from_db()
    return job


def parse_wait(request: Request, default: float = 0.0) -> float:
    raw = request.query_params.get("wait")
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ApiError("invalid", f"wait must be a number of seconds, got {raw!r}.") from None


def start_detection(user: User, params: dict[str, Any], upload: Any | None) -> Job:
    if upload is not None:
        try:
            params["temp_path"] = stash_upload(upload)
        except ImageRejected as exc:
            code = 413 if exc.code in ("file_too_large", "too_many_pixels") else 400
            raise ApiError(exc.code, exc.message, status_code=code) from None
    return start_job("detect", user=user, params=params)


class DetectView(APIView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def post(self, request: Request) -> Response:
        payload = DetectRequest(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        upload, ids = data.get("image"), data.get("image_ids") or []
        if (upload is None) == (not ids):
            raise ApiError("invalid", "Send either an `image` file or `image_ids`, not both.")
        missing = sorted(
            set(ids) - set(Image.objects.filter(pk__in=ids).values_list("pk", flat=True))
        )
        if missing:
            raise ApiError(
                "unknown_image",
                f"No image with id {missing[0]}.",
                status_code=404,
                details={"missing": missing},
            )
        params = {
            "min_confidence": data["min_confidence"],
            "iou_threshold": data["iou_threshold"],
            "model_version": data.get("model_version"),
            "image_ids": ids,
        }
        job = wait_for_job(start_detection(request.user, params, upload), parse_wait(request))  # type: ignore[arg-type]
        if job.status == JobStatus.DONE:
            body = dict(job.result or {})
            body["job"] = job.pk
            if upload is None and len(ids) == 1:
                body.update(body["images"][0])
            return Response(body)
        if job.status == JobStatus.FAILED:
            raise ApiError("detection_failed", job.error, status_code=422, details={"job": job.pk})
        return Response({"job": JobSerializer(job).data}, status=status.HTTP_202_ACCEPTED)


class DeepStackAuthentication(ApiTokenAuthentication):
    """DeepStack clients send their key as an `api_key` form field."""

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        found = super().authenticate(request)
        if found is not None:
            return found
        key = request.POST.get("api_key", "").strip()
        if not key:
            return None
        token = (
            ApiToken.objects.active()
            .select_related("user")
            .filter(key_hash=hash_token(key))
            .first()
        )
        if token is None or not token.user.is_active:
            from rest_framework.exceptions import AuthenticationFailed

            raise AuthenticationFailed("Invalid or revoked API key.")
        return token.user, token


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

    def post(self, request: Request) -> Response:
        upload = request.FILES.get("image")
        if upload is None:
            raise ApiError("invalid", "No `image` file in the request.")
        try:
            min_confidence = float(request.POST.get("min_confidence", 0.45))
        except ValueError:
            raise ApiError("invalid", "min_confidence must be a number between 0 and 1.") from None
        if not 0.0 <= min_confidence <= 1.0:
            raise ApiError("invalid", "min_confidence must be a number between 0 and 1.")
        began = time.perf_counter()
        job = start_detection(request.user, {"min_confidence": min_confidence}, upload)  # type: ignore[arg-type]
        job = wait_for_job(job, parse_wait(request, default=MAX_WAIT_S))
        if job.status != JobStatus.DONE:
            message = job.error or "Detection did not finish in time; is a worker running?"
            raise ApiError("detection_failed", message, status_code=500)
        result = job.result or {}
        predictions = [
            {
                **p,
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
