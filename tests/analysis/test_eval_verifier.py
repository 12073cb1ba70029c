"""A verifier evaluation with the tiny verifier: the pairs and distances are training's
calibration ones, and every false accept and false reject is one case with both photos."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from inference.error_cases import face_pair_distances, verification_errors
from inference.siamese import load_verifier
from tests.images import jpeg_bytes
from training.samples import face_samples
from training.splits import SPLIT_SCHEME
from training.verification import evaluate_verifier
from webapp.analysis.evaluate import check_request, evaluate_now
from webapp.faces.models import Face, FaceLabel, FaceOrigin, Subject
from webapp.images.ingest import ingest_image
from webapp.images.models import Dataset, SplitAssignment, Task

pytestmark = pytest.mark.django_db
PEOPLE, SHOTS = 3, 3


@pytest.fixture
def people(labeler: Any) -> Dataset:
    """A faces dataset: 3 people x 3 photos, all in val; the last photo framed by a box."""
    dataset = Dataset.objects.create(name="people-eval", task=Task.FACES)
    for p in range(PEOPLE):
        subject = Subject.objects.create(dataset=dataset, name=f"person {p}")
        for shot in range(SHOTS):
            image = ingest_image(
                jpeg_bytes(48, 56, seed=10 * p + shot), dataset=dataset, user=labeler
            )
            box = (4.0, 4.0, 44.0, 52.0) if shot == SHOTS - 1 else (None, None, None, None)
            Face.objects.create(
                image=image,
                subject=subject,
                origin=FaceOrigin.HUMAN,
                label=FaceLabel.PERSON,
                x1=box[0],
                y1=box[1],
                x2=box[2],
                y2=box[3],
            )
            SplitAssignment.objects.create(image=image, scheme=SPLIT_SCHEME, split="val")
    return dataset


def test_a_verifier_evaluation_stores_every_wrong_pair(people, tiny_verifier, labeler):
    evaluation = evaluate_now(check_request(tiny_verifier.pk, people.pk, "val"), labeler)
    metrics = evaluation.metrics
    faces = face_samples(people)["val"]
    net, _ = load_verifier(tiny_verifier.path, "cpu")

    # The same pairs and distances as training's calibration of a verifier.
    reference = evaluate_verifier(net, faces, rng_seed=0)
    assert metrics["eer"] == pytest.approx(reference.eer, abs=1e-6)
    assert metrics["auc"] == pytest.approx(reference.auc, abs=1e-6)
    assert (metrics["n_same"], metrics["n_different"]) == (reference.n_same, reference.n_different)
    assert metrics["n_same"] == PEOPLE * SHOTS * (SHOTS - 1) // 2

    # Every wrong decision at the version's threshold is one case, with both photos.
    pairs, distances = face_pair_distances(
        net, [(f.image_path, f.box) for f in faces], [f.identity for f in faces]
    )
    errors = verification_errors(pairs[0], pairs[1], pairs[2] == 0, distances, 0.015)
    assert metrics["threshold"] == 0.015 and metrics["threshold_rule"] == "eer"
    assert (metrics["false_accepts"], metrics["false_rejects"]) == (
        errors.false_accepts,
        errors.false_rejects,
    )
    assert metrics["error_rate"] == pytest.approx(errors.error_rate)
    assert evaluation.error_rate == pytest.approx(errors.error_rate)
    cases = list(evaluation.cases.order_by("id"))
    assert len(cases) == len(errors.cases) == metrics["error_cases"] > 0
    names = dict(Subject.objects.filter(dataset=people).values_list("pk", "name"))
    for case, expected in zip(cases, errors.cases, strict=True):
        first, second = faces[expected.first], faces[expected.second]
        assert case.kind == expected.kind
        assert case.distance == pytest.approx(expected.distance, abs=1e-6)
        assert case.image.file.path == str(first.image_path)
        assert case.other_image.file.path == str(second.image_path)
        assert case.label_class == names[int(first.identity)]
        assert case.predicted_class == names[int(second.identity)]
        same = case.label_class == case.predicted_class
        assert case.kind == ("false_reject" if same else "false_accept")
        assert case.true_box == (None if first.box is None else list(first.box))
    assert metrics["images"] == PEOPLE * SHOTS and metrics["people"] == PEOPLE
    assert len(metrics["roc"]["far"]) == len(metrics["roc"]["tar"]) > 1
    assert np.isfinite(metrics["calibration"]["eer_threshold"])


def test_a_split_with_one_person_cannot_evaluate_a_verifier(people, tiny_verifier):
    from webapp.jobs.errors import JobError

    SplitAssignment.objects.filter(image__faces__subject__name="person 0").update(split="test")
    with pytest.raises(JobError) as refused:
        check_request(tiny_verifier.pk, people.pk, "test")
    assert refused.value.code == "empty_split" and refused.value.status == 400
