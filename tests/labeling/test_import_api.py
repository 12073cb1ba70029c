"""Importing a zip through the API and the dataset page: validated first, then a job whose
result (counts per split, every warning) the job page shows, escaped."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.labeling.test_import_datasets import coco_folder, hostile_zip, write_jpeg, zip_folder
from webapp.images.models import Box, Dataset, SplitAssignment, Task
from webapp.jobs.models import Job, JobKind, JobStatus
from webapp.jobs.runner import execute_job

pytestmark = pytest.mark.django_db


def _yolo_zip(tmp_path: Path) -> bytes:
    root = tmp_path / "yolo"
    (root).mkdir()
    (root / "data.yaml").write_text(
        "train: train/images\nval: valid/images\nnames: ['cat', '<b>dog</b>']\n"
    )
    for split, seed in (("train", 1), ("valid", 2)):
        write_jpeg(root / split / "images" / f"{split}.jpg", seed=seed)
        (root / split / "labels").mkdir()
        (root / split / "labels" / f"{split}.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    write_jpeg(root / "train" / "images" / "<script>x</script>.jpg", seed=3)  # no labels
    return zip_folder(root)


def _post(api, dataset_id: int, data: bytes, fmt: str = "yolo", **extra):
    upload = SimpleUploadedFile("set.zip", data, content_type="application/zip")
    return api.post(
        f"/api/v1/datasets/{dataset_id}/import/",
        {"file": upload, "format": fmt, **extra},
        format="multipart",
    )


def _stashes() -> list[str]:
    return default_storage.listdir("tmp")[1] if default_storage.exists("tmp") else []


def test_api_import_runs_as_a_job_with_the_report(labeler_api, dataset, tmp_path, client, labeler):
    response = _post(labeler_api, dataset.pk, _yolo_zip(tmp_path), source="app")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["kind"] == JobKind.IMPORT and body["status"] == JobStatus.QUEUED
    assert body["params"]["uploads"] == [{"name": "set.zip", "field": "file"}]
    assert response["Location"] == f"/jobs/{body['id']}/"
    assert len(_stashes()) == 1
    execute_job(body["id"])
    job = Job.objects.get(pk=body["id"])
    assert job.status == JobStatus.DONE, job.error
    result = job.result
    assert result["images_added"] == 3 and result["boxes_added"] == 2
    assert result["splits"] == {"train": 2, "val": 1}
    assert result["split_source"] == "the folder's own split"
    assert [w["code"] for w in result["warnings"]] == ["missing_label"]
    assert result["warnings"][0]["file"] == "train/images/<script>x</script>.jpg"
    assert _stashes() == []  # the runner removed the upload
    assert set(dataset.images.values_list("source", flat=True)) == {"app"}
    assert SplitAssignment.objects.filter(image__dataset=dataset).count() == 3
    # The job page lists the counts and the warnings, escaped.
    client.force_login(labeler)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'id="import-counts"' in page and "3 images and 2 boxes added" in page
    assert "&lt;script&gt;x&lt;/script&gt;.jpg" in page and "<script>x</script>" not in page
    assert "no label file; kept as a background image" in page


def test_refusals_come_before_anything_is_stored(
    labeler_api, viewer_api, dataset, tmp_path, settings
):
    good = _yolo_zip(tmp_path)
    cases = [
        (viewer_api.post(f"/api/v1/datasets/{dataset.pk}/import/", {}), 403, None),
        (_post(labeler_api, 424242, good), 404, "unknown_dataset"),
        (_post(labeler_api, dataset.pk, good, fmt="csv"), 400, "invalid"),
        (_post(labeler_api, dataset.pk, good, source="Bad Source"), 400, "invalid"),
        (_post(labeler_api, dataset.pk, b"not a zip at all"), 400, "not_a_zip"),
        (_post(labeler_api, dataset.pk, hostile_zip("dotdot")), 400, "unsafe_archive"),
        (_post(labeler_api, dataset.pk, hostile_zip("symlink")), 400, "unsafe_archive"),
        (_post(labeler_api, dataset.pk, good, fmt="folders"), 400, "invalid"),
        (labeler_api.post(f"/api/v1/datasets/{dataset.pk}/import/", {"format": "yolo"}), 400, None),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.content
        if code:
            assert response.json()["error"]["code"] == code
    symlink = cases[6][0].json()["error"]
    assert (
        "symbolic link" in symlink["message"]
        and symlink["details"]["entry"] == "set/images/link.jpg"
    )
    settings.IMPORT_MAX_BYTES = 1000
    too_big = _post(labeler_api, dataset.pk, good)
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "file_too_large"
    assert not Job.objects.exists() and _stashes() == []


def test_a_job_whose_archive_is_bad_fails_with_the_reason(labeler, dataset, tmp_path):
    folder = coco_folder(tmp_path / "set", [("a.jpg", 1)], [])
    job = Job.objects.create(
        kind=JobKind.IMPORT,
        user=labeler,
        dataset=dataset,
        params={"format": "coco", "uploads": [{"stash": "../etc/passwd", "name": "x.zip"}]},
    )
    execute_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "no uploaded archive" in job.error
    stored = default_storage.save(
        "tmp/hostile.zip", SimpleUploadedFile("h.zip", hostile_zip("dotdot"))
    )
    job = Job.objects.create(
        kind=JobKind.IMPORT,
        user=labeler,
        dataset=dataset,
        params={"format": "coco", "uploads": [{"stash": stored, "name": "h.zip"}]},
    )
    execute_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "'..'" in job.error
    assert job.result["error"]["code"] == "import_refused"
    assert not default_storage.exists(stored) and folder.is_dir()


def test_the_dataset_page_form_starts_the_job(client, labeler, viewer, dataset, tmp_path):
    client.force_login(labeler)
    page = client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert (
        'id="import-form"' in page and f"/api/v1/datasets/{dataset.pk}/export/?format=coco" in page
    )
    url = f"/label/datasets/{dataset.pk}/import/"
    upload = SimpleUploadedFile("set.zip", _yolo_zip(tmp_path))
    response = client.post(url, {"file": upload, "format": "yolo"})
    job = Job.objects.get(kind=JobKind.IMPORT)
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    execute_job(job.pk)
    assert Box.objects.filter(image__dataset=dataset).count() == 2
    refused = client.post(url, {"file": SimpleUploadedFile("x.zip", b"nope"), "format": "yolo"})
    assert refused["Location"] == f"/datasets/{dataset.pk}/"
    assert "not a zip archive" in client.get(refused["Location"]).content.decode()
    client.force_login(viewer)
    page = client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert 'id="import-form"' not in page and "format=yolo" in page  # viewers still export
    response = client.post(url, {"file": SimpleUploadedFile("set.zip", b""), "format": "yolo"})
    assert response["Location"] == f"/datasets/{dataset.pk}/"
    assert Job.objects.filter(kind=JobKind.IMPORT).count() == 1


def test_faces_dataset_takes_identity_folders(labeler_api, tmp_path):
    people = Dataset.objects.create(name="people-import", task=Task.FACES)
    for person, seed in (("ann", 1), ("bob", 2)):
        write_jpeg(tmp_path / "people" / person / "1.jpg", seed=seed)
    response = _post(labeler_api, people.pk, zip_folder(tmp_path / "people"), fmt="folders")
    assert response.status_code == 202
    execute_job(response.json()["id"])
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == JobStatus.DONE, job.error
    assert job.result["images_added"] == 2 and job.result["format"] == "folders"
    assert sorted(people.subjects.values_list("name", flat=True)) == ["ann", "bob"]
