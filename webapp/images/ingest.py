"""Store a validated upload as an Image row, its file under its content hash.

Nothing partial is left behind: files are written only after validation, and a file
written for a row that then fails to insert is removed unless another row uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from webapp.accounts.models import User
from webapp.images.models import Dataset, Image
from webapp.images.validation import ImageRejected, decode_upload

DEFAULT_DATASET_NAME = "Uploads"


class DuplicateImage(Exception):
    def __init__(self, existing: Image) -> None:
        super().__init__(f"This image is already in dataset “{existing.dataset.name}”.")
        self.existing = existing


@dataclass(frozen=True)
class IngestResult:
    image: Image
    created: bool


def default_dataset(user: User | None) -> Dataset:
    dataset, _ = Dataset.objects.get_or_create(
        name=DEFAULT_DATASET_NAME,
        defaults={"description": "Images uploaded without a dataset.", "created_by": user},
    )
    return dataset


def _save_if_missing(path: str, content: bytes) -> tuple[str, bool]:
    """Content-addressed write: the same bytes are stored once, whichever dataset asks."""
    if default_storage.exists(path):
        return path, False
    return default_storage.save(path, ContentFile(content)), True


def ingest_image(
    data: bytes,
    *,
    dataset: Dataset,
    user: User | None,
    original_name: str = "",
    source: str = "upload",
) -> Image:
    """Validate and store one image. Raises ImageRejected or DuplicateImage."""
    decoded = decode_upload(
        data, max_bytes=settings.UPLOAD_MAX_BYTES, max_pixels=settings.UPLOAD_MAX_PIXELS
    )
    existing = Image.objects.filter(dataset=dataset, sha256=decoded.sha256).first()
    if existing is not None:
        raise DuplicateImage(existing)
    digest = decoded.sha256
    file_path, new_file = _save_if_missing(
        f"images/{digest[:2]}/{digest}{decoded.extension}", decoded.content
    )
    thumb_path, new_thumb = _save_if_missing(f"thumbs/{digest[:2]}/{digest}.jpg", decoded.thumbnail)
    try:
        with transaction.atomic():
            return Image.objects.create(
                dataset=dataset,
                file=file_path,
                thumbnail=thumb_path,
                original_name=original_name[:255],
                sha256=digest,
                width=decoded.width,
                height=decoded.height,
                size_bytes=len(decoded.content),
                format=decoded.format,
                source=source,
                uploaded_by=user,
            )
    except IntegrityError:
        # A concurrent upload of the same bytes into the same dataset won the race.
        _cleanup_unreferenced(digest, [(file_path, new_file), (thumb_path, new_thumb)])
        existing = Image.objects.filter(dataset=dataset, sha256=digest).first()
        if existing is None:
            raise
        raise DuplicateImage(existing) from None
    except Exception:
        _cleanup_unreferenced(digest, [(file_path, new_file), (thumb_path, new_thumb)])
        raise


def _cleanup_unreferenced(digest: str, paths: list[tuple[str, bool]]) -> None:
    if Image.objects.filter(sha256=digest).exists():
        return
    for path, created in paths:
        if created:
            default_storage.delete(path)


__all__ = ["DuplicateImage", "ImageRejected", "default_dataset", "ingest_image"]
