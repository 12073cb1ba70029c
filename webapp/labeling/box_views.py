"""The labeling API: an image's boxes, one box, a dataset's classes, review and the queue.

Thin views: they parse the request and call :mod:`webapp.labeling.services`, where every
check happens before the first write. Viewers read; labelers, reviewers and admins write
(the API's default ``RolePermission``); approving or sending back needs a reviewer.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.accounts.models import signed_in_user
from webapp.api.ids import is_id
from webapp.api.parsers import JSONParser
from webapp.api.schema import error_responses
from webapp.api.serializers import LabelClassSerializer
from webapp.images.models import Box, BoxOrigin, Dataset, Image, LabelClass
from webapp.labeling import services
from webapp.labeling.classes import color_for
from webapp.labeling.services import Change, LabelError, box_json

WRITE_ERRORS = error_responses(400, 401, 403, 404, 409)


def _image(pk: int) -> Image:
    found = Image.objects.select_related("dataset").filter(pk=pk).first()
    if found is None:
        raise LabelError(f"No image with id {pk}.", code="unknown_image", status=404)
    return found


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise LabelError("The body must be a JSON object.")
    return dict(request.data)


def labels_json(image: Image, model_version: int | None = None) -> dict[str, Any]:
    """An image's labels as the API and the annotation page load them."""
    boxes = image.boxes.select_related("label_class").order_by("pk")
    suggestions = boxes.filter(origin=BoxOrigin.MODEL)
    if model_version is not None:
        suggestions = suggestions.filter(model_version_id=model_version)
    return {
        "image": image.pk,
        "version": image.labels_version,
        "status": image.status,
        "boxes": [box_json(b) for b in boxes.filter(origin=BoxOrigin.HUMAN)],
        "suggestions": [box_json(b) for b in suggestions.order_by("-score", "pk")],
    }


class BoxFields(serializers.Serializer[Any]):
    """For the schema: one box as services.validate_box reads it."""

    x1 = serializers.FloatField(min_value=0)
    y1 = serializers.FloatField(min_value=0)
    x2 = serializers.FloatField(min_value=0, help_text="x1 < x2 <= the image's width.")
    y2 = serializers.FloatField(min_value=0, help_text="y1 < y2 <= the image's height.")
    label_class = serializers.IntegerField(
        required=False, min_value=1, help_text="The class's id (or give `label`)."
    )
    label = serializers.CharField(required=False, help_text="The class's name.")  # type: ignore[assignment]  # a field named label
    suggested_by = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, help_text="The detector version it came from."
    )
    suggested_score = serializers.FloatField(
        required=False, allow_null=True, min_value=0, max_value=1
    )


class NewBox(BoxFields):
    """For the schema: POST's body."""

    version = serializers.IntegerField(
        required=False, min_value=0, help_text="The labels version you loaded."
    )


class BoxChange(NewBox):
    """For the schema: PATCH's body (what is sent replaces the box's value)."""

    x1 = serializers.FloatField(required=False, min_value=0)
    y1 = serializers.FloatField(required=False, min_value=0)
    x2 = serializers.FloatField(required=False, min_value=0)
    y2 = serializers.FloatField(required=False, min_value=0)


class BoxesBody(serializers.Serializer[Any]):
    """For the schema: PUT's body."""

    version = serializers.IntegerField(min_value=0, help_text="The labels version you loaded.")
    boxes = BoxFields(many=True)
    resolved_suggestions = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text="Model boxes to delete."
    )


class ImageBoxesView(APIView):
    """``/api/v1/images/{id}/boxes/``: read, add one, or replace all of an image's labels."""

    parser_classes = [JSONParser]

    @extend_schema(
        parameters=[OpenApiParameter("model_version", int, description="Suggestions of one.")],
        responses={200: OpenApiTypes.OBJECT, **error_responses(401, 404)},
    )
    def get(self, request: Request, pk: int) -> Response:
        raw = request.query_params.get("model_version", "")
        return Response(labels_json(_image(pk), int(raw) if is_id(raw) else None))

    @extend_schema(request=NewBox, responses={201: OpenApiTypes.OBJECT, **WRITE_ERRORS})
    def post(self, request: Request, pk: int) -> Response:
        image, data = _image(pk), _body(request)
        spec = services.validate_box(image, data)
        version = services.parse_version(data.get("version"), required=False)
        image, boxes = services.apply_change(
            image.pk,
            Change(add=[spec], action="add"),
            user=signed_in_user(request.user),
            expected_version=version,
        )
        return Response(
            {"version": image.labels_version, "box": box_json(boxes[-1])},
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=BoxesBody, responses={200: OpenApiTypes.OBJECT, **WRITE_ERRORS})
    def put(self, request: Request, pk: int) -> Response:
        image, data = _image(pk), _body(request)
        version = services.parse_version(data.get("version"), required=True)
        assert version is not None
        image, _ = services.replace_boxes(
            image,
            data.get("boxes"),
            user=signed_in_user(request.user),
            version=version,
            resolve=data.get("resolved_suggestions") or [],
        )
        return Response(labels_json(image))


class BoxView(APIView):
    """``/api/v1/boxes/{id}/``: change or delete one box (deleting a prediction rejects it)."""

    parser_classes = [JSONParser]

    def _box(self, pk: int) -> Box:
        found = Box.objects.select_related("image__dataset", "label_class").filter(pk=pk).first()
        if found is None:
            raise LabelError(f"No box with id {pk}.", code="unknown_box", status=404)
        return found

    @extend_schema(responses={200: OpenApiTypes.OBJECT, **error_responses(401, 404)})
    def get(self, request: Request, pk: int) -> Response:
        return Response(box_json(self._box(pk)))

    @extend_schema(request=BoxChange, responses={200: OpenApiTypes.OBJECT, **WRITE_ERRORS})
    def patch(self, request: Request, pk: int) -> Response:
        box, data = self._box(pk), _body(request)
        if box.origin != BoxOrigin.HUMAN:
            raise LabelError(
                "A prediction is not edited: accept it as a label (PUT the image's boxes with "
                "it in resolved_suggestions), then change the label.",
                code="not_a_label",
                status=409,
            )
        merged = {**box_json(box), "label": None, **data}
        if "label" in data and "label_class" not in data:
            merged.pop("label_class")
        spec = services.validate_box(box.image, merged)
        image, _ = services.apply_change(
            box.image_id,
            Change(update={box.pk: spec}, action="change"),
            user=signed_in_user(request.user),
            expected_version=services.parse_version(data.get("version"), required=False),
        )
        return Response({"version": image.labels_version, "box": box_json(self._box(pk))})

    @extend_schema(
        parameters=[OpenApiParameter("version", int, description="The labels version read.")],
        responses={204: None, **WRITE_ERRORS},
    )
    def delete(self, request: Request, pk: int) -> Response:
        box = self._box(pk)
        version = services.parse_version(request.query_params.get("version"), required=False)
        human = box.origin == BoxOrigin.HUMAN
        services.apply_change(
            box.image_id,
            Change(
                delete=[box.pk] if human else [],
                resolve=[] if human else [box.pk],
                action="delete" if human else "reject",
            ),
            user=signed_in_user(request.user),
            expected_version=version,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReviewBody(serializers.Serializer[Any]):
    action = serializers.ChoiceField(choices=services.REVIEW_ACTIONS)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class ReviewView(APIView):
    """``POST /api/v1/images/{id}/review/``: done, approve, needs_fix (with a comment), reopen."""

    parser_classes = [JSONParser]

    @extend_schema(request=ReviewBody, responses={200: OpenApiTypes.OBJECT, **WRITE_ERRORS})
    def post(self, request: Request, pk: int) -> Response:
        image = _image(pk)
        body = ReviewBody(data=request.data)
        body.is_valid(raise_exception=True)
        image = services.review(
            image,
            body.validated_data["action"],
            user=signed_in_user(request.user),
            comment=body.validated_data.get("comment", ""),
        )
        return Response(review_json(image))


def review_json(image: Image) -> dict[str, Any]:
    def who(user: Any) -> str | None:
        return user.username if user else None

    return {
        "image": image.pk,
        "status": image.status,
        "version": image.labels_version,
        "labeled_by": who(image.labeled_by),
        "labeled_at": image.labeled_at,
        "reviewed_by": who(image.reviewed_by),
        "reviewed_at": image.reviewed_at,
        "review_comment": image.review_comment,
    }


class QueueView(APIView):
    """``GET /api/v1/datasets/{id}/queue/?mode=label|review&after=ID``: the next image."""

    @extend_schema(
        parameters=[
            OpenApiParameter("mode", str, enum=list(services.QUEUE_MODES)),
            OpenApiParameter("after", int, description="The image just served, to move on."),
        ],
        responses={200: OpenApiTypes.OBJECT, **error_responses(400, 401, 404)},
    )
    def get(self, request: Request, pk: int) -> Response:
        dataset = get_object_or_404(Dataset, pk=pk)
        mode = request.query_params.get("mode", "label")
        if mode not in services.QUEUE_MODES:
            raise LabelError(f"mode must be label or review, got {mode!r}.")
        raw = request.query_params.get("after", "")
        after = int(raw) if is_id(raw) else None
        found = services.next_in_queue(dataset.pk, mode, current=after)
        return Response(
            {"next": found.pk if found else None, "counts": services.queue_counts(dataset.pk)}
        )


# ---------------------------------------------------------------------------- classes


class ClassBody(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    color = serializers.RegexField(r"^#[0-9a-fA-F]{6}$", required=False)

    def validate_name(self, value: str) -> str:
        name = " ".join(value.split())
        if not name or "\x00" in name:
            raise serializers.ValidationError("A class needs a name.")
        return name


class DatasetClassesView(APIView):
    """``/api/v1/datasets/{id}/classes/``: list or create a dataset's classes."""

    parser_classes = [JSONParser]

    def _dataset(self, pk: int) -> Dataset:
        return get_object_or_404(Dataset, pk=pk)

    @extend_schema(responses={200: LabelClassSerializer(many=True)})
    def get(self, request: Request, pk: int) -> Response:
        classes = self._dataset(pk).classes.order_by("name")
        return Response(LabelClassSerializer(classes, many=True).data)

    @extend_schema(request=ClassBody, responses={201: LabelClassSerializer, **WRITE_ERRORS})
    def post(self, request: Request, pk: int) -> Response:
        dataset = self._dataset(pk)
        body = ClassBody(data=request.data)
        body.is_valid(raise_exception=True)
        name = body.validated_data["name"]
        color = body.validated_data.get("color") or color_for(dataset, name)
        try:
            with transaction.atomic():
                created = LabelClass.objects.create(dataset=dataset, name=name, color=color)
        except IntegrityError:
            raise LabelError(
                f"Dataset {dataset.name!r} already has a class {name!r}.",
                code="duplicate_class",
                status=409,
            ) from None
        return Response(LabelClassSerializer(created).data, status=status.HTTP_201_CREATED)


class ClassView(APIView):
    """``PATCH /api/v1/classes/{id}/``: rename or recolour a class."""

    parser_classes = [JSONParser]

    @extend_schema(request=ClassBody, responses={200: LabelClassSerializer, **WRITE_ERRORS})
    def patch(self, request: Request, pk: int) -> Response:
        label = get_object_or_404(LabelClass, pk=pk)
        body = ClassBody(data={"name": label.name, **dict(request.data)}, partial=True)
        body.is_valid(raise_exception=True)
        name = body.validated_data.get("name", label.name)
        clash = LabelClass.objects.filter(dataset=label.dataset_id, name=name).exclude(pk=pk)
        if clash.exists():
            raise LabelError(
                f"The dataset already has a class {name!r}; merge into it instead.",
                code="duplicate_class",
                status=409,
                details={"class": clash.get().pk},
            )
        label.name = name
        label.color = body.validated_data.get("color", label.color)
        label.save(update_fields=["name", "color"])
        return Response(LabelClassSerializer(label).data)


class MergeBody(serializers.Serializer[Any]):
    into = serializers.IntegerField(min_value=1, max_value=2**63 - 1)


class ClassMergeView(APIView):
    """``POST /api/v1/classes/{id}/merge/ {"into": id}``: its boxes join the other class."""

    parser_classes = [JSONParser]

    @extend_schema(request=MergeBody, responses={200: OpenApiTypes.OBJECT, **WRITE_ERRORS})
    def post(self, request: Request, pk: int) -> Response:
        source = get_object_or_404(LabelClass, pk=pk)
        body = MergeBody(data=request.data)
        body.is_valid(raise_exception=True)
        target = LabelClass.objects.filter(pk=body.validated_data["into"]).first()
        if target is None or target.dataset_id != source.dataset_id or target.pk == source.pk:
            raise LabelError(
                "into must be another class of the same dataset.", code="invalid", status=400
            )
        moved = services.merge_classes(source, target, user=signed_in_user(request.user))
        return Response({"into": LabelClassSerializer(target).data, "boxes_moved": moved})
