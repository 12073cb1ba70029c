"""The `detect` job: one or many images, batched, on the `gpu` queue.

``params["min_confidence"]`` is on the scale the version serves (calibrated confidence when
it has a calibration); absent or null, the version's working threshold applies. The result
says which threshold and scale were used (``min_confidence``, ``confidence_scale``).
"""

from __future__ import annotations

import time
from typing import Any

from inference.predict import Predictor
from inference.preprocess import load_rgb
from training.models import ModelVersion
from webapp.detection.services import (
    DetectOptions,
    Found,
    detect_arrays,
    elapsed_ms,
    get_predictor,
    predictions_json,
    resolve_version,
    scores_of,
    store_model_boxes,
)
from webapp.images import uploads
from webapp.images.models import Image
from webapp.images.pixels import image_rgb
from webapp.jobs.errors import JobError
from webapp.jobs.models import JobKind
from webapp.jobs.registry import register
from webapp.jobs.runner import JobContext

BATCH = 8


def _options(params: dict[str, Any], version: ModelVersion) -> DetectOptions:
    """The request's thresholds; no ``min_confidence``: the version's working threshold."""
    scores = scores_of(version)
    asked = params.get("min_confidence")
    return DetectOptions(
        min_confidence=scores.threshold if asked is None else float(asked),
        iou_threshold=float(params.get("iou_threshold", 0.45)),
        scores=scores,
    )


def _answer(version: ModelVersion, options: DetectOptions, **rest: Any) -> dict[str, Any]:
    """The result's common part: the version and the threshold used, on which scale."""
    return {
        "model_version": version.summary(),
        "min_confidence": round(options.min_confidence, 4),
        "confidence_scale": options.scores.scale,
        **rest,
    }


@register(JobKind.DETECT, uses_model=True)
def detect(ctx: JobContext) -> dict[str, Any]:
    params = ctx.params
    version = resolve_version(params.get("model_version"))
    predictor = get_predictor(version)
    options = _options(params, version)
    stashed = uploads.stash_entries(params)
    if stashed:
        return _detect_transient(stashed[0], predictor, options, version)
    ids = [int(i) for i in params.get("image_ids", [])]
    images = list(Image.objects.filter(pk__in=ids).select_related("dataset"))
    if not images:
        raise JobError("None of the requested images exist.")
    results: list[dict[str, Any]] = []
    total_ms = 0.0
    for start in range(0, len(images), BATCH):
        batch = images[start : start + BATCH]
        began = time.perf_counter()
        detections = detect_arrays(predictor, [image_rgb(i) for i in batch], options)
        batch_ms = elapsed_ms(began)
        total_ms += batch_ms
        for image, found in zip(batch, detections, strict=True):
            store_model_boxes(image, version, found)
            results.append(
                {
                    "image_id": image.pk,
                    "predictions": predictions_json(found),
                    "inference_ms": round(batch_ms / len(batch), 1),
                }
            )
        done = start + len(batch)
        ctx.progress(done / len(images), f"{done} of {len(images)} images")
    return _answer(version, options, images=results, inference_ms=round(total_ms, 1))


def _detect_transient(
    entry: dict[str, str], predictor: Predictor, options: DetectOptions, version: ModelVersion
) -> dict[str, Any]:
    pixels = load_rgb(uploads.stashed_bytes(entry))
    began = time.perf_counter()
    found: Found
    [found] = detect_arrays(predictor, [pixels], options)
    return _answer(
        version, options, predictions=predictions_json(found), inference_ms=elapsed_ms(began)
    )
