from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import serializers

from webapp.images.models import Dataset, Image, LabelClass, slug_validator
from webapp.images.uploads import public_params
from webapp.jobs.models import Job, JobKind


class LabelClassSerializer(serializers.ModelSerializer[LabelClass]):
    class Meta:
        model = LabelClass
        fields = ["id", "name", "color"]


class DatasetSerializer(serializers.ModelSerializer[Dataset]):
    classes = LabelClassSerializer(many=True, read_only=True)
    image_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = Dataset
        fields = [
            "id",
            "name",
            "task",
            "description",
            "target_source",
            "human_error",
            "classes",
            "image_count",
            "created_at",
        ]
        read_only_fields = ["created_at"]
        extra_kwargs = {"human_error": {"min_value": 0.0, "max_value": 1.0}}


class ImageSerializer(serializers.ModelSerializer[Image]):
    file_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()

    class Meta:
        model = Image
        fields = [
            "id",
            "dataset",
            "original_name",
            "sha256",
            "width",
            "height",
            "size_bytes",
            "format",
            "source",
            "status",
            "labels_version",
            "labeled_by",
            "labeled_at",
            "reviewed_by",
            "reviewed_at",
            "review_comment",
            "file_url",
            "thumbnail_url",
            "created_at",
        ]
        read_only_fields = fields

    def get_file_url(self, obj: Image) -> str:
        return reverse("media", args=[obj.file.name])

    def get_thumbnail_url(self, obj: Image) -> str:
        return reverse("media", args=[obj.thumbnail.name or obj.file.name])


class ImageUploadSerializer(serializers.Serializer[Any]):
    file = serializers.FileField(allow_empty_file=True)
    dataset = serializers.PrimaryKeyRelatedField(
        queryset=Dataset.objects.all(), required=False, allow_null=True
    )
    # DRF's metaclass moves declared fields off the class, so this does not shadow
    # Field.source at run time; mypy only sees the class attribute.
    source = serializers.CharField(  # type: ignore[assignment]
        required=False, default="upload", validators=[slug_validator]
    )


class JobSerializer(serializers.ModelSerializer[Job]):
    url = serializers.SerializerMethodField()
    params = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "status",
            "progress",
            "message",
            "params",
            "result",
            "error",
            "dataset",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
            "url",
        ]
        read_only_fields = fields

    def get_url(self, obj: Job) -> str:
        return obj.get_absolute_url()

    def get_params(self, obj: Job) -> dict[str, Any]:
        """The job's parameters as clients may see them: uploads by name, no storage paths."""
        return public_params(obj.params or {})


class JobCreateSerializer(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=[JobKind.IMAGE_STATS])
    dataset = serializers.PrimaryKeyRelatedField(queryset=Dataset.objects.all())
    params = serializers.DictField(required=False, default=dict)


class PixelBox(serializers.Serializer[Any]):
    """A box in whole pixels as DeepStack and CompreFace answer it (for the schema)."""

    x_min = serializers.IntegerField()
    y_min = serializers.IntegerField()
    x_max = serializers.IntegerField()
    y_max = serializers.IntegerField()
