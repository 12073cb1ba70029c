"""Faces: the models, reading photos, 1:1 verification and 1:K recognition.

Enrollment and the gallery's bookkeeping are in :mod:`webapp.faces.enrollment`; the
re-embedding job's work in :mod:`webapp.faces.reembed`.

Everything here takes bytes or pixel arrays and returns plain dicts, so the API views, the
job handlers and the pages share one path. Errors are :class:`FaceError` with a stable
``code``, an HTTP-like ``status`` and a message for people; callers translate them.

The models come from the active ``ModelVersion`` rows: a verifier (required) and a face
detector (optional; without one, photos must be face crops or small images). They are
loaded once per process and reloaded when either active version changes; a change of
verifier also schedules the ``reembed`` job, since stored embeddings from another model
are not comparable. Until it has run, recognition ignores faces embedded by another model
and says how many it skipped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from django.conf import settings
from django.db.models import Q, QuerySet

from inference.calibration import raw_working_threshold
from inference.face_pipeline import (
    SMALL_IMAGE_PX,
    FacePipeline,
    FaceSearch,
    FoundFace,
    NoFaceFound,
)
from inference.preprocess import ImageArray, load_rgb
from inference.recognize import Gallery
from inference.runtime import CheckpointError
from inference.verification_metrics import distance_to_similarity
from training import registry
from training.models import ModelKind, ModelVersion
from webapp.accounts.models import User
from webapp.faces.models import Face, Subject
from webapp.images import uploads
from webapp.images.models import Dataset, Task
from webapp.jobs.errors import JobError
from webapp.jobs.models import ACTIVE_STATUSES, Job, JobKind

REEMBED_JOB = JobKind.REEMBED


class FaceError(JobError):
    """A request the face services refuse: the one job-error type, with faces' defaults.

    Positional ``(code, message)`` because every refusal here names its code first.
    """

    def __init__(
        self, code: str, message: str, *, status: int = 400, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, code=code, status=status, details=details)


# ---------------------------------------------------------------------------- models


@dataclass(frozen=True)
class FaceModels:
    """The loaded pipeline and the versions it was loaded from."""

    pipeline: FacePipeline
    verifier: ModelVersion
    detector: ModelVersion | None

    @property
    def threshold_rule(self) -> str:
        return str((self.verifier.metrics or {}).get("threshold_rule", ""))

    def summary(self) -> dict[str, Any]:
        return {
            **self.verifier.summary(),
            "threshold": round(self.pipeline.threshold, 6),
            "threshold_rule": self.threshold_rule,
            "face_detector": self.detector.summary() if self.detector else None,
            "face_score_bar": round(self.pipeline.min_face_score, 6),
        }


_CacheKey = tuple[int, str, int | None, str | None]
_cache_lock = threading.Lock()
_cache: dict[str, tuple[_CacheKey, FacePipeline]] = {}


def active_verifier() -> ModelVersion:
    """The serving verifier, or FaceError ``no_verifier`` (503)."""
    version = ModelVersion.active(ModelKind.VERIFIER)
    if version is None:
        raise FaceError(
            "no_verifier",
            "No face verifier is active yet: train one or activate a verifier version.",
            status=503,
        )
    return version


def calibrated_threshold(version: ModelVersion) -> float | None:
    """``metrics["threshold"]`` when it is a positive number (else the checkpoint's own)."""
    value = (version.metrics or {}).get("threshold")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def recognition_threshold(version: ModelVersion, verify_threshold: float) -> float:
    """``metrics["recognition_threshold"]`` (the FAR = 1% point), never looser than verify's.

    1:K search gives every stranger K chances at a false match, so it needs a stricter
    distance than a 1:1 check; versions without one use the verification threshold.
    """
    value = (version.metrics or {}).get("recognition_threshold")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return min(float(value), verify_threshold)
    return verify_threshold


def serving_face_detector() -> ModelVersion | None:
    """The face detector that finds faces: the one promoted for the gallery dataset (a face
    detector trained in the training app, promoted there), else the active one."""
    gallery = Dataset.objects.filter(name=settings.FACES_GALLERY_DATASET, task=Task.FACES)
    return registry.serving(gallery.first(), ModelKind.FACE_DETECTOR)


def load_models() -> FaceModels:
    """The active verifier and the serving face detector, loaded at most once per process
    per version."""
    verifier = active_verifier()
    detector = serving_face_detector()
    key: _CacheKey = (
        verifier.pk,
        verifier.sha256,
        detector.pk if detector else None,
        detector.sha256 if detector else None,
    )
    with _cache_lock:
        cached = _cache.get("pipeline")
        if cached is not None and cached[0] == key:
            return FaceModels(cached[1], verifier, detector)
        try:
            pipeline = FacePipeline.from_checkpoints(
                verifier.path,
                threshold=calibrated_threshold(verifier),
                detector_path=detector.path if detector else None,
                verifier_sha256=verifier.sha256,
                detector_sha256=detector.sha256 if detector else None,
                # The face bar: the detector version's working threshold (max F1 on its
                # own validation split) as the raw score the face search reads.
                min_face_score=(
                    raw_working_threshold(detector.metrics, detector.config) if detector else None
                ),
            )
        except (CheckpointError, OSError) as exc:
            raise FaceError(
                "model_unreadable", f"The active face models cannot be loaded: {exc}", status=503
            ) from None
        verifier_changed = cached is not None and cached[0][:2] != key[:2]
        _cache["pipeline"] = (key, pipeline)
    if verifier_changed or cached is None:
        # A new verifier makes every stored embedding incomparable: recompute them. On a
        # process's first load too, since the switch may have happened while it was down.
        schedule_reembed()
    return FaceModels(pipeline, verifier, detector)


# ---------------------------------------------------------------------------- images


@dataclass(frozen=True)
class UploadedImage:
    """An upload that passed validation, with its pixels.

    Attributes:
        data: the bytes as uploaded (stored as-is on enrollment).
        name: the client's file name.
        pixels: ``(H, W, 3)`` uint8 RGB, EXIF orientation applied.
        sha256: of ``data``; the key for duplicate detection.
    """

    data: bytes
    name: str
    pixels: ImageArray
    sha256: str

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def read_image(data: bytes, name: str = "", field: str = "image") -> UploadedImage:
    """Validate an upload like any other (decoding its pixels) and return it.

    Raises:
        JobError: the refusal of :func:`webapp.images.uploads.refusal` (413 for size
            limits, else 400; ``details["field"]`` names the form field).
    """
    decoded = uploads.decode(data, field)
    return UploadedImage(
        data=data, name=name, pixels=load_rgb(decoded.content), sha256=decoded.sha256
    )


def needs_detector(width: int, height: int, *, detect_faces: bool, box: Any) -> bool:
    """True when this image can only be used through a face detector."""
    return detect_faces and box is None and max(width, height) > SMALL_IMAGE_PX


def check_detector_available(
    width: int, height: int, *, detect_faces: bool, box: Any, field: str = "image"
) -> None:
    """Refuse early (503) a photo that needs a face detector when none is active."""
    if not needs_detector(width, height, detect_faces=detect_faces, box=box):
        return
    if serving_face_detector() is None:
        raise FaceError(
            "no_face_detector",
            f"{field}: no face detector is active, so faces cannot be found in this "
            f"{width}x{height} photo. Send a face crop with detect_faces=false, give the "
            "face's box, or activate a face detector.",
            status=503,
            details={"field": field},
        )


def find_faces(
    models: FaceModels,
    pixels: ImageArray,
    *,
    detect_faces: bool = True,
    box: Sequence[float] | None = None,
    field: str = "image",
) -> FaceSearch:
    """Every face of one image, largest first, or FaceError ``no_face`` / ``invalid_box``."""
    height, width = int(pixels.shape[0]), int(pixels.shape[1])
    if models.detector is None:
        check_detector_available(width, height, detect_faces=detect_faces, box=box, field=field)
    try:
        search = models.pipeline.find_faces(pixels, detect_faces=detect_faces, box=box)
    except NoFaceFound as exc:
        raise FaceError(
            "no_face", f"{field}: {exc}", status=422, details={"field": field}
        ) from None
    except ValueError as exc:
        raise FaceError(
            "invalid_box", f"{field}: {exc}", status=400, details={"field": field}
        ) from None
    # Clipping to the image can flatten a detector box into a sliver; that is no face.
    faces = [f for f in search.faces if f.box[2] - f.box[0] >= 1 and f.box[3] - f.box[1] >= 1]
    if not faces:
        raise FaceError(
            "no_face", f"{field}: no usable face found.", status=422, details={"field": field}
        )
    return replace(search, faces=faces)


def box_json(face: FoundFace) -> dict[str, float]:
    x1, y1, x2, y2 = face.box
    return {"x1": round(x1, 1), "y1": round(y1, 1), "x2": round(x2, 1), "y2": round(y2, 1)}


def _face_json(face: FoundFace, found: int) -> dict[str, Any]:
    return {
        "box": box_json(face),
        "score": round(face.score, 4),
        "whole_image": face.whole_image,
        "faces_found": found,
        "warnings": list(face.warnings),
    }


def _search_notes(search: FaceSearch, field: str, what: str) -> list[str]:
    notes = [f"{field}: {search.note}"] if search.note else []
    if len(search.faces) > 1:
        notes.append(f"{field}: {len(search.faces)} faces found; {what}.")
    return notes


def _rounded(value: float) -> float:
    return round(float(value), 6)


# ---------------------------------------------------------------------------- verify


def verify_faces(
    source: ImageArray,
    target: ImageArray,
    *,
    threshold: float | None = None,
    detect_faces: bool = True,
    source_box: Sequence[float] | None = None,
    target_box: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Are the faces of two photos the same person?

    The largest face of each photo is compared unless a box is given. ``matches`` also
    compares the source face with every face found in the target (largest first), which
    is what CompreFace's verification answers.

    Args:
        source, target: ``(H, W, 3)`` uint8 RGB pixels.
        threshold: distance threshold; the verifier's calibrated one when None.
        detect_faces: False when both images are face crops.
        source_box, target_box: ``(x1, y1, x2, y2)`` pixels of the face to use.

    Returns:
        ``verified``, ``distance``, ``similarity``, ``threshold``, ``model_version``,
        ``source_face``/``target_face`` (box, score, faces_found, warnings), ``matches``,
        ``inference_ms``, ``notes``, ``warnings``.
    """
    start = time.perf_counter()
    models = load_models()
    s = find_faces(models, source, detect_faces=detect_faces, box=source_box, field="source_image")
    t = find_faces(models, target, detect_faces=detect_faces, box=target_box, field="target_image")
    embeddings = models.pipeline.embed([s.faces[0].crop] + [f.crop for f in t.faces])  # (1+T, d)
    verdicts = [models.pipeline.compare(embeddings[0], e, threshold) for e in embeddings[1:]]
    best = verdicts[0]
    notes = _search_notes(s, "source_image", "compared the largest") + _search_notes(
        t, "target_image", "compared the largest"
    )
    warnings = [f"source_image: {w}" for w in s.faces[0].warnings] + [
        f"target_image: {w}" for w in t.faces[0].warnings
    ]
    return {
        "verified": best.verified,
        "distance": _rounded(best.distance),
        "similarity": _rounded(best.similarity),
        "threshold": _rounded(best.threshold),
        "threshold_rule": models.threshold_rule if threshold is None else "given",
        "model_version": models.summary(),
        "source_face": _face_json(s.faces[0], len(s.faces)),
        "target_face": _face_json(t.faces[0], len(t.faces)),
        "matches": [
            {
                "box": box_json(face),
                "score": round(face.score, 4),
                "distance": _rounded(v.distance),
                "similarity": _rounded(v.similarity),
                "verified": v.verified,
            }
            for face, v in zip(t.faces, verdicts, strict=True)
        ],
        "inference_ms": round((time.perf_counter() - start) * 1000, 1),
        "notes": notes,
        "warnings": warnings,
    }


# ---------------------------------------------------------------------------- gallery


def gallery_dataset() -> Dataset:
    """The faces dataset whose subjects recognition searches (created on first use)."""
    dataset, _ = Dataset.objects.get_or_create(
        name=settings.FACES_GALLERY_DATASET,
        defaults={"task": Task.FACES, "description": "People enrolled for face recognition."},
    )
    if dataset.task != Task.FACES:
        raise FaceError(
            "gallery_misconfigured",
            f"Dataset “{dataset.name}” (FACES_GALLERY_DATASET) is a {dataset.task} dataset, "
            "not a faces dataset.",
            status=500,
        )
    return dataset


# ---------------------------------------------------------------------------- recognize


@dataclass(frozen=True)
class LoadedGallery:
    """The searchable faces: one row per enrolled face embedded by ``version``."""

    gallery: Gallery
    names: dict[int, str]
    face_ids: npt.NDArray[np.int64]
    stale: int  # gallery faces embedded by another model (or not yet), skipped


def load_gallery(version: ModelVersion, dataset: Dataset | None = None) -> LoadedGallery:
    """Every face of ``dataset``'s people (default: the recognition gallery's) embedded by
    ``version`` as one ``(M, d)`` matrix."""
    gallery = dataset or gallery_dataset()
    enrolled = Face.objects.filter(subject__dataset=gallery)
    rows = [
        (pk, subject_id, bytes(embedding or b""))
        for pk, subject_id, embedding in enrolled.filter(
            embedding_version=version, embedding__isnull=False
        ).values_list("pk", "subject_id", "embedding")
    ]
    stale = enrolled.filter(~Q(embedding_version=version) | Q(embedding__isnull=True)).count()
    dim = version_dim(version, rows)
    rows = [r for r in rows if len(r[2]) == 4 * dim]
    matrix = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").reshape(-1, dim)
    names = dict(Subject.objects.filter(dataset=gallery).values_list("pk", "name"))
    return LoadedGallery(
        gallery=Gallery(matrix, [r[1] for r in rows]),
        names=names,
        face_ids=np.asarray([r[0] for r in rows], dtype=np.int64),
        stale=stale,
    )


def version_dim(version: ModelVersion, rows: Sequence[tuple[Any, Any, Any]]) -> int:
    """Embedding length of ``version`` (from its config, else from the stored rows)."""
    config = version.config or {}
    dim = config.get("output_dim", config.get("embedding_dim"))
    if isinstance(dim, int) and dim > 0:
        return dim
    return len(rows[0][2]) // 4 if rows else 1


def match_embeddings(
    loaded: LoadedGallery,
    queries: npt.NDArray[np.floating],
    threshold: float,
    *,
    top_k: int = 1,
    scale: float | None = None,
) -> list[dict[str, Any]]:
    """The best subject (or ``unknown``) and ``top_k`` candidates for each ``(Q, d)`` query.

    ``threshold`` decides (distance below it is a match); ``scale`` is the verifier's
    calibrated verification threshold, which anchors every similarity so that one pair
    reports one similarity in verify, recognize and the CompreFace answers (default:
    ``threshold``). ``similarity_threshold`` is ``threshold`` on that scale.
    """
    anchor = threshold if scale is None else scale
    if len(loaded.gallery) == 0:
        return [_unknown(threshold, anchor) for _ in range(len(queries))]
    per_subject = _subject_distances(loaded, queries, top_k)
    answers = []
    for candidates in per_subject:
        best_id, best_distance = candidates[0]
        known = best_distance < threshold
        answers.append(
            {
                "match": known,
                "subject": {"id": best_id, "name": loaded.names.get(best_id, "")}
                if known
                else None,
                "label": loaded.names.get(best_id, "") if known else "unknown",
                "distance": _rounded(best_distance),
                "similarity": _rounded(distance_to_similarity(best_distance, anchor)),
                "threshold": _rounded(threshold),
                "similarity_threshold": _rounded(distance_to_similarity(threshold, anchor)),
                "candidates": [
                    {
                        "subject": {"id": sid, "name": loaded.names.get(sid, "")},
                        "distance": _rounded(d),
                        "similarity": _rounded(distance_to_similarity(d, anchor)),
                    }
                    for sid, d in candidates
                ],
            }
        )
    return answers


def _subject_distances(
    loaded: LoadedGallery, queries: npt.NDArray[np.floating], top_k: int
) -> list[list[tuple[int, float]]]:
    # Gallery.search answers None beyond the threshold; an infinite threshold makes it
    # always return the ranked candidates, and the threshold is applied by the caller.
    matches = loaded.gallery.search(queries, float("inf"), top_k=top_k)
    return [m.candidates if m is not None else [] for m in matches]


def _unknown(threshold: float, anchor: float) -> dict[str, Any]:
    return {
        "match": False,
        "subject": None,
        "label": "unknown",
        "distance": None,
        "similarity": 0.0,
        "threshold": _rounded(threshold),
        "similarity_threshold": _rounded(distance_to_similarity(threshold, anchor)),
        "candidates": [],
    }


def recognize(
    pixels: ImageArray,
    *,
    top_k: int = 1,
    threshold: float | None = None,
    detect_faces: bool = True,
    box: Sequence[float] | None = None,
    limit: int = 0,
    min_score: float = 0.0,
) -> dict[str, Any]:
    """Who is in this photo? Every face (largest first), matched against the gallery.

    Args:
        pixels: ``(H, W, 3)`` uint8 RGB.
        top_k: candidates listed per face (>= 1).
        threshold: distance threshold; when None the verifier's recognition threshold
            (:func:`recognition_threshold`).
        detect_faces: False when the image is a face crop.
        box: the one face to recognise, ``(x1, y1, x2, y2)`` pixels.
        limit: at most this many faces, largest first; 0 for all.
        min_score: drop detector boxes below this confidence.

    Returns:
        ``faces`` (box, score, match, subject or None, label, distance, similarity,
        threshold, candidates, warnings), ``model_version``, ``gallery`` (faces, subjects,
        stale_faces), ``inference_ms``, ``notes``.
    """
    start = time.perf_counter()
    models = load_models()
    if threshold is None:
        t = recognition_threshold(models.verifier, models.pipeline.threshold)
    else:
        t = float(threshold)
    search = find_faces(models, pixels, detect_faces=detect_faces, box=box, field="image")
    faces = [f for f in search.faces if f.score >= min_score]
    if not faces:
        raise FaceError("no_face", f"image: no face scored {min_score} or more.", status=422)
    faces = faces[:limit] if limit > 0 else faces
    loaded = load_gallery(models.verifier)
    answers = match_embeddings(
        loaded,
        models.pipeline.embed([f.crop for f in faces]),
        t,
        top_k=top_k,
        scale=models.pipeline.threshold,
    )
    notes = [f"image: {search.note}"] if search.note else []
    if len(loaded.gallery) == 0:
        notes.append("No one is enrolled yet, so every face is unknown.")
    if loaded.stale:
        notes.append(
            f"{loaded.stale} enrolled faces were embedded by another model and were skipped "
            "until the re-embedding job has run."
        )
        schedule_reembed()
    return {
        "faces": [
            {
                "box": box_json(f),
                "score": round(f.score, 4),
                "whole_image": f.whole_image,
                **answer,
                "warnings": list(f.warnings),
            }
            for f, answer in zip(faces, answers, strict=True)
        ],
        "model_version": models.summary(),
        "gallery": {
            "faces": len(loaded.gallery),
            "subjects": loaded.gallery.subject_count,
            "stale_faces": loaded.stale,
        },
        "inference_ms": round((time.perf_counter() - start) * 1000, 1),
        "notes": notes,
    }


# ---------------------------------------------------------------------------- re-embed


def stale_faces(version: ModelVersion) -> QuerySet[Face]:
    """Faces whose embedding must be recomputed under ``version``.

    Those embedded by another model anywhere, and gallery faces with no embedding at all.
    Faces of training sets that were never embedded stay as they are.
    """
    other = Q(embedding__isnull=False) & (
        ~Q(embedding_version=version) | Q(embedding_version__isnull=True)
    )
    missing = Q(embedding__isnull=True, subject__dataset__name=settings.FACES_GALLERY_DATASET)
    return Face.objects.filter(other | missing)


def schedule_reembed(user: User | None = None, *, force: bool = False) -> Job | None:
    """Start the ``reembed`` job if faces need it and none is queued or running.

    Call it after activating a verifier (the serving path also calls it when it notices a
    new verifier). Automatically it runs once per verifier: faces it had to skip (an
    unreadable photo) do not start it again on every request; ``force`` does.
    Returns the job started, or None.
    """
    version = ModelVersion.active(ModelKind.VERIFIER)
    if version is None or not stale_faces(version).exists():
        return None
    jobs = Job.objects.filter(kind=REEMBED_JOB)
    if jobs.filter(status__in=ACTIVE_STATUSES).exists():
        return None
    if not force and jobs.filter(params__verifier=version.pk).exists():
        return None
    from webapp.jobs.services import start_job

    return start_job(REEMBED_JOB, user=user, params={"verifier": version.pk})
