"""The bar a face box must pass comes from the face detector version's own validation data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inference.calibration import raw_working_threshold
from inference.face_pipeline import detect_faces
from tests.faces.conftest import pixels_of
from webapp.faces import services

pytestmark = pytest.mark.django_db

SHIPPED = Path(__file__).resolve().parents[2] / "demo" / "models" / "face-detector.json"


def _scores(orl) -> np.ndarray:
    """Every face-box score the tiny detector gives one photo, best first."""
    pipeline = services.load_models().pipeline
    assert pipeline.detector is not None
    return np.array([s for _, s in detect_faces(pipeline.detector, pixels_of(orl(1)), 0.0)])


def test_the_bar_is_the_versions_raw_max_f1_threshold(tiny_verifier, tiny_face_detector, orl):
    scores = _scores(orl)
    assert len(scores) >= 2 and scores[0] > scores[-1]
    # A bar between the best and the worst box: the version's recorded raw max-F1 point.
    bar = float((scores[0] + scores[-1]) / 2)
    tiny_face_detector.metrics = {"threshold_raw": bar}
    tiny_face_detector.save(update_fields=["metrics"])
    services._cache.clear()
    models = services.load_models()
    assert models.pipeline.min_face_score == pytest.approx(bar, abs=1e-9)
    assert models.summary()["face_score_bar"] == pytest.approx(bar, abs=1e-6)
    found = models.pipeline.detect(pixels_of(orl(1)))
    assert found and min(s for _, s in found) >= bar
    assert len(found) < len(scores)


def test_a_version_with_nothing_recorded_uses_its_checkpoints_threshold(
    tiny_verifier, tiny_face_detector
):
    tiny_face_detector.metrics = {}
    tiny_face_detector.save(update_fields=["metrics"])
    services._cache.clear()
    assert services.load_models().pipeline.min_face_score == pytest.approx(
        tiny_face_detector.config["score_threshold"]
    )


def test_the_shipped_detectors_bar_is_its_validation_working_point():
    meta = json.loads(SHIPPED.read_text())
    metrics = meta["metrics"]
    assert metrics["threshold_split"] == "val" and metrics["threshold_rule"] == "max_f1"
    bar = raw_working_threshold(metrics, meta["config"])
    # The calibration's inverse at the calibrated working point lands on the raw score the
    # training recorded for it (isotonic steps: within one step of the fitted curve).
    assert bar == pytest.approx(metrics["threshold_raw"], abs=1e-3)
    assert bar != pytest.approx(meta["config"]["score_threshold"], abs=1e-3)


def test_a_bar_outside_zero_one_is_refused(tiny_verifier, tiny_face_detector, orl):
    pipeline = services.load_models().pipeline
    assert pipeline.detector is not None
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="min_face_score"):
            detect_faces(pipeline.detector, pixels_of(orl(1)), bad)
