"""The faces API under ``/api/v1/faces/``: verify, recognize, subjects and their faces.

Views are thin: they validate the request (fields, image bytes, early refusals that need no
model), hand model work to a job on the `gpu` queue and, with ``?wait=SECONDS``, answer
with its result; otherwise 202 with the job. Subject and face bookkeeping is synchronous.

Verify and recognize compute and store nothing, so viewers may POST to them; enrolling,
renaming and deleting need a labeler or admin.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from webapp.accounts.models import signed_in_user
from webapp.accounts.permissions import RolePermission
from webapp.api.errors import ApiError
from webapp.api.serializers import JobSerializer
from webapp.detection.api import parse_wait, sweep_stale_uploads, wait_for_job
from webapp.faces import enrollment, services
from webapp.faces.models import Face, Subject
from webapp.faces.services import FaceError, UploadedImage
from webapp.jobs.models import Job, JobStatus
from webapp.jobs.services import start_job

# ---------------------------------------------------------------------------- plumbing


class FacesPermission(RolePermission):
    """Role rules, except that views marked ``read_like`` accept a POST from any role."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if getattr(view, "read_like", False):
            return bool(request.user and request.user.is_authenticated)
        return super().has_permission(request, view)


class FaceErrorsMixin:
    """Answer a FaceError with the API's one error body."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, FaceError):
            exc = ApiError(exc.code, exc.message, status_code=exc.status, details=exc.details)
        return super().handle_exception(exc)  # type: ignore[misc,no-any-return]


def read_upload(uploaded: Any, field: str) -> UploadedImage:
    """Validate one uploaded file (size first, then its pixels)."""
    if uploaded.size and uploaded.size > settings.UPLOAD_MAX_BYTES:
        raise FaceError(
            "file_too_large",
            f"{field}: the file is larger than the upload limit "
            f"({settings.UPLOAD_MAX_BYTES / 2**20:.1f} MB).",
            status=413,
            details={"field": field},
        )
    return services.read_image(uploaded.read(), uploaded.name or "", field=field)


def stash(upload: UploadedImage, field: str) -> dict[str, str]:
    """Keep a validated upload where the worker can read it; the job deletes it."""
    sweep_stale_uploads()
    name = default_storage.save(f"tmp/{uuid.uuid4().hex}.upload", ContentFile(upload.data))
    return {"path": default_storage.path(name), "name": upload.name, "field": field}


def run_job(request: Request, kind: str, params: dict[str, Any], default_wait: float) -> Job:
    """Start a face job and wait for it as the request asks (``?wait=SECONDS``)."""
    job = start_job(kind, user=signed_in_user(request.user), params=params)
    return wait_for_job(job, parse_wait(request, default_wait))


def job_error(job: Job) -> ApiError:
    """The failed or unfinished job as an API error."""
    if job.status == JobStatus.CANCELLED:
        return ApiError("job_cancelled", f"Job {job.pk} was cancelled.", status_code=409)
    recorded = (job.result or {}).get("error") if isinstance(job.result, dict) else None
    if isinstance(recorded, dict):
        details = {**(recorded.get("details") or {}), "job": job.pk}
        return ApiError(
            str(recorded["code"]),
            str(recorded["message"]),
            status_code=int(recorded["status"]),
            details=details,
        )
    if job.status == JobStatus.FAILED:
        return ApiError("job_failed", job.error, status_code=500, details={"job": job.pk})
    return ApiError(
        "not_finished",
        f"Job {job.pk} did not finish in time; is a worker running?",
        status_code=503,
        details={"job": job.pk},
    )


def job_response(job: Job, *, done_status: int = status.HTTP_200_OK) -> Response:
    """200 with the result, 202 with the job while it runs, or the job's error."""
    if job.status == JobStatus.DONE:
        return Response({**(job.result or {}), "job": job.pk}, status=done_status)
    if job.is_active:
        return Response({"job": JobSerializer(job).data}, status=status.HTTP_202_ACCEPTED)
    raise job_error(job)


@extend_schema_field(OpenApiTypes.STR)
class BoxField(serializers.Field[Any, Any, Any, Any]):
    """A face box ``x1,y1,x2,y2`` in pixels: a JSON list or a comma-separated string."""

    def to_internal_value(self, data: Any) -> list[float]:
        values = data.split(",") if isinstance(data, str) else data
        try:
            box = [float(v) for v in values]
        except (TypeError, ValueError):
            raise serializers.ValidationError("A box is four numbers: x1,y1,x2,y2.") from None
        if len(box) != 4 or not all(math.isfinite(v) for v in box):
            raise serializers.ValidationError("A box is four numbers: x1,y1,x2,y2.")
        if box[2] <= box[0] or box[3] <= box[1]:
            raise serializers.ValidationError("A box needs x2 > x1 and y2 > y1.")
        return box

    def to_representation(self, value: Any) -> Any:
        return value


class ThresholdField(serializers.FloatField):
    """An optional distance threshold: a finite number above 0."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, allow_null=True, **kwargs)

    def to_internal_value(self, data: Any) -> float:
        value = float(super().to_internal_value(data))
        if not math.isfinite(value) or value <= 0:
            raise serializers.ValidationError("The threshold must be a number above 0.")
        return value


# ---------------------------------------------------------------------------- verify


class VerifyRequest(serializers.Serializer[Any]):
    source_image = serializers.FileField(allow_empty_file=True)
    target_image = serializers.FileField(allow_empty_file=True)
    threshold = ThresholdField()
    detect_faces = serializers.BooleanField(default=True)
    source_box = BoxField(required=False, allow_null=True)
    target_box = BoxField(required=False, allow_null=True)


def check_detector(upload: UploadedImage, detect_faces: bool, box: Any, field: str) -> None:
    services.check_detector_available(
        upload.width, upload.height, detect_faces=detect_faces, box=box, field=field
    )


def verification_params(
    source: UploadedImage, target: UploadedImage, options: dict[str, Any]
) -> dict[str, Any]:
    """The verify job's params, after refusing what needs no model (no verifier, or no
    detector for a photo): the API and the verify page both start jobs from these."""
    services.active_verifier()  # 503 now rather than a failed job
    detect = bool(options.get("detect_faces", True))
    for upload, side in ((source, "source"), (target, "target")):
        check_detector(upload, detect, options.get(f"{side}_box"), f"{side}_image")
    return {
        "uploads": [stash(source, "source_image"), stash(target, "target_image")],
        "threshold": options.get("threshold"),
        "detect_faces": detect,
        "source_box": options.get("source_box"),
        "target_box": options.get("target_box"),
    }


def start_verification(
    request: Request,
    source: UploadedImage,
    target: UploadedImage,
    options: dict[str, Any],
    default_wait: float,
) -> Job:
    """Check the request, then run the verify job."""
    params = verification_params(source, target, options)
    return run_job(request, "verify", params, default_wait)


class VerifyView(FaceErrorsMixin, APIView):
    """``POST /api/v1/faces/verify/``: are the faces of two photos the same person?"""

    permission_classes = [FacesPermission]

    parser_classes = [MultiPartParser, FormParser]
    read_like = True

    @extend_schema(request=VerifyRequest, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        payload = VerifyRequest(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        source = read_upload(data["source_image"], "source_image")
        target = read_upload(data["target_image"], "target_image")
        return job_response(start_verification(request, source, target, data, 0.0))


# ---------------------------------------------------------------------------- recognize


class RecognizeRequest(serializers.Serializer[Any]):
    image = serializers.FileField(allow_empty_file=True)
    top_k = serializers.IntegerField(default=1, min_value=1, max_value=100)
    threshold = ThresholdField()
    detect_faces = serializers.BooleanField(default=True)
    box = BoxField(required=False, allow_null=True)
    limit = serializers.IntegerField(default=0, min_value=0)
    min_score = serializers.FloatField(default=0.0, min_value=0.0, max_value=1.0)


def recognition_params(upload: UploadedImage, options: dict[str, Any]) -> dict[str, Any]:
    """The recognize job's params, after refusing what needs no model (no verifier, or no
    detector for a photo): the API and the recognize page both start jobs from these."""
    services.active_verifier()  # 503 now rather than a failed job
    detect = bool(options.get("detect_faces", True))
    check_detector(upload, detect, options.get("box"), "image")
    return {
        "uploads": [stash(upload, "image")],
        "top_k": int(options.get("top_k", 1)),
        "threshold": options.get("threshold"),
        "detect_faces": detect,
        "box": options.get("box"),
        "limit": int(options.get("limit", 0)),
        "min_score": float(options.get("min_score", 0.0)),
    }


def start_recognition(
    request: Request, upload: UploadedImage, options: dict[str, Any], default_wait: float
) -> Job:
    """Check the request, then run the recognize job."""
    return run_job(request, "recognize", recognition_params(upload, options), default_wait)


class RecognizeView(FaceErrorsMixin, APIView):
    """``POST /api/v1/faces/recognize/``: who are the people in this photo?"""

    permission_classes = [FacesPermission]

    parser_classes = [MultiPartParser, FormParser]
    read_like = True

    @extend_schema(request=RecognizeRequest, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        payload = RecognizeRequest(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        upload = read_upload(data["image"], "image")
        return job_response(start_recognition(request, upload, data, 0.0))


# ---------------------------------------------------------------------------- subjects


class SubjectSerializer(serializers.ModelSerializer[Subject]):
    face_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = Subject
        fields = ["id", "name", "face_count", "created_at"]
        read_only_fields = ["id", "face_count", "created_at"]


class EnrollRequest(serializers.Serializer[Any]):
    detect_faces = serializers.BooleanField(default=True)
    box = BoxField(required=False, allow_null=True)


def enrollment_uploads(request: Request) -> list[UploadedImage]:
    """The photos of an enroll request: ``image`` (repeatable) and ``images``."""
    files = request.FILES.getlist("image") + request.FILES.getlist("images")
    if not files:
        raise ApiError(
            "invalid",
            "image: No file was submitted (send `image`, repeated for several photos).",
            details={"image": ["No file was submitted."]},
        )
    return [read_upload(f, f.name or "image") for f in files]


def start_enrollment(
    request: Request,
    subject: Subject,
    uploads: list[UploadedImage],
    options: dict[str, Any],
    default_wait: float,
) -> Job:
    """Refuse what needs no model (duplicates, no detector), then run the enroll job."""
    services.active_verifier()  # 503 now rather than a failed job
    if options.get("box") is not None and len(uploads) > 1:
        raise FaceError("invalid", "box: give a box only with a single photo.")
    enrollment.refuse_duplicates(subject, uploads)
    for upload in uploads:
        check_detector(upload, options["detect_faces"], options.get("box"), upload.name or "image")
    params = {
        "subject": subject.pk,
        "uploads": [stash(u, u.name or "image") for u in uploads],
        "detect_faces": options["detect_faces"],
        "box": options.get("box"),
    }
    return run_job(request, "enroll", params, default_wait)


class SubjectViewSet(
    FaceErrorsMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[Subject],
):
    """People of the recognition gallery, and their enrolled faces."""

    permission_classes = [FacesPermission]

    serializer_class = SubjectSerializer
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_queryset(self) -> QuerySet[Subject]:
        return enrollment.subjects().order_by("name")

    def get_object(self) -> Subject:
        raw = self.kwargs["pk"]
        try:
            return enrollment.get_subject(pk=int(raw))
        except ValueError:
            raise FaceError(
                "unknown_subject", f"No enrolled person with id {raw}.", status=404
            ) from None

    def perform_create(self, serializer: BaseSerializer[Subject]) -> None:
        user = signed_in_user(self.request.user)
        serializer.instance = enrollment.create_subject(serializer.validated_data["name"], user)

    def perform_update(self, serializer: BaseSerializer[Subject]) -> None:
        subject = serializer.instance
        assert isinstance(subject, Subject)
        name = serializer.validated_data.get("name", subject.name)
        serializer.instance = enrollment.rename_subject(subject, name)

    def perform_destroy(self, instance: Subject) -> None:
        enrollment.delete_subject(instance)

    @extend_schema(request=EnrollRequest, responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get", "post"], url_path="faces")
    def faces(self, request: Request, pk: str | None = None) -> Response:
        """GET: the subject's faces. POST: enroll one face per photo (`image`, repeatable)."""
        subject = self.get_object()
        if request.method == "GET":
            faces = Face.objects.filter(subject=subject).order_by("id")
            page = (
                self.paginator.paginate_queryset(faces, request, self) if self.paginator else None
            )
            rows = [enrollment.face_json(f) for f in (page if page is not None else faces)]
            return self.get_paginated_response(rows) if page is not None else Response(rows)
        options = EnrollRequest(data=request.data)
        options.is_valid(raise_exception=True)
        uploads = enrollment_uploads(request)
        job = start_enrollment(request, subject, uploads, options.validated_data, 0.0)
        return job_response(job, done_status=status.HTTP_201_CREATED)


class FaceViewSet(
    FaceErrorsMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[Face],
):
    """One enrolled face: read it, or delete it (its photo goes when no face uses it)."""

    permission_classes = [FacesPermission]

    def get_queryset(self) -> QuerySet[Face]:
        return Face.objects.filter(subject__dataset=services.gallery_dataset())

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(enrollment.face_json(self.get_object()))

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        face = self.get_object()
        enrollment.delete_faces(Face.objects.filter(pk=face.pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReembedView(FaceErrorsMixin, APIView):
    """``POST /api/v1/faces/reembed/`` (admins): recompute stale embeddings now."""

    permission_classes = [FacesPermission]

    admin_only_write = True

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        job = services.schedule_reembed(signed_in_user(request.user), force=True)
        if job is None:
            return Response(
                {"job": None, "message": "Nothing to re-embed, or a job is already on it."}
            )
        return Response({"job": JobSerializer(job).data}, status=status.HTTP_202_ACCEPTED)
