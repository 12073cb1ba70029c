"""Recompute stored face embeddings after the active verifier changed (the reembed job)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.preprocess import ImageArray
from training.models import ModelKind, ModelVersion
from webapp.faces.models import Face
from webapp.faces.services import FaceError, FaceModels, load_models, stale_faces
from webapp.images.pixels import image_rgb

# Images per step: one progress report and one bulk update each.
_IMAGES_PER_STEP = 64

Progress = Callable[[float, str], None]


def reembed_faces(progress: Progress | None = None) -> dict[str, Any]:
    """Recompute every stale embedding with the active verifier, image by image.

    Each face is cropped exactly as at enrollment (its stored box, or the whole image).
    Stops with FaceError ``verifier_changed`` if another verifier is activated meanwhile
    (the next run picks up where this one stopped).
    """
    models = load_models()
    version = models.verifier
    image_ids = sorted(set(stale_faces(version).values_list("image_id", flat=True)))
    done, skipped = 0, list[str]()
    for start in range(0, len(image_ids), _IMAGES_PER_STEP):
        batch = image_ids[start : start + _IMAGES_PER_STEP]
        done += _reembed_images(models, batch, skipped)
        if ModelVersion.active(ModelKind.VERIFIER) != version:
            raise FaceError(
                "verifier_changed", "Another verifier was activated while re-embedding.", status=409
            )
        if progress:
            progress(
                (start + len(batch)) / len(image_ids),
                f"{start + len(batch)} of {len(image_ids)} images",
            )
    return {
        "faces": done,
        "images": len(image_ids),
        "skipped": skipped,
        "model_version": version.summary(),
    }


def _reembed_images(models: FaceModels, image_ids: list[int], skipped: list[str]) -> int:
    faces = list(
        stale_faces(models.verifier).filter(image_id__in=image_ids).select_related("image")
    )
    by_image: dict[int, list[Face]] = {}
    for face in faces:
        by_image.setdefault(face.image_id, []).append(face)
    crops, ready = [], []
    for group in by_image.values():
        try:
            pixels = image_rgb(group[0].image)
        except (OSError, ValueError) as exc:
            skipped.extend(f"face {f.pk}: image unreadable ({exc})" for f in group)
            continue
        for face in group:
            try:
                crops.append(face_crop(models, pixels, face))
                ready.append(face)
            except (FaceError, ValueError) as exc:
                skipped.append(f"face {face.pk}: {exc}")
    embeddings = models.pipeline.embed(crops)
    for face, vector in zip(ready, embeddings, strict=True):
        face.set_embedding(vector, models.verifier.pk)
    Face.objects.bulk_update(ready, ["embedding", "embedding_version"])
    return len(ready)


def face_crop(models: FaceModels, pixels: ImageArray, face: Face) -> npt.NDArray[np.uint8]:
    """The verifier's crop of a stored face: its box, or the whole image."""
    box = face.box
    search = models.pipeline.find_faces(pixels, detect_faces=False, box=box)
    return search.faces[0].crop
