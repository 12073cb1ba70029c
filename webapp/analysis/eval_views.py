"""Evaluations over the API (routes in ``eval_urls``).

- ``POST /api/v1/evaluations/`` ``{"model_version", "dataset", "split"}`` (labelers,
  reviewers, admins): checked at once (``webapp.analysis.evaluate.check_request``), then
  202 with the evaluation and its ``evaluate`` job.
- ``GET /api/v1/evaluations/`` (``?model_version=&dataset=&split=``): the headline numbers;
  ``GET /api/v1/evaluations/{id}/``: every metric and the job's status and progress.
- ``GET /api/v1/evaluations/{id}/errors/?kind=&class=&tag=&label_errors=1``: the error
  cases, paginated, in the sheet's random order (``sample_key``) or, with
  ``label_errors=1``, most likely label errors first. ``class`` matches the true or the
  predicted class; ``tag`` is an error tag's id or name.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from webapp.accounts.models import signed_in_user
from webapp.analysis.evaluate import check_request, start_evaluation
from webapp.analysis.models import ErrorCase, ErrorKind, ErrorTag, Evaluation
from webapp.api.errors import ApiError
from webapp.api.ids import is_id
from webapp.api.pagination import PageNumberPagination
from webapp.api.schema import error_responses
from webapp.api.serializers import JobSerializer

TRUE_WORDS = ("1", "true", "yes", "on")
# What a list row shows of the metrics (the detail has them all).
HEADLINE = (
    "kind",
    "map50",
    "map50_95",
    "precision",
    "recall",
    "f1",
    "score_threshold",
    "eer",
    "auc",
    "threshold",
    "false_accepts",
    "false_rejects",
    "error_cases",
)


class EvaluationRequestSerializer(serializers.Serializer[Any]):
    """The body of ``POST /api/v1/evaluations/`` (for the schema; the service checks it)."""

    model_version = serializers.IntegerField()
    dataset = serializers.IntegerField()
    split = serializers.ChoiceField(choices=["train", "train_val", "val", "test"])


class EvaluationSerializer(serializers.ModelSerializer[Evaluation]):
    model_version_name = serializers.CharField(source="model_version.name", read_only=True)
    model_kind = serializers.CharField(source="model_version.kind", read_only=True)
    dataset_name = serializers.CharField(source="dataset.name", read_only=True)
    job = JobSerializer(read_only=True)
    summary = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    class Meta:
        model = Evaluation
        fields = [
            "id",
            "model_version",
            "model_version_name",
            "model_kind",
            "dataset",
            "dataset_name",
            "split",
            "images",
            "error_rate",
            "summary",
            "job",
            "created_by",
            "created_at",
            "links",
        ]
        read_only_fields = fields

    def get_summary(self, obj: Evaluation) -> dict[str, Any]:
        metrics = obj.metrics if isinstance(obj.metrics, dict) else {}
        return {k: metrics[k] for k in HEADLINE if k in metrics}

    def get_links(self, obj: Evaluation) -> dict[str, str]:
        return {
            "errors": reverse("api:evaluation-errors", args=[obj.pk]),
            "page": reverse("analysis:evaluation", args=[obj.pk]),
            # The spreadsheet page (webapp.analysis.sheet_page_urls, url name analysis:sheet).
            "sheet": f"/analysis/evaluations/{obj.pk}/sheet/",
        }


class EvaluationDetailSerializer(EvaluationSerializer):
    class Meta(EvaluationSerializer.Meta):
        fields = [*EvaluationSerializer.Meta.fields, "metrics"]
        read_only_fields = fields


class ErrorCaseSerializer(serializers.ModelSerializer[ErrorCase]):
    image_url = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()

    class Meta:
        model = ErrorCase
        fields = [
            "id",
            "evaluation",
            "kind",
            "image",
            "image_url",
            "other_image",
            "label_class",
            "predicted_class",
            "score",
            "iou",
            "distance",
            "predicted_box",
            "true_box",
            "label_error_score",
            "label_error_kind",
            "sample_key",
            "tags",
            "comment",
            "comment_version",
        ]
        read_only_fields = fields

    def get_image_url(self, obj: ErrorCase) -> str:
        return reverse("image-detail", args=[obj.image_id])

    def get_tags(self, obj: ErrorCase) -> list[int]:
        return sorted(t.tag_id for t in obj.tags.all())


def _flag(request: Request, name: str) -> bool:
    return str(request.query_params.get(name, "")).lower() in TRUE_WORDS


def _tag_filter(evaluation: Evaluation, raw: str) -> ErrorTag:
    tags = ErrorTag.objects.filter(dataset_id=evaluation.dataset_id)
    tag = tags.filter(pk=int(raw)).first() if is_id(raw) else None
    tag = tag or tags.filter(name=raw).first()
    if tag is None:
        raise ApiError(
            "unknown_tag",
            f"Dataset {evaluation.dataset_id} has no error tag {raw!r}.",
            status_code=404,
            details={"field": "tag"},
        )
    return tag


def filter_cases(evaluation: Evaluation, request: Request) -> QuerySet[ErrorCase]:
    """The evaluation's cases filtered and ordered as the query asks (400/404 on bad ones)."""
    cases = evaluation.cases.select_related(None).prefetch_related("tags")
    kind = request.query_params.get("kind")
    if kind:
        if kind not in ErrorKind.values:
            raise ApiError(
                "invalid",
                f"kind must be one of {', '.join(ErrorKind.values)}, got {kind!r}.",
                details={"field": "kind"},
            )
        cases = cases.filter(kind=kind)
    name = request.query_params.get("class")
    if name:
        cases = cases.filter(Q(label_class=name) | Q(predicted_class=name))
    raw_tag = request.query_params.get("tag")
    if raw_tag:
        cases = cases.filter(tags__tag=_tag_filter(evaluation, raw_tag))
    if _flag(request, "label_errors"):
        return cases.order_by("-label_error_score", "id")
    return cases.order_by("sample_key", "id")


class EvaluationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Evaluation]
):
    """Model versions measured on a split: metrics, their job, and every mistake."""

    filterset_fields = ["model_version", "dataset", "split"]

    def get_queryset(self) -> QuerySet[Evaluation]:
        return Evaluation.objects.select_related("model_version", "dataset", "job")

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Any]]:
        if self.action == "retrieve":
            return EvaluationDetailSerializer
        if self.action == "errors":
            return ErrorCaseSerializer
        return EvaluationSerializer

    @extend_schema(
        request=EvaluationRequestSerializer,
        responses={202: EvaluationSerializer, **error_responses(400, 401, 403, 404)},
    )
    def create(self, request: Request) -> Response:
        data = request.data if hasattr(request.data, "get") else {}
        checked = check_request(data.get("model_version"), data.get("dataset"), data.get("split"))
        evaluation = start_evaluation(checked, signed_in_user(request.user))
        body = EvaluationSerializer(evaluation, context=self.get_serializer_context()).data
        return Response(
            body,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": reverse("api:evaluation-detail", args=[evaluation.pk])},
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("kind", str, enum=list(ErrorKind.values)),
            OpenApiParameter("class", str, description="The true or the predicted class."),
            OpenApiParameter("tag", str, description="An error tag's id or name."),
            OpenApiParameter("label_errors", bool, description="Most likely label errors first."),
        ],
        responses={
            200: inline_serializer(
                "PaginatedErrorCases",
                {
                    "count": serializers.IntegerField(),
                    "next": serializers.CharField(allow_null=True),
                    "previous": serializers.CharField(allow_null=True),
                    "results": ErrorCaseSerializer(many=True),
                },
            ),
            **error_responses(400, 401, 404),
        },
    )
    @action(detail=True, methods=["get"])
    def errors(self, request: Request, pk: str | None = None) -> Response:
        evaluation = self.get_object()
        cases = filter_cases(evaluation, request)
        # The view's pager works on evaluations; the cases get one of their own.
        pager = PageNumberPagination()
        page = pager.paginate_queryset(cases, request, view=self)
        serializer = ErrorCaseSerializer(page if page is not None else cases, many=True)
        if page is not None:
            return pager.get_paginated_response(serializer.data)
        return Response(serializer.data)
