"""CompreFace-compatible endpoints, so existing CompreFace clients work unchanged.

Paths, fields and response shapes follow CompreFace's REST API description (0.6+):

- ``POST /api/v1/verification/verify`` (``source_image``, ``target_image``)
- ``POST /api/v1/recognition/recognize`` (``file``; ``limit``, ``prediction_count``,
  ``det_prob_threshold``)
- ``/api/v1/recognition/faces``: ``POST ?subject=`` adds an example (the subject is created
  if new), ``GET`` lists examples, ``DELETE ?subject=`` deletes a subject's examples,
  ``DELETE /{image_id}`` deletes one
- ``/api/v1/recognition/subjects``: ``GET``, ``POST {"subject"}``, ``DELETE`` (all),
  ``PUT /{subject}`` (rename, merging into an existing name), ``DELETE /{subject}``

Images come as multipart files or, as CompreFace also accepts, base64 strings in a JSON
body under the same names. The key goes in the ``x-api-key`` header (one of our API
tokens). Errors are CompreFace's ``{"message", "code"}`` with its numeric codes where it
has one (28: no face found, 26: invalid value, 33: missing parameter, 21: unreadable image,
11: example not found). An "image_id" is the id of one enrolled face. Similarities are our
one similarity scale (``inference.verification_metrics.distance_to_similarity``): 0.85 at
the verifier's calibrated threshold, so CompreFace's usual 0.8-0.9 cut-offs keep their meaning.

Everything runs as the same jobs as the native API and waits for them (``?wait=`` seconds,
default 60), since CompreFace clients expect the answer in the response.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.accounts.models import signed_in_user
from webapp.accounts.permissions import user_is_admin
from webapp.api.errors import ApiError
from webapp.api.ids import is_id
from webapp.api.parsers import JSONParser
from webapp.faces import enrollment, services
from webapp.faces.api import (
    FacesPermission,
    read_upload,
    start_enrollment,
    start_recognition,
    start_verification,
)
from webapp.faces.compreface_schema import (
    MAX_COUNT,
    add_example_schema,
    add_subject_schema,
    delete_example_schema,
    delete_examples_schema,
    delete_subject_schema,
    delete_subjects_schema,
    list_examples_schema,
    list_subjects_schema,
    recognize_schema,
    rename_subject_schema,
    verify_schema,
)
from webapp.faces.models import Face, Subject
from webapp.faces.services import FaceError, UploadedImage
from webapp.images import uploads
from webapp.jobs.models import JobStatus
from webapp.jobs.waiting import job_failure, parse_wait, required_result

# Our error codes -> CompreFace's numeric codes (com.exadel.frs ExceptionCode).
CODES = {
    "no_face": 28,
    "invalid": 26,
    "parse_error": 26,
    "invalid_box": 26,
    "duplicate_subject": 26,
    "duplicate_face": 26,
    "missing_field": 33,
    "not_an_image": 21,
    "corrupt_image": 21,
    "empty_file": 21,
    "unsupported_format": 21,
    "file_too_large": 21,
    "too_many_pixels": 21,
    "unknown_face": 11,
    "unknown_subject": 11,
    "not_found": 11,
    "not_authenticated": 20,
    "authentication_failed": 20,
    "permission_denied": 32,
}
# CompreFace answers "no face" as a bad request; our native API says 422.
STATUS_OVERRIDES = {"no_face": 400}


class CompreFaceView(APIView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    permission_classes = [FacesPermission]

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        error = response.data.get("error", {}) if isinstance(response.data, dict) else {}
        code = str(error.get("code", ""))
        response.data = {"message": error.get("message", str(exc)), "code": CODES.get(code, 0)}
        response.status_code = STATUS_OVERRIDES.get(code, response.status_code)
        return response


def missing(field: str, what: str = "a request parameter") -> ApiError:
    return ApiError("missing_field", f"{field} is required ({what}).", details={"field": field})


def image_field(request: Request, field: str) -> UploadedImage:
    """A multipart file, or a base64 string in a JSON body, under ``field``."""
    uploaded = uploads.single_file(request.FILES, field)
    if uploaded is not None:
        return read_upload(uploaded, field)
    encoded = request.data.get(field) if hasattr(request.data, "get") else None
    if not isinstance(encoded, str) or not encoded:
        raise missing(field, "an image file, or base64 in a JSON body")
    try:
        data = base64.b64decode(encoded.split(",", 1)[-1], validate=True)
    except (binascii.Error, ValueError):
        raise FaceError(
            "not_an_image", f"{field}: not valid base64.", details={"field": field}
        ) from None
    return services.read_image(data, field, field=field)


def query_number(
    request: Request, name: str, default: float, *, low: float, high: float = math.inf
) -> float:
    raw = request.query_params.get(
        name, request.data.get(name) if hasattr(request.data, "get") else None
    )
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):  # JSON true is not the number 1
        raise ApiError("invalid", f"{name} must be a number, got {raw!r}.")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ApiError("invalid", f"{name} must be a number, got {raw!r}.") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ApiError("invalid", f"{name} must be between {low} and {high}, got {raw}.")
    return value


def cf_box(box: dict[str, float], score: float) -> dict[str, Any]:
    return {
        "probability": round(float(score), 5),
        "x_min": round(float(box["x1"])),
        "y_min": round(float(box["y1"])),
        "x_max": round(float(box["x2"])),
        "y_max": round(float(box["y2"])),
    }


def gallery_subject(name: str) -> Subject:
    return enrollment.get_subject(name=enrollment.clean_name(name))


# ---------------------------------------------------------------------------- verification


class VerificationView(CompreFaceView):
    """``POST /api/v1/verification/verify``."""

    read_like = True

    @verify_schema
    def post(self, request: Request) -> Response:
        limit = int(query_number(request, "limit", 0, low=0, high=MAX_COUNT))
        min_score = query_number(request, "det_prob_threshold", 0.0, low=0.0, high=1.0)
        source = image_field(request, "source_image")
        target = image_field(request, "target_image")
        job = start_verification(request, source, target, {}, parse_wait(request, answer_only=True))
        result = required_result(job)
        source = result["source_face"]
        matches = [m for m in result["matches"] if m["score"] >= min_score]
        return Response(
            {
                "result": [
                    {
                        "source_image_face": {"box": cf_box(source["box"], source["score"])},
                        "face_matches": [
                            {
                                "box": cf_box(m["box"], m["score"]),
                                "similarity": round(m["similarity"], 5),
                            }
                            for m in (matches[:limit] if limit else matches)
                        ],
                    }
                ]
            }
        )


# ---------------------------------------------------------------------------- recognition


class RecognizeView(CompreFaceView):
    """``POST /api/v1/recognition/recognize``."""

    read_like = True

    @recognize_schema
    def post(self, request: Request) -> Response:
        options = {
            "limit": int(query_number(request, "limit", 0, low=0, high=MAX_COUNT)),
            "top_k": int(query_number(request, "prediction_count", 1, low=1, high=100)),
            "min_score": query_number(request, "det_prob_threshold", 0.0, low=0.0, high=1.0),
            "detect_faces": True,
        }
        upload = image_field(request, "file")
        job = start_recognition(request, upload, options, parse_wait(request, answer_only=True))
        faces = required_result(job)["faces"]
        return Response(
            {
                "result": [
                    {
                        "box": cf_box(f["box"], f["score"]),
                        "subjects": [
                            {
                                "subject": c["subject"]["name"],
                                "similarity": round(c["similarity"], 5),
                            }
                            for c in f["candidates"]
                        ],
                    }
                    for f in faces
                ]
            }
        )


class FacesView(CompreFaceView):
    """``/api/v1/recognition/faces``: add, list and delete examples."""

    @add_example_schema
    def post(self, request: Request) -> Response:
        name = request.query_params.get("subject", "")
        if not name.strip():
            raise missing("subject", "a query parameter")
        upload = image_field(request, "file")
        wait_s = parse_wait(request, answer_only=True)  # checked before the subject is made
        subject, created = subject_for_enrollment(request, name)
        try:
            job = start_enrollment(request, subject, [upload], {"detect_faces": True}, wait_s)
            if job.status != JobStatus.DONE and not job.is_active:
                raise job_failure(job)
        except Exception:
            if created:  # the subject only its first example would have created
                Subject.objects.filter(pk=subject.pk, faces__isnull=True).delete()
            raise
        if job.is_active:
            raise job_failure(job)  # still running: the subject stays for its example
        face = (job.result or {})["faces"][0]
        return Response(
            {"image_id": str(face["id"]), "subject": subject.name}, status=status.HTTP_201_CREATED
        )

    @list_examples_schema
    def get(self, request: Request) -> Response:
        faces = examples(request)
        page = int(query_number(request, "page", 0, low=0, high=MAX_COUNT))
        size = int(query_number(request, "size", 20, low=1, high=1000))
        total = faces.count()
        rows = faces.select_related("subject").order_by("id")[page * size : (page + 1) * size]
        return Response(
            {
                "faces": [
                    {"image_id": str(f.pk), "subject": f.subject.name if f.subject else ""}
                    for f in rows
                ],
                "page_number": page,
                "page_size": size,
                "total_pages": math.ceil(total / size),
                "total_elements": total,
            }
        )

    @delete_examples_schema
    def delete(self, request: Request) -> Response:
        if not request.query_params.get("subject"):
            _admin_only(request, "Deleting every example of every subject")
        return Response({"deleted": enrollment.delete_faces(examples(request))})


def _admin_only(request: Request, what: str) -> None:
    """Bulk deletes of the whole gallery need the admin role (one call empties it)."""
    if not user_is_admin(request.user):
        raise FaceError("forbidden", f"{what} needs the admin role.", status=403)


def examples(request: Request) -> QuerySet[Face]:
    """The gallery's faces, only those of ``?subject=`` when it is given."""
    faces = Face.objects.filter(subject__dataset=services.gallery_dataset())
    name = request.query_params.get("subject")
    return faces.filter(subject=gallery_subject(name)) if name else faces


def subject_for_enrollment(request: Request, name: str) -> tuple[Subject, bool]:
    """The named subject, created if new (CompreFace creates subjects on first example)."""
    try:
        return gallery_subject(name), False
    except FaceError:
        try:
            return enrollment.create_subject(name, signed_in_user(request.user)), True
        except FaceError as exc:
            if exc.code != "duplicate_subject":  # created by a concurrent request: use it
                raise
            return gallery_subject(name), False


class FaceView(CompreFaceView):
    """``DELETE /api/v1/recognition/faces/{image_id}``."""

    @delete_example_schema
    def delete(self, request: Request, image_id: str) -> Response:
        faces = Face.objects.filter(subject__dataset=services.gallery_dataset())
        # isdigit() also accepts "²", which int() refuses; and a database id has 18 digits.
        plain = is_id(image_id)
        face = faces.filter(pk=int(image_id)).first() if plain else None
        if face is None:
            raise FaceError("unknown_face", f"No example with image_id {image_id}.", status=404)
        name = face.subject.name if face.subject else ""
        enrollment.delete_faces(Face.objects.filter(pk=face.pk))
        return Response({"image_id": image_id, "subject": name})


class SubjectsView(CompreFaceView):
    """``/api/v1/recognition/subjects``: list, add, delete all."""

    @list_subjects_schema
    def get(self, request: Request) -> Response:
        return Response(
            {
                "subjects": list(
                    enrollment.subjects().order_by("name").values_list("name", flat=True)
                )
            }
        )

    @add_subject_schema
    def post(self, request: Request) -> Response:
        name = request.data.get("subject") if hasattr(request.data, "get") else None
        if not isinstance(name, str) or not name.strip():
            raise missing("subject", "in the JSON body")
        subject = enrollment.create_subject(name, signed_in_user(request.user))
        return Response({"subject": subject.name}, status=status.HTTP_201_CREATED)

    @delete_subjects_schema
    def delete(self, request: Request) -> Response:
        _admin_only(request, "Deleting every subject")
        with transaction.atomic():
            everyone = list(enrollment.subjects())
            for subject in everyone:
                enrollment.delete_subject(subject)
        return Response({"deleted": len(everyone)})


class SubjectView(CompreFaceView):
    """``PUT`` (rename, merging into an existing subject) and ``DELETE`` one subject."""

    @rename_subject_schema
    def put(self, request: Request, subject: str) -> Response:
        new_name = request.data.get("subject") if hasattr(request.data, "get") else None
        if not isinstance(new_name, str) or not new_name.strip():
            raise missing("subject", "the new name, in the JSON body")
        enrollment.rename_subject(gallery_subject(subject), new_name, merge=True)
        return Response({"updated": True})

    @delete_subject_schema
    def delete(self, request: Request, subject: str) -> Response:
        found = gallery_subject(subject)
        enrollment.delete_subject(found)
        return Response({"subject": found.name})


__all__ = [
    "FaceView",
    "FacesView",
    "RecognizeView",
    "SubjectView",
    "SubjectsView",
    "VerificationView",
]
