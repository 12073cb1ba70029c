"""REST API v1: datasets, images, jobs. Thin views; the work is in the apps' services."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from webapp.accounts.models import signed_in_user
from webapp.api.errors import ApiError
from webapp.api.serializers import (
    DatasetSerializer,
    ImageSerializer,
    ImageUploadSerializer,
    JobCreateSerializer,
    JobSerializer,
)
from webapp.images import uploads
from webapp.images.ingest import DuplicateImage, default_dataset, ingest_image
from webapp.images.models import Dataset, Image
from webapp.images.validation import ImageRejected
from webapp.jobs.models import Job
from webapp.jobs.services import cancel_job, start_job


class DatasetViewSet(viewsets.ModelViewSet[Dataset]):
    serializer_class = DatasetSerializer
    filterset_fields = ["task"]

    def get_queryset(self) -> QuerySet[Dataset]:
        datasets = Dataset.objects.annotate(image_count=Count("images")).order_by("name")
        return datasets.prefetch_related("classes")

    def perform_create(self, serializer: BaseSerializer[Dataset]) -> None:
        serializer.save(created_by=self.request.user)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not getattr(request.user, "is_admin_role", False):
            raise ApiError("permission_denied", "Only admins may delete datasets.", status_code=403)
        return super().destroy(request, *args, **kwargs)


class ImageFilter(filters.FilterSet):
    class Meta:
        model = Image
        fields = ["dataset", "source", "status"]


class ImageViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Image]
):
    serializer_class = ImageSerializer
    filterset_class = ImageFilter
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self) -> QuerySet[Image]:
        return Image.objects.select_related("dataset")

    @extend_schema(request=ImageUploadSerializer, responses={201: ImageSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        dataset = _dataset_from(request.data.get("dataset"))
        uploads.single_file(request.FILES, "file")
        upload = ImageUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        uploaded = upload.validated_data["file"]
        data = uploads.read_limited(uploaded)
        try:
            image = ingest_image(
                data,
                dataset=dataset or default_dataset(request.user),  # type: ignore[arg-type]
                user=request.user,  # type: ignore[arg-type]
                original_name=uploaded.name or "",
                source=upload.validated_data["source"],
            )
        except ImageRejected as exc:
            refused = uploads.refusal(exc)
            refused.details = {"file": uploaded.name}
            raise refused from None
        except DuplicateImage as exc:
            raise ApiError(
                "duplicate", str(exc), status_code=409, details={"image_id": exc.existing.pk}
            ) from None
        return Response(ImageSerializer(image).data, status=status.HTTP_201_CREATED)


def _dataset_from(raw: Any) -> Dataset | None:
    if raw in (None, ""):
        return None
    try:
        return Dataset.objects.get(pk=int(raw))
    except (TypeError, ValueError):
        raise ApiError("invalid", f"dataset must be a dataset id, got {raw!r}.") from None
    except Dataset.DoesNotExist:
        raise ApiError(
            "unknown_dataset", f"Dataset {raw} does not exist.", status_code=404
        ) from None


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Job]):
    serializer_class = JobSerializer
    filterset_fields = ["kind", "status", "dataset"]

    def get_queryset(self) -> QuerySet[Job]:
        jobs = Job.objects.all()
        if getattr(self.request.user, "is_admin_role", False):
            return jobs
        return jobs.filter(user=signed_in_user(self.request.user))

    @extend_schema(request=JobCreateSerializer, responses={201: JobSerializer})
    def create(self, request: Request) -> Response:
        dataset = _dataset_from(request.data.get("dataset"))
        payload = JobCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        job = start_job(
            payload.validated_data["kind"],
            user=request.user,
            dataset=dataset,
            params=payload.validated_data["params"],
        )
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: JobSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        if not cancel_job(job):
            raise ApiError(
                "not_cancellable",
                f"Job {job.pk} is {job.status} and can no longer be cancelled.",
                status_code=409,
            )
        return Response(JobSerializer(job).data)
