"""The error sheet's API: one case's ticks and comment, a dataset's tag columns, an
evaluation's totals, its export and the import of a CSV made offline.

Thin views over :mod:`webapp.analysis.sheet`, where every check happens before the first
write. Viewers read; labelers, reviewers and admins tag (the API's ``RolePermission``).
"""

from __future__ import annotations

import io
from typing import Any

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.accounts.models import signed_in_user
from webapp.analysis import sheet
from webapp.analysis.models import ErrorTag, Evaluation
from webapp.analysis.sheet import SheetError
from webapp.api.parsers import JSONParser
from webapp.api.schema import error_responses
from webapp.images.models import Dataset

READ_ERRORS = error_responses(400, 401, 404)
WRITE_ERRORS = error_responses(400, 401, 403, 404, 409)
TRUE_WORDS = ("1", "true", "yes", "on")
EXPORT_FORMATS = ("xlsx", "csv")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _evaluation(pk: int) -> Evaluation:
    found = Evaluation.objects.select_related("dataset", "model_version").filter(pk=pk).first()
    if found is None:
        raise SheetError(f"No evaluation with id {pk}.", code="unknown_evaluation", status=404)
    return found


def _dataset(pk: int) -> Dataset:
    found = Dataset.objects.filter(pk=pk).first()
    if found is None:
        raise SheetError(f"Dataset {pk} does not exist.", code="unknown_dataset", status=404)
    return found


def _tag(pk: int) -> ErrorTag:
    found = ErrorTag.objects.select_related("dataset").filter(pk=pk).first()
    if found is None:
        raise SheetError(f"No error tag with id {pk}.", code="unknown_tag", status=404)
    return found


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise SheetError("The body must be a JSON object.")
    return dict(request.data)


def case_payload(pk: int) -> dict[str, Any]:
    case = sheet.load_case(pk)
    return sheet.case_json(case, sheet.ticks_by_case([case.pk]).get(case.pk, set()))


class CaseBody(serializers.Serializer[Any]):
    """For the schema: PATCH's body."""

    add_tags = serializers.ListField(child=serializers.IntegerField(), required=False)
    remove_tags = serializers.ListField(child=serializers.IntegerField(), required=False)
    comment = serializers.CharField(required=False, allow_blank=True)
    comment_version = serializers.IntegerField(
        required=False, help_text="The comment_version you edited (required with comment)."
    )


class ErrorCaseView(APIView):
    """``/api/v1/error-cases/{id}/``: read one case, tick or untick tags, set its comment."""

    parser_classes = [JSONParser]

    @extend_schema(responses={200: OpenApiTypes.OBJECT, **READ_ERRORS})
    def get(self, request: Request, pk: int) -> Response:
        return Response(case_payload(pk))

    @extend_schema(request=CaseBody, responses={200: OpenApiTypes.OBJECT, **WRITE_ERRORS})
    def patch(self, request: Request, pk: int) -> Response:
        case = sheet.load_case(pk)
        update = sheet.parse_update(case, request.data)
        sheet.apply_update(case.pk, update, user=signed_in_user(request.user))
        return Response(case_payload(pk))


class TagBody(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=sheet.MAX_TAG_NAME)
    action = serializers.CharField(required=False, allow_blank=True)
    note = serializers.CharField(required=False, allow_blank=True)


class DatasetErrorTagsView(APIView):
    """``/api/v1/datasets/{id}/error-tags/``: the sheet's columns; add one."""

    parser_classes = [JSONParser]

    @extend_schema(responses={200: OpenApiTypes.OBJECT, **READ_ERRORS})
    def get(self, request: Request, pk: int) -> Response:
        tags = sheet.dataset_tags(_dataset(pk))
        return Response({"count": len(tags), "results": [sheet.tag_json(t) for t in tags]})

    @extend_schema(request=TagBody, responses={201: OpenApiTypes.OBJECT, **WRITE_ERRORS})
    def post(self, request: Request, pk: int) -> Response:
        dataset = _dataset(pk)
        tag = sheet.create_tag(dataset, _body(request), user=signed_in_user(request.user))
        return Response(sheet.tag_json(tag), status=status.HTTP_201_CREATED)


class ErrorTagView(APIView):
    """``/api/v1/error-tags/{id}/``: rename a column, set its action or note, delete it."""

    parser_classes = [JSONParser]

    @extend_schema(responses={200: OpenApiTypes.OBJECT, **READ_ERRORS})
    def get(self, request: Request, pk: int) -> Response:
        return Response(sheet.tag_json(_tag(pk)))

    @extend_schema(
        request=TagBody(partial=True), responses={200: OpenApiTypes.OBJECT, **WRITE_ERRORS}
    )
    def patch(self, request: Request, pk: int) -> Response:
        return Response(sheet.tag_json(sheet.update_tag(_tag(pk), _body(request))))

    @extend_schema(responses={204: None, **WRITE_ERRORS})
    def delete(self, request: Request, pk: int) -> Response:
        sheet.delete_tag(_tag(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


SCOPE = OpenApiParameter(
    "scope",
    str,
    enum=list(sheet.SCOPES),
    description="sample (default): the random sample of 100; all: every error case.",
)


class TotalsView(APIView):
    """``GET /api/v1/evaluations/{id}/totals/``: each tag's count, share and ceiling."""

    @extend_schema(parameters=[SCOPE], responses={200: OpenApiTypes.OBJECT, **READ_ERRORS})
    def get(self, request: Request, pk: int) -> Response:
        evaluation = _evaluation(pk)
        scope = sheet.parse_scope(request.query_params.get("scope"))
        return Response(sheet.totals(evaluation, scope).as_json())


class ExportView(APIView):
    """``GET /api/v1/evaluations/{id}/export/?format=xlsx|csv``: the sheet as a file."""

    def perform_content_negotiation(
        self, request: Request, force: bool = False
    ) -> tuple[BaseRenderer, str]:
        # ``?format=`` names the file format here, not one of DRF's renderers.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=list(EXPORT_FORMATS)), SCOPE],
        responses={
            (200, XLSX): OpenApiResponse(OpenApiTypes.BINARY),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY),
            **READ_ERRORS,
        },
    )
    def get(self, request: Request, pk: int) -> HttpResponse:
        evaluation = _evaluation(pk)
        fmt = request.query_params.get("format") or "xlsx"
        if fmt not in EXPORT_FORMATS:
            raise SheetError("format must be 'xlsx' or 'csv'.", details={"field": "format"})
        scope = sheet.parse_scope(request.query_params.get("scope"))
        return export_response(request, evaluation, fmt, scope)


def export_response(request: Any, evaluation: Evaluation, fmt: str, scope: str) -> HttpResponse:
    """The export as a download (the API and the page's link answer the same)."""

    def image_url(image_id: int) -> str:
        return str(request.build_absolute_uri(reverse("labeling:annotate", args=[image_id])))

    table = sheet.export_table(evaluation, scope, image_url)
    name = f"evaluation-{evaluation.pk}-{evaluation.split}-errors-{scope}.{fmt}"
    if fmt == "csv":
        text = io.StringIO()
        sheet.write_csv(table, text)
        response = HttpResponse(text.getvalue().encode("utf-8"), content_type="text/csv")
    else:
        data = io.BytesIO()
        sheet.write_xlsx(evaluation, table, sheet.totals(evaluation, scope), data)
        response = HttpResponse(data.getvalue(), content_type=XLSX)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


class ImportBody(serializers.Serializer[Any]):
    file = serializers.FileField(help_text="A CSV exported from this sheet, edited offline.")
    create_tags = serializers.BooleanField(
        required=False, help_text="Create the tag columns the file has and the dataset lacks."
    )


class ImportView(APIView):
    """``POST /api/v1/evaluations/{id}/import/``: apply a CSV's ticks and comments."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": ImportBody},
        responses={200: OpenApiTypes.OBJECT, **error_responses(400, 401, 403, 404, 413)},
    )
    def post(self, request: Request, pk: int) -> Response:
        evaluation = _evaluation(pk)
        uploaded = request.FILES.get("file")
        if uploaded is None:
            raise SheetError(
                "Send the CSV as the multipart field “file”.", details={"field": "file"}
            )
        if uploaded.size and uploaded.size > sheet.IMPORT_MAX_BYTES:
            raise SheetError("The file is too large.", code="too_large", status=413)
        create = str(request.data.get("create_tags", "")).lower() in TRUE_WORDS
        report = sheet.import_csv(
            evaluation, uploaded.read(), user=signed_in_user(request.user), create_tags=create
        )
        return Response(report.as_json())
