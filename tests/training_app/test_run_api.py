"""The training API and pages: start, watch and cancel runs; the registry lists, promotes
(admins only) and rolls back; every refusal is a JSON error before anything is stored."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.conftest import token_client
from tests.training_app.conftest import run_jobs
from training.models import ModelVersion, Promotion, TrainingRun
from webapp.jobs.models import Job

pytestmark = pytest.mark.django_db
RUNS = "/api/v1/training/runs/"
SMALL = {"epochs": 2, "img_size": 64}


@pytest.fixture
def admin_api(admin_user):
    return token_client(admin_user)


def test_a_run_through_the_api_from_start_to_diagnosis(cells, labeler_api):
    started = labeler_api.post(RUNS, {"dataset": cells.pk, **SMALL}, format="json")
    assert started.status_code == 201, started.content
    body = started.json()
    assert body["status"] == "queued" and body["task"] == "detector"
    assert body["config"]["epochs"] == 2 and len(body["trials"]) == 1
    assert Job.objects.get(pk=body["trials"][0]["job"]).kind == "train"
    run_jobs()
    done = labeler_api.get(f"{RUNS}{body['id']}/").json()
    assert done["status"] == "done" and done["progress"] == 1.0
    assert [e["epoch"] for e in done["trials"][0]["curves"]] == [1, 2]
    version = ModelVersion.objects.get(pk=done["model_version"]["id"])
    assert version.dataset_id == cells.pk
    diagnosis = done["diagnosis"]
    for key in (
        "human_error",
        "train_error",
        "train_val_error",
        "val_error",
        "test_error",
        "avoidable_bias",
        "variance",
        "data_mismatch",
        "val_overfitting",
        "advice",
    ):
        assert key in diagnosis
    assert diagnosis["val_error"] == pytest.approx(1 - version.metrics["val"]["map50"])
    listed = labeler_api.get(RUNS, {"dataset": cells.pk}).json()["results"]
    assert [r["id"] for r in listed] == [body["id"]] and "trials" not in listed[0]


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"epochs": 2, "minutes": 5}, 400, "minutes or in epochs"),
        ({"epochs": "2"}, 400, "epochs must be a number"),
        ({"epochs": 10**30}, 400, "epochs: 1 to 10,000"),
        ({"learning_rate": 12.0}, 400, "learning_rate: 0 to 10"),
        ({"batch_size": 24}, 400, "power of two"),
        ({"colour": "blue"}, 400, "Unknown field(s) ['colour']"),
        ({"search": {"trials": 500}}, 400, "search.trials"),
        ({"task": "verifier"}, 400, "faces dataset"),
        ({"start_from": 999999}, 404, "no detector version 999999"),
        ({"dataset": 10**25}, 400, "dataset must be a dataset id"),
        ({"dataset": 999999}, 404, "Dataset 999999 does not exist"),
    ],
)
def test_bad_requests_are_refused_with_nothing_stored(cells, labeler_api, change, status, message):
    body = {"dataset": cells.pk, **change}
    response = labeler_api.post(RUNS, body, format="json")
    assert response.status_code == status, response.content
    assert message in response.json()["error"]["message"]
    assert not TrainingRun.objects.exists() and not Job.objects.exists()


def test_malformed_json_and_roles(cells, labeler_api, viewer_api):
    for raw in ("{not json", f'{{"dataset": {cells.pk}, "learning_rate": Infinity}}'):
        broken = labeler_api.post(RUNS, raw, content_type="application/json")
        assert broken.status_code == 400 and broken.json()["error"]["code"] == "parse_error"
    assert viewer_api.post(RUNS, {"dataset": cells.pk}, format="json").status_code == 403
    assert APIClient().post(RUNS, {"dataset": cells.pk}, format="json").status_code == 401
    assert viewer_api.get(RUNS).status_code == 200  # viewers watch
    assert not TrainingRun.objects.exists()


def test_cancel_then_nothing_left_to_cancel(cells, labeler_api, viewer_api):
    run_id = labeler_api.post(RUNS, {"dataset": cells.pk, **SMALL}, format="json").json()["id"]
    assert viewer_api.post(f"{RUNS}{run_id}/cancel/").status_code == 403
    cancelled = labeler_api.post(f"{RUNS}{run_id}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["trials"][0]["status"] == "cancelled"
    again = labeler_api.post(f"{RUNS}{run_id}/cancel/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_cancellable"
    assert labeler_api.get(f"{RUNS}999999/").status_code == 404


def test_the_registry_lists_promotes_and_rolls_back(cells, labeler_api, admin_api):
    for seed in (0, 1):
        labeler_api.post(RUNS, {"dataset": cells.pk, **SMALL, "seed": seed}, format="json")
    run_jobs()
    first, second = ModelVersion.objects.filter(dataset=cells).order_by("pk")
    listed = labeler_api.get("/api/v1/models/", {"kind": "detector", "dataset": cells.pk}).json()
    assert [v["id"] for v in listed["results"]] == [second.pk, first.pk] or [
        v["id"] for v in listed["results"]
    ] == [first.pk, second.pk]
    detail = labeler_api.get(f"/api/v1/models/{first.pk}/").json()
    assert set(detail["metrics"]) >= {"train", "val", "test"} and detail["serves"] == []

    promote = f"/api/v1/models/{first.pk}/promote/"
    assert labeler_api.post(promote, {"dataset": cells.pk}, format="json").status_code == 403
    bad = admin_api.post(promote, {"dataset": "x"}, format="json")
    assert bad.status_code == 400 and not Promotion.objects.exists()
    served = admin_api.post(promote, {"dataset": cells.pk}, format="json")
    assert served.json()["serving"]["detector"]["id"] == first.pk
    admin_api.post(f"/api/v1/models/{second.pk}/promote/", {"dataset": cells.pk}, format="json")
    rollback = f"/api/v1/datasets/{cells.pk}/rollback/"
    assert labeler_api.post(rollback, {"kind": "detector"}, format="json").status_code == 403
    back = admin_api.post(rollback, {"kind": "detector"}, format="json")
    assert back.status_code == 200 and back.json()["serving"]["detector"]["id"] == first.pk
    assert labeler_api.get(f"/api/v1/models/{first.pk}/").json()["serves"] == [cells.pk]


# ---------------------------------------------------------------------------- pages


def test_the_training_pages_start_watch_and_report(client, cells, labeler, admin_user):
    client.force_login(labeler)
    dataset_page = client.get(f"/datasets/{cells.pk}/").content.decode()
    assert f'href="/training/datasets/{cells.pk}/splits/"' in dataset_page
    assert f'href="/training/?dataset={cells.pk}"' in dataset_page
    page = client.get(f"/training/?dataset={cells.pk}").content.decode()
    assert f'<option value="{cells.pk}" selected>' in page
    assert 'id="run-form"' in page and 'enctype="multipart/form-data"' in page
    started = client.post(
        "/training/",
        {"dataset": cells.pk, "task": "detector", "epochs": 2, "backbone": "ours"},
    )
    run = TrainingRun.objects.get()
    assert started.status_code == 302 and started["Location"] == f"/training/runs/{run.pk}/"
    assert run.config["epochs"] == 2
    watching = client.get(started["Location"]).content.decode()
    assert 'data-finished="0"' in watching and 'id="cancel-run"' in watching
    run_jobs()
    report = client.get(started["Location"]).content.decode()
    assert 'id="diagnosis"' in report and "Avoidable bias (train − human)" in report
    assert "Variance (validation − train; no train-val split)" in report  # none here
    assert 'id="promote"' not in report  # labelers do not promote
    client.force_login(admin_user)
    assert 'id="promote"' in client.get(started["Location"]).content.decode()
    run.refresh_from_db()
    evil = client.post(
        f"/training/models/{run.model_version_id}/promote/",
        {"dataset": cells.pk, "next": "https://evil.example/"},
    )
    assert evil.status_code == 302 and evil["Location"] == "/training/models/"
    for bad in ("abc", "²", "9" * 25):
        promote = f"/training/models/{run.model_version_id}/promote/"
        assert client.post(promote, {"dataset": bad}).status_code == 404
    assert Promotion.objects.get().version_id == run.model_version_id
    models = client.get("/training/models/").content.decode()
    assert run.model_version.name in models


def test_a_viewer_cannot_start_training_from_the_page(client, cells, viewer):
    client.force_login(viewer)
    client.post("/training/", {"dataset": cells.pk, "task": "detector", "epochs": 2})
    assert not TrainingRun.objects.exists() and not Job.objects.exists()


def test_the_page_refuses_a_bad_backbone_file_and_keeps_nothing(client, cells, labeler):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(labeler)
    response = client.post(
        "/training/",
        {
            "dataset": cells.pk,
            "task": "detector",
            "epochs": 2,
            "backbone": "resnet18",
            "backbone_file": SimpleUploadedFile("w.pth", b"junk"),
        },
        follow=True,
    )
    assert "not a weights file we can read safely" in response.content.decode()
    assert not TrainingRun.objects.exists()
