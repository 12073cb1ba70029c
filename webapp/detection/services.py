"""Run the detector on stored or transient images and record the boxes.

The predictor is loaded once per worker process and kept until a different model version
is asked for (for example after another version is made active).

Scores: a version with a score calibration (``metrics["score_calibration"]``, fitted on its
validation split) serves **calibrated confidence**, the probability that a box with that
score is a true positive at IoU 0.5; ``min_confidence`` and the working threshold
(``metrics["threshold"]``) are on that scale, and the raw network score stays available
as ``raw_score``. A version without one serves raw scores (``confidence == raw_score``)
with its raw threshold. Stored model boxes (``Box.score``) hold the confidence as served,
so the review page's slider, the working threshold and the API share one scale.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from numpy.typing import NDArray

from inference.calibration import ServingScores, serving_scores
from inference.predict import Detections, Predictor
from training import registry
from training.models import ModelKind, ModelVersion
from webapp.images.models import Box, BoxOrigin, Dataset, Image, ImageStatus
from webapp.jobs.errors import JobError
from webapp.labeling.classes import ensure_classes

_cache_lock = threading.Lock()
_cache: dict[str, tuple[int, str, Predictor]] = {}


class NoModel(JobError):
    """No detector is available to serve the request (or the one asked for is unknown)."""

    def __init__(self, message: str, *, code: str = "no_model", status: int = 503) -> None:
        super().__init__(message, code=code, status=status)


serving_version = registry.serving


def detector_choices(dataset: Dataset | None, kind: str = ModelKind.DETECTOR) -> list[ModelVersion]:
    """Versions of ``kind`` in the order to offer them for ``dataset``'s images.

    The one serving the dataset first, then the dataset's own (trained on it), newest
    first, then every other version, the workbench-wide active one first. Running the
    blood-cell detector on a street photo is then a choice the list offers, not the only
    option.
    """
    serving = serving_version(dataset, kind)
    versions = list(ModelVersion.objects.filter(kind=kind).select_related("dataset"))

    def rank(version: ModelVersion) -> tuple[bool, bool, bool, float]:
        own = dataset is not None and version.dataset_id == dataset.pk
        first = serving is not None and version.pk == serving.pk
        return (not first, not own, not version.is_active, -version.created_at.timestamp())

    return sorted(versions, key=rank)


def resolve_version(
    version_id: int | None, kind: str = ModelKind.DETECTOR, dataset: Dataset | None = None
) -> ModelVersion:
    """The version asked for, else the one serving ``dataset`` (:func:`serving_version`).

    Raises:
        NoModel: 404 for an unknown id, 503 when no version serves.
    """
    if version_id is not None:
        version = ModelVersion.objects.filter(pk=version_id, kind=kind).first()
        if version is None:
            raise NoModel(
                f"There is no {kind} model version {version_id}.",
                code="unknown_model_version",
                status=404,
            )
        return version
    serving = serving_version(dataset, kind)
    if serving is None:
        raise NoModel(f"No {kind} model is active yet: train one or activate a version.")
    return serving


def get_predictor(version: ModelVersion) -> Predictor:
    """The predictor for `version`, loaded at most once per process while it stays in use."""
    with _cache_lock:
        cached = _cache.get(version.kind)
        if cached and cached[0] == version.pk and cached[1] == version.sha256:
            return cached[2]
        predictor = Predictor.from_checkpoint(
            version.path,
            expected_sha256=version.sha256,
            backend=settings.INFERENCE_BACKEND,
        )
        _cache[version.kind] = (version.pk, version.sha256, predictor)
        return predictor


def scores_of(version: ModelVersion) -> ServingScores:
    """How ``version`` serves its scores: calibration (or none), working threshold, scale."""
    return serving_scores(version.metrics, version.config)


def working_threshold(version: ModelVersion) -> float:
    """The minimum confidence to use when a client sends none, on the scale ``version``
    serves (calibrated confidence when it has a calibration, else raw scores): the max-F1
    threshold chosen on its validation split, else its checkpoint's score threshold."""
    return scores_of(version).threshold


@dataclass(frozen=True)
class DetectOptions:
    """One detection request's post-processing.

    Attributes:
        min_confidence: keep boxes whose confidence (on ``scores.scale``) is at least this.
        iou_threshold: class-aware NMS IoU.
        scores: the version's calibration and scale (:func:`scores_of`).
    """

    min_confidence: float
    iou_threshold: float
    scores: ServingScores


@dataclass(frozen=True)
class Found:
    """One image's kept detections and their confidences.

    Attributes:
        detections: boxes in original pixels with their RAW scores.
        confidence: ``float64 (D,)`` the served confidence of each (calibrated, or the raw
            score for a version without calibration).
    """

    detections: Detections
    confidence: NDArray[np.float64]


def _subset(detections: Detections, keep: NDArray[np.bool_]) -> Detections:
    names = tuple(n for n, k in zip(detections.class_names, keep.tolist(), strict=True) if k)
    return dataclasses.replace(
        detections,
        boxes=detections.boxes[keep],
        scores=detections.scores[keep],
        labels=detections.labels[keep],
        class_names=names,
    )


def _kept(found: Found) -> Iterator[tuple[list[float], float, float, str]]:
    """(box, confidence, raw score, class) of the detections at least a pixel wide and high
    (clipping to the image can flatten a box)."""
    d = found.detections
    rows = zip(
        d.boxes.tolist(), found.confidence.tolist(), d.scores.tolist(), d.class_names, strict=True
    )
    for box, confidence, raw, name in rows:
        if box[2] - box[0] >= 1.0 and box[3] - box[1] >= 1.0:
            yield box, float(confidence), float(raw), name


def predictions_json(found: Found) -> list[dict[str, Any]]:
    """The API's predictions: ``confidence`` as served and the network's ``raw_score``."""
    return [
        {
            "label": name,
            "confidence": round(confidence, 4),
            "raw_score": round(raw, 4),
            "x_min": round(float(box[0]), 1),
            "y_min": round(float(box[1]), 1),
            "x_max": round(float(box[2]), 1),
            "y_max": round(float(box[3]), 1),
        }
        for box, confidence, raw, name in _kept(found)
    ]


def detect_arrays(
    predictor: Predictor, images: list[np.ndarray[Any, Any]], options: DetectOptions
) -> list[Found]:
    """Detect, map raw scores to confidences, keep those at ``options.min_confidence``.

    The decoder runs at the raw score that the calibration maps to ``min_confidence``
    (never below the calibration's fitted floor), then the confidences are filtered
    exactly, so the kept boxes are exactly those whose confidence reaches the threshold.
    """
    scores = options.scores
    found = []
    for d in predictor.predict(
        images,
        score_threshold=scores.raw_threshold(options.min_confidence),
        iou_threshold=options.iou_threshold,
    ):
        confidence = scores.confidences(d.scores, d.labels)
        keep = confidence >= options.min_confidence
        found.append(Found(_subset(d, keep), confidence[keep]))
    return found


def store_model_boxes(image: Image, version: ModelVersion, found: Found) -> int:
    """Replace this version's boxes on `image` with `found` (``Box.score``: the confidence
    as served); returns the count."""
    with transaction.atomic():
        classes = ensure_classes(image.dataset, found.detections.class_names)
        Box.objects.filter(image=image, origin=BoxOrigin.MODEL, model_version=version).delete()
        boxes = [
            Box(
                image=image,
                label_class=classes[name],
                x1=b[0],
                y1=b[1],
                x2=b[2],
                y2=b[3],
                origin=BoxOrigin.MODEL,
                model_version=version,
                score=confidence,
            )
            for b, confidence, _, name in _kept(found)
        ]
        Box.objects.bulk_create(boxes)
        if image.status == ImageStatus.NEW:
            Image.objects.filter(pk=image.pk).update(status=ImageStatus.PREDICTED)
    return len(boxes)


def recalibrate_stored_boxes(version: ModelVersion) -> int:
    """Map the RAW scores of ``version``'s stored model boxes to its calibrated confidence.

    For a version that stored boxes before it had a calibration (``load_demo`` mends the
    shipped detector so): call it once, right after the calibration is added. Returns how
    many boxes changed; 0 when the version has no calibration.
    """
    calibration = scores_of(version).calibration
    if calibration is None:
        return 0
    index = {name: i for i, name in enumerate(version.class_names)}
    with transaction.atomic():
        boxes = list(
            Box.objects.select_for_update()
            .filter(origin=BoxOrigin.MODEL, model_version=version, score__isnull=False)
            .select_related("label_class")
        )
        known = [b for b in boxes if b.label_class.name in index]
        labels = [index[b.label_class.name] for b in known]
        raw = np.array([b.score for b in known], np.float64)
        confidence = calibration.calibrate(raw, labels)
        for box, value in zip(known, confidence.tolist(), strict=True):
            box.score = value
        Box.objects.bulk_update(known, ["score"])
    return len(known)


def elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)
