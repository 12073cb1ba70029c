"""The one home of upload handling: size refusal, stashing for a job, sweeping stale stashes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.images import jpeg_bytes
from webapp.images import uploads
from webapp.images.validation import ImageRejected
from webapp.jobs.errors import JobError


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("file_too_large", 413),
        ("too_many_pixels", 413),
        ("corrupt_image", 400),
        ("empty_file", 400),
    ],
)
def test_a_refused_image_maps_to_413_for_limits_and_400_otherwise(code, status):
    error = uploads.refusal(ImageRejected(code, "why"), "photo")
    assert (error.code, error.status, error.message) == (code, status, "photo: why")
    assert error.details == {"field": "photo"}
    assert uploads.refusal(ImageRejected(code, "why")).message == "why"


def test_an_oversized_file_is_refused_before_it_is_read(settings):
    settings.UPLOAD_MAX_BYTES = 2048
    big = SimpleUploadedFile("big.jpg", b"x" * 4096)
    with pytest.raises(JobError) as caught:
        uploads.read_limited(big, "image")
    assert (caught.value.code, caught.value.status) == ("file_too_large", 413)
    assert big.tell() == 0  # nothing was read


def test_decode_refuses_garbage_with_400():
    with pytest.raises(JobError) as caught:
        uploads.decode(b"\xff\xd8\xff garbage", "image")
    assert caught.value.status == 400 and caught.value.code in {"not_an_image", "corrupt_image"}


def test_a_stash_is_read_back_then_removed_and_shows_no_path(settings):
    data = jpeg_bytes()
    entry = uploads.stash(data, name="cat.jpg", field="image", suffix=".jpg")
    params = {"uploads": [entry]}
    path = Path(settings.MEDIA_ROOT) / entry["stash"]
    assert uploads.stashed_bytes(entry) == data
    assert uploads.public_uploads(params) == [{"name": "cat.jpg", "field": "image"}]
    assert str(settings.MEDIA_ROOT) not in repr(entry)
    uploads.remove_stashed(params)
    assert not path.exists()
    with pytest.raises(JobError) as caught:
        uploads.stashed_bytes(entry)
    assert (caught.value.code, caught.value.status) == ("upload_gone", 410)


@pytest.mark.parametrize("name", ["images/ab/secret.jpg", "tmp/../images/x.jpg", "/etc/passwd"])
def test_a_stash_entry_cannot_point_outside_the_upload_folder(name):
    with pytest.raises(JobError):
        uploads.stashed_bytes({"stash": name, "field": "image"})


def test_stale_stashes_are_swept(settings):
    folder = Path(settings.MEDIA_ROOT) / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    old, new = folder / "old.jpg", folder / "new.jpg"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    assert uploads.sweep_stale_uploads() == 1
    assert not old.exists() and new.exists()


def test_a_stash_removed_while_sweeping_is_no_error(settings, monkeypatch):
    import pathlib

    folder = pathlib.Path(settings.MEDIA_ROOT) / uploads.STASH_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gone.upload").write_bytes(b"x")
    real_stat = pathlib.Path.stat

    def vanishing(self, *args, **kwargs):
        if self.name == "gone.upload":  # a worker removed it between listing and stat
            raise FileNotFoundError(self)
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "stat", vanishing)
    assert uploads.sweep_stale_uploads() == 0
