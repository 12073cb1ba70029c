"""Labeling the faces of a photo: list them, find them, say who each one is."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.accounts.models import signed_in_user
from webapp.api.parsers import JSONParser
from webapp.api.schema import WAIT_PARAMETER, error_responses
from webapp.faces.models import Face, FaceLabel
from webapp.faces.services import active_verifier
from webapp.jobs.models import JobKind
from webapp.jobs.services import start_job
from webapp.jobs.waiting import job_response, parse_wait, wait_for_job
from webapp.labeling.box_views import _image
from webapp.labeling.faces import faces_json, label_face
from webapp.labeling.services import LabelError


class ImageFacesView(APIView):
    """``GET /api/v1/images/{id}/faces/``: the photo's faces, labels and suggestions."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT, **error_responses(401, 404)})
    def get(self, request: Request, pk: int) -> Response:
        return Response(faces_json(_image(pk)))


class FindFacesView(APIView):
    """``POST /api/v1/images/{id}/faces/find/``: detect the photo's faces (a job)."""

    @extend_schema(
        request=None,
        parameters=[WAIT_PARAMETER],
        responses={
            200: OpenApiTypes.OBJECT,
            202: OpenApiTypes.OBJECT,
            **error_responses(401, 403, 404, 422, 503),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        wait_s = parse_wait(request)
        image = _image(pk)
        active_verifier()  # 503 now rather than a failed job
        job = start_job(
            JobKind.FIND_FACES,
            user=signed_in_user(request.user),
            dataset=image.dataset,
            params={"image": image.pk},
        )
        return job_response(wait_for_job(job, wait_s))


class FaceLabelBody(serializers.Serializer[Any]):
    # DRF's metaclass moves declared fields off the class; mypy sees only Field.label.
    label = serializers.ChoiceField(choices=FaceLabel.choices)  # type: ignore[assignment]
    subject = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=2**63 - 1
    )
    new_subject = serializers.CharField(required=False, allow_blank=True, max_length=255)

    def validate_new_subject(self, value: str) -> str:
        if "\x00" in value:
            raise serializers.ValidationError("A name cannot contain a NUL character.")
        return value


class ImageFaceView(APIView):
    """``PATCH /api/v1/images/{id}/faces/{face}/``: who this face is (or that it is nobody
    known, or not a face)."""

    parser_classes = [JSONParser]

    @extend_schema(
        request=FaceLabelBody,
        responses={200: OpenApiTypes.OBJECT, **error_responses(400, 401, 403, 404, 409)},
    )
    def patch(self, request: Request, pk: int, face_id: int) -> Response:
        image = _image(pk)
        face = Face.objects.select_related("image__dataset").filter(pk=face_id, image=image).first()
        if face is None:
            raise LabelError(f"Photo {pk} has no face {face_id}.", code="unknown_face", status=404)
        body = FaceLabelBody(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        label_face(
            face,
            data["label"],
            subject_id=data.get("subject"),
            new_subject=data.get("new_subject") or None,
            user=signed_in_user(request.user),
        )
        shown = faces_json(image)
        return Response({**shown, "face": next(f for f in shown["faces"] if f["id"] == face.pk)})
