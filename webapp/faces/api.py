"""The faces API under ``/api/v1/faces/``: verify, recognize, subjects and their faces.

Views are thin: they validate the request (fields, image bytes, early refusals that need no
model), hand model work to a job on the `gpu` queue and, with ``?wait=SECONDS``, answer
with its result; otherwise 202 with the job. Subject and face bookkeeping is synchronous.

Verify and recognize compute and store nothing, so viewers may POST to them; enrolling,
renaming and deleting need a labeler or admin.
"""

from __future__ import annotations

import math
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from webapp.accounts.models import signed_in_user
from webapp.accounts.permissions import RolePermission
from webapp.api.errors import ApiError
from webapp.api.parsers import JSONParser
from webapp.api.schema import waiting_schema
from webapp.api.serializers import JobSerializer
from webapp.faces import enrollment, services
from webapp.faces.models import Face, Subject
from webapp.faces.services import FaceError, UploadedImage
from webapp.images import uploads
from webapp.jobs.models import Job, JobKind
from webapp.jobs.services import start_job
from webapp.jobs.waiting import job_response, parse_wait, wait_for_job

# ---------------------------------------------------------------------------- plumbing


class FacesPermission(RolePermission):
    """Role rules, except that views marked ``read_like`` accept a POST from any role."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if getattr(view, "read_like", False):
            return bool(request.user and request.user.is_authenticated)
        return super().has_permission(request, view)


def read_upload(uploaded: Any, field: str) -> UploadedImage:
    """Validate one uploaded file (size first, then its pixels)."""
    return services.read_image(uploads.read_limited(uploaded, field), uploaded.name or "", field)


def stash(upload: UploadedImage, field: str) -> dict[str, str]:
    """Keep a validated upload where the worker can read it; the job deletes it."""
    return uploads.stash(upload.data, name=upload.name, field=field)


def run_job(request: Request, kind: str, params: dict[str, Any], wait_s: float) -> Job:
    """Start a face job as the signed-in user and wait for it up to ``wait_s``."""
    job = start_job(kind, user=signed_in_user(request.user), params=params)
    return wait_for_job(job, wait_s)


@extend_schema_field(
    {
        "type": "string",
        "pattern": r"^\s*[0-9.eE+-]+\s*(,\s*[0-9.eE+-]+\s*){3}$",
        "description": "x1,y1,x2,y2 in pixels, x2 > x1 and y2 > y1.",
        "nullable": True,
    }
)
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


@extend_schema_field({"type": "number", "minimum": 0, "exclusiveMinimum": True, "nullable": True})
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
    wait_s: float,
) -> Job:
    """Check the request, then run the verify job."""
    params = verification_params(source, target, options)
    return run_job(request, JobKind.VERIFY, params, wait_s)


class FaceQueryView(APIView):
    """An endpoint that asks a question of the models and stores nothing: any role may POST.

    Subclasses name the request serializer and how to start the job from its data.
    """

    permission_classes = [FacesPermission]
    parser_classes = [MultiPartParser, FormParser]
    read_like = True
    request_class: type[serializers.Serializer[Any]]

    def start(self, request: Request, data: dict[str, Any], wait_s: float) -> Job:
        raise NotImplementedError

    def post(self, request: Request) -> Response:
        wait_s = parse_wait(request)
        payload = self.request_class(data=request.data)
        payload.is_valid(raise_exception=True)
        return job_response(self.start(request, dict(payload.validated_data), wait_s))


QUERY_ERRORS = (400, 401, 413, 422, 503, 504)


@extend_schema_view(
    post=waiting_schema(VerifyRequest, QUERY_ERRORS, images=("source_image", "target_image"))
)
class VerifyView(FaceQueryView):
    """``POST /api/v1/faces/verify/``: are the faces of two photos the same person?"""

    request_class = VerifyRequest

    def start(self, request: Request, data: dict[str, Any], wait_s: float) -> Job:
        source = read_upload(data["source_image"], "source_image")
        target = read_upload(data["target_image"], "target_image")
        return start_verification(request, source, target, data, wait_s)


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
    request: Request, upload: UploadedImage, options: dict[str, Any], wait_s: float
) -> Job:
    """Check the request, then run the recognize job."""
    return run_job(request, JobKind.RECOGNIZE, recognition_params(upload, options), wait_s)


@extend_schema_view(post=waiting_schema(RecognizeRequest, QUERY_ERRORS))
class RecognizeView(FaceQueryView):
    """``POST /api/v1/faces/recognize/``: who are the people in this photo?"""

    request_class = RecognizeRequest

    def start(self, request: Request, data: dict[str, Any], wait_s: float) -> Job:
        return start_recognition(request, read_upload(data["image"], "image"), data, wait_s)


# ---------------------------------------------------------------------------- subjects


@extend_schema_field(enrollment.NAME_SCHEMA)
class NameField(serializers.CharField):
    """A subject's name (``enrollment.clean_name``'s rule, which the views apply)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=255, **kwargs)


class SubjectSerializer(serializers.ModelSerializer[Subject]):
    name = NameField()
    face_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = Subject
        fields = ["id", "name", "face_count", "created_at"]
        read_only_fields = ["id", "face_count", "created_at"]


class EnrollRequest(serializers.Serializer[Any]):
    detect_faces = serializers.BooleanField(default=True)
    box = BoxField(required=False, allow_null=True)


class EnrollUpload(EnrollRequest):
    """The enroll body as the schema shows it; the view reads the files itself."""

    image = serializers.ListField(
        child=serializers.FileField(), help_text="One photo per face; repeat for several."
    )


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


def enrollment_params(
    subject: Subject, photos: list[UploadedImage], options: dict[str, Any]
) -> dict[str, Any]:
    """The enroll job's params, after refusing what needs no model (no verifier, duplicates,
    no detector for a photo): the API and the person page both start jobs from these."""
    services.active_verifier()  # 503 now rather than a failed job
    if options.get("box") is not None and len(photos) > 1:
        raise FaceError("invalid", "box: give a box only with a single photo.")
    enrollment.refuse_duplicates(subject, photos)
    detect = bool(options.get("detect_faces", True))
    for photo in photos:
        check_detector(photo, detect, options.get("box"), photo.name or "image")
    return {
        "subject": subject.pk,
        "uploads": [stash(p, p.name or "image") for p in photos],
        "detect_faces": detect,
        "box": options.get("box"),
    }


def start_enrollment(
    request: Request,
    subject: Subject,
    photos: list[UploadedImage],
    options: dict[str, Any],
    wait_s: float,
) -> Job:
    """Check the request, then run the enroll job."""
    return run_job(request, JobKind.ENROLL, enrollment_params(subject, photos, options), wait_s)


class SubjectViewSet(
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

    @extend_schema(methods=["GET"], responses=OpenApiTypes.OBJECT)
    @waiting_schema(
        EnrollUpload, (400, 401, 403, 404, 409, 413, 422, 503, 504), done=(201,), methods=["POST"]
    )
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
        wait_s = parse_wait(request)
        options = EnrollRequest(data=request.data)
        options.is_valid(raise_exception=True)
        photos = enrollment_uploads(request)
        job = start_enrollment(request, subject, photos, options.validated_data, wait_s)
        return job_response(job, done_status=status.HTTP_201_CREATED)


class FaceViewSet(
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


class ReembedView(APIView):
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
