"""Uploads are judged by decoding their pixels; a rejection stores nothing."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from tests.images import huge_png_bytes, jpeg_bytes, png_bytes, truncated_jpeg_bytes
from webapp.images.models import Dataset, Image

pytestmark = pytest.mark.django_db


def upload(client, data: bytes, name: str = "photo.jpg", **fields):
    payload = {"file": SimpleUploadedFile(name, data, content_type="image/jpeg"), **fields}
    return client.post("/api/v1/images/", payload, format="multipart")


def stored_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_valid_jpeg_is_stored_under_its_hash(labeler_api, dataset):
    data = jpeg_bytes(64, 48)
    response = upload(labeler_api, data, dataset=dataset.pk, source="app")
    assert response.status_code == 201, response.json()
    body = response.json()
    image = Image.objects.get(pk=body["id"])
    assert (image.width, image.height, image.source, image.format) == (64, 48, "app", "JPEG")
    assert image.dataset == dataset
    assert image.file.name.endswith(f"{image.sha256}.jpg")
    assert (Path(settings.MEDIA_ROOT) / str(image.file.name)).read_bytes() == data
    assert body["width"] == 64 and body["status"] == "new"


def test_without_dataset_goes_to_uploads(labeler_api):
    response = upload(labeler_api, jpeg_bytes())
    assert response.status_code == 201
    assert Dataset.objects.get(pk=response.json()["dataset"]).name == "Uploads"


@pytest.mark.parametrize(
    ("data", "name", "status", "code", "words"),
    [
        (b"", "empty.jpg", 400, "empty_file", "empty"),
        (truncated_jpeg_bytes(), "cut.jpg", 400, "corrupt_image", "truncated"),
        (b"just some text, renamed\n" * 20, "notes.jpg", 400, "not_an_image", "not an image"),
        (huge_png_bytes(20000), "bomb.png", 413, "too_many_pixels", "400,000,000"),
    ],
    ids=["empty", "truncated-jpeg", "text-renamed", "20000x20000-png"],
)
def test_bad_files_are_rejected_and_nothing_is_stored(
    labeler_api, dataset, data, name, status, code, words
):
    response = upload(labeler_api, data, name=name, dataset=dataset.pk)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert words in error["message"]
    assert Image.objects.count() == 0
    assert stored_files() == []


def test_unknown_dataset_is_404_and_nothing_stored(labeler_api):
    response = upload(labeler_api, jpeg_bytes(), dataset=987654)
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "unknown_dataset",
        "message": "Dataset 987654 does not exist.",
        "details": {},
    }
    assert Image.objects.count() == 0 and stored_files() == []


def test_file_over_byte_limit_is_413(labeler_api, settings):
    settings.UPLOAD_MAX_BYTES = 2000
    response = upload(labeler_api, jpeg_bytes(200, 200))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "file_too_large"
    assert Image.objects.count() == 0


def test_duplicate_in_same_dataset_is_reported_not_stored_twice(labeler_api, dataset):
    data = jpeg_bytes(seed=7)
    first = upload(labeler_api, data, dataset=dataset.pk).json()
    second = upload(labeler_api, data, name="again.jpg", dataset=dataset.pk)
    assert second.status_code == 409
    assert second.json()["error"]["details"] == {"image_id": first["id"]}
    assert Image.objects.count() == 1


def test_same_bytes_in_another_dataset_share_one_file(labeler_api, dataset):
    other = Dataset.objects.create(name="other")
    data = jpeg_bytes(seed=8)
    a = upload(labeler_api, data, dataset=dataset.pk).json()
    b = upload(labeler_api, data, dataset=other.pk).json()
    assert a["id"] != b["id"] and a["sha256"] == b["sha256"]
    assert len([p for p in stored_files() if "images" in p.parts]) == 1


def test_exif_orientation_is_applied(labeler_api):
    # Orientation 6 means "rotate 90° clockwise to display": a 64×48 sensor image shows 48×64.
    response = upload(labeler_api, jpeg_bytes(64, 48, exif_orientation=6))
    assert response.status_code == 201
    image = Image.objects.get(pk=response.json()["id"])
    assert (image.width, image.height) == (48, 64)
    with PILImage.open(Path(settings.MEDIA_ROOT) / str(image.file.name)) as stored:
        assert stored.size == (48, 64)
        assert stored.getexif().get(0x0112, 1) == 1


def test_pgm_is_converted_to_png(labeler_api):
    pixels = np.arange(112 * 92, dtype=np.uint8).reshape(112, 92)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, "PPM")
    response = upload(labeler_api, buffer.getvalue(), name="face.pgm")
    assert response.status_code == 201
    image = Image.objects.get(pk=response.json()["id"])
    assert image.file.name.endswith(".png") and image.format == "PPM"
    with PILImage.open(Path(settings.MEDIA_ROOT) / str(image.file.name)) as stored:
        assert np.array_equal(np.asarray(stored), pixels)


def test_png_with_alpha_is_accepted(labeler_api):
    pixels = np.zeros((10, 12, 4), dtype=np.uint8)
    response = upload(labeler_api, png_bytes(pixels), name="a.png")
    assert response.status_code == 201
    assert response.json()["width"] == 12
