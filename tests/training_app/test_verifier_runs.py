"""A verifier trains through the same runs as a detector: trials as jobs, EER on every
split's people, the threshold it serves with, the diagnosis with error = EER."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inference.siamese import load_verifier
from tests.training_app.conftest import run_jobs
from training import runs
from training.models import ModelKind, RunStatus
from training.run_config import RunConfig
from training.splits import SPLIT_SCHEME
from training.verification import DEFAULT_VERIFIER_TRAIN_CONFIG
from webapp.faces.importers import import_identity_folders
from webapp.images.models import SplitAssignment

pytestmark = pytest.mark.django_db
FACES = Path(__file__).resolve().parents[2] / "demo" / "faces"
# Five ORL people: two to train on, two to validate on, one to test on (too few for pairs of
# different people: the test error stays unmeasured rather than made up).
SPLIT_OF = {"s2": "train", "s3": "train", "s7": "val", "s23": "val", "s28": "test"}


@pytest.fixture
def people(db: None) -> Any:
    dataset = import_identity_folders(FACES, name="orl-five").dataset
    for person, split in SPLIT_OF.items():
        SplitAssignment.objects.filter(
            image__dataset=dataset, image__faces__subject__name=person, scheme=SPLIT_SCHEME
        ).update(split=split)
    return dataset


def test_a_verifier_run_registers_a_verifier_with_its_threshold_and_diagnosis(people, labeler):
    run = runs.start_run(people, RunConfig(task="verifier", epochs=2), user=labeler)
    run_jobs()
    run.refresh_from_db()
    trial = run.trials.get()
    assert run.status == RunStatus.DONE, (run.message, trial.message)
    # The default verifier averages several nets trained one after another: 2 epochs each.
    members = DEFAULT_VERIFIER_TRAIN_CONFIG.members
    assert [(e["member"], e["epoch"]) for e in trial.curves] == [
        (m, epoch) for m in range(1, members + 1) for epoch in (1, 2)
    ]
    assert {"train", "val", "unseen"} <= set(trial.metrics) and "test" not in trial.metrics
    assert trial.objective is not None and 0.0 <= trial.objective <= 1.0
    assert trial.objective == trial.metrics["val"]["eer"]
    version = run.model_version
    assert version.kind == ModelKind.VERIFIER and version.dataset == people
    _net, extra = load_verifier(version.path, "cpu")
    assert extra["threshold"] == pytest.approx(version.metrics["threshold"])
    assert version.metrics["calibration_people"] == 3  # val and test people, never trained on
    diagnosis = run.diagnosis
    assert diagnosis["val_error"] == pytest.approx(trial.metrics["val"]["eer"])
    assert diagnosis["train_error"] == pytest.approx(trial.metrics["train"]["eer"])
    assert diagnosis["test_error"] is None and diagnosis["val_overfitting"] is None


def test_a_verifier_needs_two_people_on_each_side(people, labeler):
    SplitAssignment.objects.filter(image__dataset=people, image__faces__subject__name="s23").update(
        split="test"
    )
    with pytest.raises(runs.RunError, match="too few val people"):
        runs.start_run(people, RunConfig(task="verifier", epochs=1), user=labeler)
    assert not people.training_runs.exists()


def test_a_verifier_run_on_the_dlib_backbone_registers_it_with_its_file_hash(people, labeler):
    from inference.face_backbones import BackboneVerifier, dlib_spec

    run = runs.start_run(
        people, RunConfig(task="verifier", epochs=2, backbone="dlib"), user=labeler
    )
    run_jobs()
    run.refresh_from_db()
    trial = run.trials.get()
    assert run.status == RunStatus.DONE, (run.message, trial.message)
    version = run.model_version
    assert version.config["backbone"]["kind"] == "dlib"
    assert version.config["backbone"]["sha256"] == dlib_spec().sha256
    net, extra = load_verifier(version.path, "cpu")
    assert isinstance(net, BackboneVerifier) and extra["threshold"] > 0
    # dlib tells these five people apart without training on them (its head may stay as is).
    assert trial.metrics["unseen"]["auc"] > 0.95
    assert trial.satisficing["latency_ms"] > 0


def test_an_onnx_backbone_is_uploaded_and_trained_on_through_the_api(people, labeler_api):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from inference.face_backbones import BackboneVerifier, OnnxBackbone
    from inference.siamese import EmbeddingConfig, EmbeddingNet
    from tests.inference.test_face_backbones import export_onnx

    net = EmbeddingNet(EmbeddingConfig(input_size=32, widths=(8, 16), embedding_dim=16))
    model = export_onnx(net, 32, 1, normalize="per_image", color="grey")
    url = "/api/v1/training/backbones/"
    stored = labeler_api.post(url, {"file": SimpleUploadedFile("mine.onnx", model)})
    assert stored.status_code == 201, stored.content
    body = stored.json()
    assert body["backbone"] == "onnx" and body["fits"]["onnx"]["output_dim"] == 16
    runs_url = "/api/v1/training/runs/"
    missing = {"dataset": people.pk, "task": "verifier", "epochs": 2, "backbone": "onnx"}
    refused = labeler_api.post(runs_url, missing, format="json")
    assert refused.status_code == 400 and "needs its file" in refused.json()["error"]["message"]
    started = labeler_api.post(
        runs_url, {**missing, "backbone_file": body["backbone_file"]}, format="json"
    )
    assert started.status_code == 201, started.content
    run_jobs()
    run = runs.TrainingRun.objects.get(pk=started.json()["id"])
    assert run.status == RunStatus.DONE, run.message
    version = run.model_version
    assert version.config["backbone"]["kind"] == "onnx"
    assert version.config["backbone"]["sha256"] == body["sha256"]
    loaded, _ = load_verifier(version.path, "cpu")
    assert isinstance(loaded, BackboneVerifier) and isinstance(loaded.backbone, OnnxBackbone)
    assert loaded.backbone.model == model


def test_the_training_page_starts_a_verifier_on_the_dlib_backbone(client, people, labeler):
    from training.models import TrainingRun

    client.force_login(labeler)
    page = client.get("/training/").content.decode()
    assert '<option value="dlib">' in page and '<option value="onnx">' in page
    wrong = client.post(
        "/training/",
        {"dataset": people.pk, "task": "detector", "epochs": 2, "backbone": "dlib"},
        follow=True,
    )
    assert "backbone for a detector" in wrong.content.decode()
    assert not TrainingRun.objects.exists()
    started = client.post(
        "/training/", {"dataset": people.pk, "task": "verifier", "epochs": 2, "backbone": "dlib"}
    )
    run = TrainingRun.objects.get()
    assert started.status_code == 302 and run.config["backbone"] == "dlib"
    run_jobs()
    run.refresh_from_db()
    assert run.status == RunStatus.DONE, run.message
    assert run.model_version.config["backbone"]["kind"] == "dlib"
