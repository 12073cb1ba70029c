"""Face detectors trained in the training app (browser, API), as the shipped one was by the
command: the face augmentation and architecture (occlusion on request), whole-photo faces
from a faces dataset, registered as a face detector, and served by the face search once
promoted for the gallery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image as PILImage

from inference.calibration import raw_working_threshold
from tests.training_app.conftest import DEMO, run_jobs
from training import registry, runs
from training.detection import FACE_AUGMENT_CONFIG, FACE_DETECTOR_CONFIG
from training.models import ModelKind, RunStatus, TrainingRun
from training.run_config import RunConfig, RunConfigError
from training.trials import augment_config
from webapp.faces import services
from webapp.images.models import Dataset
from webapp.jobs.models import Job
from webapp.labeling.importers import import_folder, import_voc

pytestmark = pytest.mark.django_db
SMALL = {"task": "face_detector", "epochs": 2, "img_size": 128}
ONE_CLASS = {"RBC": "face", "WBC": "face", "Platelets": "face"}


@pytest.fixture
def face_boxes(db):
    """A one-class detection dataset ("face"): the BCCD sample with its classes merged."""
    return import_voc(DEMO, name="face boxes", class_map=ONE_CLASS).dataset


@pytest.fixture
def portraits(tmp_path: Path) -> Dataset:
    """A faces dataset of one-face photos stored without boxes (as ORL's), 5 people."""
    rng = np.random.default_rng(0)
    for person in range(5):
        folder = tmp_path / "people" / f"p{person}"
        folder.mkdir(parents=True)
        for shot in range(2):
            pixels = rng.integers(0, 256, (56, 46, 3), dtype=np.uint8)
            PILImage.fromarray(pixels).save(folder / f"{shot}.png")
    return import_folder(tmp_path / "people", "folders", name="portraits").dataset


def test_a_face_detector_run_uses_the_face_recipe_and_serves_once_promoted(
    face_boxes, portraits, labeler, admin_user, tiny_verifier, tiny_face_detector, client
):
    config = RunConfig(**SMALL, whole_image_faces=portraits.pk)
    run = runs.start_run(face_boxes, config, user=labeler)
    run_jobs()
    run.refresh_from_db()
    assert run.status == RunStatus.DONE, run.message
    version = run.model_version
    assert version.kind == ModelKind.FACE_DETECTOR and version.class_names == ["face"]
    # The face architecture (three scales), at the run's input size.
    assert version.config["strides"] == list(FACE_DETECTOR_CONFIG.strides) == [32, 16, 8]
    assert version.config["img_size"] == 128
    # A working threshold fitted on its own validation split: the face search's bar.
    assert 0 < version.metrics["threshold_raw"] < 1
    # The augmentation a face detector trains with (zoom onto a face, light, grey), and
    # occlusion when a run asks for it.
    assert augment_config(config, set()) == FACE_AUGMENT_CONFIG
    assert FACE_AUGMENT_CONFIG.zoom_p > 0 and FACE_AUGMENT_CONFIG.shade_p > 0
    assert augment_config(RunConfig(), set()).zoom_p == 0
    occluding = RunConfig(**SMALL, augment=("occlude",))
    assert augment_config(occluding, set()).occlude_p == 0.3

    # The active face detector serves until this one is promoted for the gallery.
    assert services.serving_face_detector() == tiny_face_detector
    gallery = services.gallery_dataset()
    # The run's page offers to serve the face search with it (not the detection dataset,
    # which a face detector cannot serve), and its button does so.
    client.force_login(admin_user)
    page = client.get(reverse("training:run", args=[run.pk])).content.decode()
    assert f'name="dataset" value="{gallery.pk}"' in page and f"serve {gallery.name}" in page
    promoted = client.post(reverse("training:promote", args=[version.pk]), {"dataset": gallery.pk})
    assert promoted.status_code == 302
    assert services.serving_face_detector() == version
    assert registry.serving(gallery, ModelKind.FACE_DETECTOR) == version
    summary = services.load_models().summary()
    assert summary["face_detector"]["id"] == version.pk
    bar = raw_working_threshold(version.metrics, version.config)  # rounded to 6 places
    assert summary["face_score_bar"] == pytest.approx(bar, abs=1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"whole_image_faces": 987654}, "no dataset 987654"),
        ({"start_from": "detector"}, "no face_detector version"),
    ],
)
def test_face_detector_requests_that_cannot_run_are_refused_before_anything(
    face_boxes, labeler, tiny_detector, change, message
):
    if change.get("start_from") == "detector":  # an object detector is no face detector
        change = {"start_from": tiny_detector.pk}
    with pytest.raises(runs.RunError, match=message):
        runs.start_run(face_boxes, RunConfig(**{**SMALL, **change}), user=labeler)
    assert not TrainingRun.objects.exists() and not Job.objects.exists()


def test_whole_image_faces_must_be_a_faces_dataset_for_a_one_class_face_detector(
    face_boxes, portraits, labeler
):
    with pytest.raises(runs.RunError, match="is a detection dataset, not faces"):
        runs.start_run(
            face_boxes, RunConfig(**SMALL, whole_image_faces=face_boxes.pk), user=labeler
        )
    three = import_voc(DEMO, name="three classes").dataset
    with pytest.raises(runs.RunError, match="one-class face detector"):
        runs.start_run(three, RunConfig(**SMALL, whole_image_faces=portraits.pk), user=labeler)
    with pytest.raises(RunConfigError, match="for a face_detector run"):
        RunConfig(task="detector", whole_image_faces=portraits.pk)
    assert not TrainingRun.objects.exists()


def test_a_face_detector_run_is_asked_for_over_the_api_and_the_page(
    face_boxes, portraits, labeler_api, client, labeler
):
    response = labeler_api.post(
        "/api/v1/training/runs/",
        {"dataset": face_boxes.pk, **SMALL, "whole_image_faces": portraits.pk},
        format="json",
    )
    assert response.status_code == 201, response.json()
    run = TrainingRun.objects.get(pk=response.json()["id"])
    assert run.task == "face_detector" and run.config["whole_image_faces"] == portraits.pk
    client.force_login(labeler)
    page = client.get("/training/")
    assert b'value="face_detector"' in page.content
    posted = client.post(
        "/training/",
        {
            "dataset": face_boxes.pk,
            "task": "face_detector",
            "epochs": 1,
            "backbone": "ours",
            "whole_image_faces": portraits.pk,
        },
    )
    assert posted.status_code == 302
    newest = TrainingRun.objects.order_by("-pk").first()
    assert newest.task == "face_detector" and newest.config["whole_image_faces"] == portraits.pk
