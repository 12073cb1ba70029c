"""Import and export of a dataset's labels: the API endpoints and the dataset page's form.

- ``POST /api/v1/datasets/{id}/import/`` (multipart ``file`` = a zip, ``format``, optional
  ``source``): validated at once, then an ``import`` job (202 with the job to poll).
- ``GET /api/v1/datasets/{id}/export/?format=coco|yolo|voc|faces&splits=1``: the zip.
- ``POST /label/datasets/{id}/import/``: the dataset page's form, the same validation; on
  success the browser goes to the job's page, else back with the reason.
"""

from __future__ import annotations

import tempfile
from typing import Any

from django.contrib import messages
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.accounts.models import signed_in_user
from webapp.accounts.permissions import user_can_edit
from webapp.api.errors import ApiError
from webapp.api.schema import error_responses
from webapp.api.serializers import JobSerializer
from webapp.images import uploads
from webapp.images.models import Dataset
from webapp.jobs.errors import JobError
from webapp.labeling.exporters import (
    EXPORT_FORMATS,
    ExportFailed,
    export_dataset,
    export_filename,
)
from webapp.labeling.importers import IMPORT_FORMATS
from webapp.labeling.jobs import start_import

TRUE_WORDS = ("1", "true", "yes", "on")


def _dataset(dataset_id: int) -> Dataset:
    dataset = Dataset.objects.filter(pk=dataset_id).first()
    if dataset is None:
        raise ApiError("unknown_dataset", f"Dataset {dataset_id} does not exist.", status_code=404)
    return dataset


class ImportRequest(serializers.Serializer[Any]):
    """The multipart body of an import (for the schema; the view validates it itself)."""

    file = serializers.FileField(help_text="A .zip of the dataset folder.")
    format = serializers.ChoiceField(choices=IMPORT_FORMATS)
    # DRF's metaclass moves declared fields off the class (see ImageUploadSerializer).
    source = serializers.CharField(required=False, default="web")  # type: ignore[assignment]


class DatasetImportView(APIView):
    """Import a zipped COCO, YOLO, VOC or identity-folder dataset into this dataset."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": ImportRequest},
        responses={202: JobSerializer, **error_responses(400, 401, 403, 404, 413)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = _dataset(dataset_id)
        job = start_import(
            dataset,
            uploads.single_file(request.FILES, "file"),
            fmt=str(request.data.get("format", "")),
            source=str(request.data.get("source") or "web"),
            user=signed_in_user(request.user),
        )
        return Response(
            JobSerializer(job).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": job.get_absolute_url()},
        )


class DatasetExportView(APIView):
    """Download the dataset's human labels and images as a zip."""

    def perform_content_negotiation(
        self, request: Request, force: bool = False
    ) -> tuple[BaseRenderer, str]:
        # ``?format=`` names the export format here, not one of DRF's renderers: fall back
        # to the first renderer (JSON, for errors) instead of a 404.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=list(EXPORT_FORMATS), required=True),
            OpenApiParameter(
                "splits", bool, description="Keep each image's split (sub-folders, ImageSets)."
            ),
        ],
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY),
            **error_responses(400, 401, 404),
        },
    )
    def get(self, request: Request, dataset_id: int) -> FileResponse:
        dataset = _dataset(dataset_id)
        fmt = request.query_params.get("format", "")
        splits = request.query_params.get("splits", "").lower() in TRUE_WORDS
        # A temporary file, not memory: an export holds every image of the dataset.
        handle = tempfile.TemporaryFile()  # noqa: SIM115  (FileResponse closes it)
        try:
            export_dataset(dataset, fmt, handle, splits=splits)
        except ExportFailed as error:
            handle.close()
            raise ApiError("invalid", str(error), details={"field": "format"}) from None
        except BaseException:
            handle.close()
            raise
        handle.seek(0)
        return FileResponse(
            handle,
            as_attachment=True,
            filename=export_filename(dataset, fmt),
            content_type="application/zip",
        )


@require_POST
def import_page(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """The dataset page's import form: start the job, or go back with the reason."""
    dataset = get_object_or_404(Dataset, pk=dataset_id)
    if not user_can_edit(request.user):
        messages.error(request, "Your role (viewer) cannot import data.")
        return redirect(dataset)
    uploaded = uploads.single_file(request.FILES, "file")
    try:
        job = start_import(
            dataset,
            uploaded,
            fmt=request.POST.get("format", ""),
            source=request.POST.get("source") or "web",
            user=signed_in_user(request.user),
        )
    except JobError as error:
        messages.error(request, f"Import refused: {error.message}")
        return redirect(dataset)
    messages.success(request, f"Importing {uploaded.name if uploaded else 'the archive'}.")
    return redirect(job)
