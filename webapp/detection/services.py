"""Run the detector on stored or transient images and record the boxes.

The predictor is loaded once per worker process and kept until a different model version
is asked for (for example after another version is made active).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction

from inference.predict import Detections, Predictor
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


def detector_choices(dataset: Dataset | None, kind: str = ModelKind.DETECTOR) -> list[ModelVersion]:
    """Versions of ``kind`` in the order to offer them for ``dataset``'s images.

    The dataset's own detectors (trained on it) come first, the serving one first among
    them, then the newest; then every other version, the serving one first. Running the
    blood-cell detector on a street photo is then a choice the list offers, not the
    only option.
    """
    versions = list(ModelVersion.objects.filter(kind=kind).select_related("dataset"))

    def rank(version: ModelVersion) -> tuple[bool, bool, float]:
        own = dataset is not None and version.dataset_id == dataset.pk
        return (not own, not version.is_active, -version.created_at.timestamp())

    return sorted(versions, key=rank)


def resolve_version(
    version_id: int | None, kind: str = ModelKind.DETECTOR, dataset: Dataset | None = None
) -> ModelVersion:
    """The version asked for, else the first of :func:`detector_choices` for ``dataset``.

    Raises:
        NoModel: 404 for an unknown id, 503 when there is no version of ``kind`` at all.
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
    if dataset is not None:
        choices = detector_choices(dataset, kind)
        if choices and choices[0].dataset_id == dataset.pk:
            return choices[0]
    active = ModelVersion.active(kind)
    if active is None:
        raise NoModel(f"No {kind} model is active yet: train one or activate a version.")
    return active


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


@dataclass(frozen=True)
class DetectOptions:
    min_confidence: float
    iou_threshold: float


def _kept(detections: Detections) -> list[tuple[list[float], float, str]]:
    """Detections at least a pixel wide and high (clipping to the image can flatten a box)."""
    return [
        (box, float(score), name)
        for box, score, name in zip(
            detections.boxes.tolist(),
            detections.scores.tolist(),
            detections.class_names,
            strict=True,
        )
        if box[2] - box[0] >= 1.0 and box[3] - box[1] >= 1.0
    ]


def predictions_json(detections: Detections) -> list[dict[str, Any]]:
    return [
        {
            "label": name,
            "confidence": round(float(score), 4),
            "x_min": round(float(box[0]), 1),
            "y_min": round(float(box[1]), 1),
            "x_max": round(float(box[2]), 1),
            "y_max": round(float(box[3]), 1),
        }
        for box, score, name in _kept(detections)
    ]


def detect_arrays(
    predictor: Predictor, images: list[np.ndarray[Any, Any]], options: DetectOptions
) -> list[Detections]:
    return predictor.predict(
        images, score_threshold=options.min_confidence, iou_threshold=options.iou_threshold
    )


def store_model_boxes(image: Image, version: ModelVersion, detections: Detections) -> int:
    """Replace this version's boxes on `image` with `detections`; returns the count."""
    with transaction.atomic():
        classes = ensure_classes(image.dataset, detections.class_names)
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
                score=float(score),
            )
            for b, score, name in _kept(detections)
        ]
        Box.objects.bulk_create(boxes)
        if image.status == ImageStatus.NEW:
            Image.objects.filter(pk=image.pk).update(status=ImageStatus.PREDICTED)
    return len(boxes)


def elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)
