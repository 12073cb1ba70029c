"""An evaluation job end to end on the BCCD demo images with the shipped detector: the
stored metrics are the ones ``evaluate`` always computed, and the stored cases are exactly
the mistakes the pure matching finds on the same predictions."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from django.core.management import call_command

from inference.calibration import serving_scores
from inference.error_cases import match_image
from inference.predict import Predictor
from inference.preprocess import load_rgb
from inference.yolo import load_detector
from training.detection import EVAL_SCORE_THRESHOLD, evaluate_detector, report_at_threshold
from training.models import ModelKind, ModelVersion
from training.samples import split_samples
from webapp.analysis.evaluate import check_request, run_evaluation
from webapp.analysis.models import INCORRECTLY_LABELED, ErrorCase, ErrorTag, Evaluation
from webapp.images.models import Dataset
from webapp.jobs.models import Job, JobStatus
from webapp.jobs.runner import execute_job

pytestmark = pytest.mark.django_db
SPLIT = "val"


@pytest.fixture
def demo(capsys):
    call_command("load_demo")
    capsys.readouterr()
    version = ModelVersion.objects.get(kind=ModelKind.DETECTOR, is_active=True)
    return version, Dataset.objects.get(name="BCCD demo")


def _expected_cases(version, dataset):
    """The pure function's cases on the split, from predictions made here."""
    names = list(version.class_names)
    samples = split_samples(dataset, names)[SPLIT]
    predictor = Predictor(load_detector(version.path, device="cpu"), backend="torch")
    serving = serving_scores(version.metrics, version.config)
    kinds: Counter[str] = Counter()
    for sample in samples:
        [d] = predictor.predict([load_rgb(sample.image_path)], score_threshold=EVAL_SCORE_THRESHOLD)
        conf = serving.confidences(d.scores, d.labels)
        keep = conf >= serving.threshold
        found = match_image(
            sample.boxes, sample.labels, d.boxes[keep], d.labels[keep], conf[keep], len(names)
        )
        kinds.update(c.kind for c in found.cases)
    return samples, kinds


def test_an_evaluation_job_stores_the_metrics_and_one_case_per_mistake(demo, labeler_api):
    version, dataset = demo
    response = labeler_api.post(
        "/api/v1/evaluations/",
        {"model_version": version.pk, "dataset": dataset.pk, "split": SPLIT},
        format="json",
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["job"]["kind"] == "evaluate" and body["job"]["status"] == "queued"
    assert response["Location"] == f"/api/v1/evaluations/{body['id']}/"
    evaluation = Evaluation.objects.get(pk=body["id"])
    assert ErrorTag.objects.filter(dataset=dataset, name=INCORRECTLY_LABELED).exists()

    execute_job(body["job"]["id"])

    job = Job.objects.get(pk=body["job"]["id"])
    assert job.status == JobStatus.DONE, job.error
    assert job.result["evaluation"] == evaluation.pk and job.progress == 1.0
    evaluation.refresh_from_db()
    metrics = evaluation.metrics

    # The numbers `evaluate` has always computed, through the old path, exactly.
    samples, kinds = _expected_cases(version, dataset)
    model = load_detector(version.path, device="cpu")
    old = report_at_threshold(
        evaluate_detector(model, samples, model.config.img_size),
        serving_scores(version.metrics, version.config),
    )
    for key in ("map50", "map50_95", "precision", "recall", "f1", "score_threshold"):
        assert metrics[key] == pytest.approx(old[key], abs=1e-9), key
    assert evaluation.images == metrics["images"] == len(samples)
    assert evaluation.error_rate == pytest.approx(1 - old["f1"])

    # One case per mistake, the same the pure function finds on the same predictions.
    stored = Counter(evaluation.cases.values_list("kind", flat=True))
    assert stored == kinds and sum(stored.values()) == metrics["error_cases"] > 0
    assert metrics["errors_by_kind"] == {k: kinds.get(k, 0) for k in metrics["errors_by_kind"]}
    # ... which are the false positives plus false negatives behind precision and recall.
    matrix = np.array(metrics["confusion_matrix"]["matrix"])
    n_gt = int(matrix[:-1].sum())
    n_pred = int(matrix[:, :-1].sum())
    tp = int(np.trace(matrix[:-1, :-1]))
    assert tp == metrics["true_positives"]
    assert (n_pred - tp) + (n_gt - tp) == metrics["error_cases"]
    assert metrics["recall"] == pytest.approx(tp / n_gt, abs=1e-9)
    assert metrics["precision"] == pytest.approx(tp / n_pred, abs=1e-9)
    assert n_gt == sum(len(s.labels) for s in samples)
    assert metrics["confusion_matrix"]["labels"] == [*version.class_names, "background"]
    assert set(metrics["pr_curves"]) <= set(version.class_names)
    assert all(len(c["recall"]) <= 201 for c in metrics["pr_curves"].values())


def test_stored_cases_carry_boxes_scores_and_a_fixed_random_sample_key(demo, labeler):
    version, dataset = demo
    request = check_request(version.pk, dataset.pk, SPLIT)
    evaluation = Evaluation.objects.create(model_version=version, dataset=dataset, split=SPLIT)
    run_evaluation(evaluation)
    cases = list(ErrorCase.objects.filter(evaluation=evaluation).order_by("id"))
    assert request.split == SPLIT and cases
    keys = [c.sample_key for c in cases]
    assert all(0.0 <= k < 1.0 for k in keys) and len(set(keys)) == len(keys)
    names = set(version.class_names)
    for case in cases:
        assert case.image.dataset_id == dataset.pk
        if case.kind == "missed":
            assert case.label_class in names and len(case.true_box) == 4
        else:
            assert case.predicted_class in names and len(case.predicted_box) == 4
            assert case.score >= evaluation.metrics["score_threshold"]
        if case.kind in ("wrong_class", "poor_localization", "duplicate"):
            assert case.true_box is not None and case.iou is not None and 0.0 < case.iou <= 1.0
        assert 0.0 <= case.label_error_score <= 1.0
    assert any(c.label_error_kind for c in cases)
    # Running it again (a job delivered twice) replaces the cases with the same ones.
    run_evaluation(evaluation)
    again = list(ErrorCase.objects.filter(evaluation=evaluation).order_by("id"))
    assert [(c.kind, c.sample_key, c.predicted_box, c.true_box) for c in again] == [
        (c.kind, c.sample_key, c.predicted_box, c.true_box) for c in cases
    ]
    top = evaluation.metrics["label_errors"]["top_images"]
    assert top and top[0]["score"] >= top[-1]["score"]


def test_the_evaluate_command_is_the_same_function_and_stores_the_evaluation(demo, capsys):
    version, _ = demo
    call_command("evaluate", "--model-version", str(version.pk), "--split", SPLIT, "--json")
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    evaluation = Evaluation.objects.get(pk=result["evaluation"])
    assert evaluation.metrics == result and evaluation.cases.count() == result["error_cases"]
    for key in ("map50", "per_class_ap50", "per_class", "score_scale", "threshold_rule"):
        assert key in result
    call_command("evaluate", "--model-version", str(version.pk), "--split", SPLIT)
    text = capsys.readouterr().out
    assert f"map50: {result['map50']}" in text and "confusion matrix" in text
    assert "pr_curves" not in text  # the long lists stay in --json
