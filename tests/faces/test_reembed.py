"""A new verifier: stored embeddings are recomputed by the reembed job, crop for crop."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import make_tiny_verifier
from tests.faces.conftest import pixels_of, reference_embedding
from webapp.faces import enrollment, reembed, services
from webapp.faces.models import Face
from webapp.jobs.models import Job
from webapp.jobs.runner import execute_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_faces(tiny_verifier, orl):
    ann = enrollment.create_subject("Ann")
    enrollment.enroll(ann, [services.read_image(orl(12, 1))])
    enrollment.enroll(ann, [services.read_image(orl(12, 2))], box=[10, 10, 80, 100])
    return ann


def test_reembed_job_recomputes_every_face_with_the_new_verifier(two_faces, orl, labeler):
    newer = make_tiny_verifier(seed=7)
    job = services.schedule_reembed(labeler)
    assert job is not None and job.kind == "reembed"
    assert services.schedule_reembed(labeler) is None  # one at a time
    execute_job(job.pk)
    job.refresh_from_db()
    assert job.status == "done", job.error
    assert job.result["faces"] == 2 and job.result["skipped"] == []
    assert job.result["model_version"]["id"] == newer.pk and job.progress == 1.0
    whole, boxed = Face.objects.order_by("id")
    assert {whole.embedding_version_id, boxed.embedding_version_id} == {newer.pk}
    np.testing.assert_allclose(
        whole.get_embedding(), reference_embedding(newer, pixels_of(orl(12, 1))), atol=1e-5
    )
    np.testing.assert_allclose(
        boxed.get_embedding(),
        reference_embedding(newer, pixels_of(orl(12, 2)), box=(10, 10, 80, 100)),
        atol=1e-5,
    )
    found = services.recognize(pixels_of(orl(12, 1)))
    assert found["faces"][0]["label"] == "Ann" and found["gallery"]["stale_faces"] == 0
    assert services.schedule_reembed() is None  # nothing left to do


def test_reembedding_with_the_same_model_reproduces_enrollment(two_faces, tiny_verifier):
    before = {f.pk: f.get_embedding() for f in Face.objects.all()}
    Face.objects.update(embedding_version=None)  # pretend they are stale
    result = reembed.reembed_faces()
    assert result["faces"] == 2
    for face in Face.objects.all():
        np.testing.assert_allclose(face.get_embedding(), before[face.pk], atol=1e-6)


def test_first_use_of_a_new_verifier_schedules_the_job(two_faces, orl):
    services.load_models()  # serving with the enrolled verifier: nothing to do
    assert not Job.objects.filter(kind="reembed").exists()
    make_tiny_verifier(seed=3)
    services.load_models()  # the cache notices the switch
    assert Job.objects.filter(kind="reembed", status="queued").count() == 1


def test_a_missing_image_file_is_skipped_not_fatal(two_faces):
    from django.core.files.storage import default_storage

    make_tiny_verifier(seed=4)
    first = Face.objects.order_by("id").first()
    default_storage.delete(first.image.file.name)
    result = reembed.reembed_faces()
    assert result["faces"] == 1 and len(result["skipped"]) == 1
    assert f"face {first.pk}" in result["skipped"][0]


def test_reembed_starts_once_per_verifier_unless_forced(two_faces, orl, labeler):
    make_tiny_verifier(seed=6)
    first = services.schedule_reembed()
    Job.objects.filter(pk=first.pk).update(status="failed")
    assert services.schedule_reembed() is None  # no retry loop on every request
    forced = services.schedule_reembed(labeler, force=True)
    assert forced is not None and forced.pk != first.pk


def test_activating_a_verifier_starts_the_reembed_job_on_commit(
    two_faces, tiny_face_detector, django_capture_on_commit_callbacks
):
    older = services.active_verifier()
    newer = make_tiny_verifier(seed=8)  # registered and activated inside the test transaction
    older.activate()
    assert not Job.objects.filter(kind="reembed").exists()  # nothing before the commit

    with django_capture_on_commit_callbacks(execute=True):
        newer.activate()

    (job,) = Job.objects.filter(kind="reembed")
    assert job.params["verifier"] == newer.pk
    Job.objects.filter(pk=job.pk).update(status="done")
    # Activating a face detector is no reason to re-embed.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        tiny_face_detector.activate()
    assert len(callbacks) == 1  # the signal was sent ...
    assert Job.objects.filter(kind="reembed").count() == 1  # ... and ignored


def test_switching_to_the_dlib_backbone_reembeds_with_its_own_crops(two_faces, orl, labeler):
    """Re-embedding is the same whatever the backbone: the dlib verifier's 128-d embeddings
    of its own aligned chips replace the tiny net's 8-d ones, and recognition uses them."""
    import json
    from pathlib import Path

    from inference.face_backbones import BackboneVerifier
    from inference.siamese import embed_face_crops, load_verifier, make_face_crop
    from tests.conftest import _register_model
    from training.models import ModelKind

    models = Path(__file__).resolve().parents[2] / "demo" / "models"
    card = json.loads((models / "verifier-dlib.json").read_text())
    dlib_version = _register_model(
        ModelKind.VERIFIER,
        "dlib",
        models / "verifier-dlib.safetensors",
        card["sha256"],
        config=card["config"],
        metrics=card["metrics"],
    )
    assert dlib_version.kind == ModelKind.VERIFIER and dlib_version.is_active
    job = services.schedule_reembed(labeler)
    assert job is not None
    execute_job(job.pk)
    job.refresh_from_db()
    assert job.status == "done", job.error
    assert job.result["faces"] == 2 and job.result["model_version"]["id"] == dlib_version.pk
    net, _ = load_verifier(dlib_version.path, "cpu")
    assert isinstance(net, BackboneVerifier)
    whole = Face.objects.order_by("id").first()
    assert whole is not None
    expected = embed_face_crops(net, [make_face_crop(net, pixels_of(orl(12, 1)), None)])[0]
    stored = whole.get_embedding()
    assert stored is not None and stored.shape == (128,)
    # The stored face was found by serving's pipeline (no face detector here: used whole).
    np.testing.assert_allclose(stored, expected, atol=1e-5)
    found = services.recognize(pixels_of(orl(12, 5)))
    assert found["faces"][0]["label"] == "Ann" and found["gallery"]["stale_faces"] == 0
