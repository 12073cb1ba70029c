"""From a photo to face embeddings and decisions: the one serving path for faces.

``FacePipeline`` ties together the face detector (a YOLO :class:`~inference.predict.Predictor`
trained on one ``face`` class), the crop rules of :mod:`inference.faces` and the Siamese
:class:`~inference.siamese.EmbeddingNet`. Verification, enrollment and recognition all go
through :meth:`FacePipeline.find_faces` and :meth:`FacePipeline.embed`, so a face enrolled
through the API and a face verified from a page are prepared identically.

Rules, in the words users read in the answers:

- ``detect_faces=False``: the caller says the image *is* a face crop; it is used whole.
- A small image (longest side <= :data:`SMALL_IMAGE_PX`) in which the detector finds no face
  is taken to be a face crop already and used whole, with a note saying so. A large photo
  with no face is an error: guessing there would enroll a wall.
- Faces are ordered largest first; verification uses the largest unless a box is given.

Distances are Euclidean between embeddings; a pair is the same person when
``distance < threshold`` (the verifier's calibrated threshold unless the caller gives one).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torchvision.ops import nms

from inference.faces import UInt8Array, face_quality
from inference.predict import Predictor
from inference.preprocess import as_rgb_uint8
from inference.runtime import CheckpointError
from inference.siamese import AnyVerifier, embed_face_crops, load_verifier, make_face_crop
from inference.verification_metrics import distance_to_similarity

# An image no larger than this (longest side, pixels) with no detected face is used whole.
SMALL_IMAGE_PX = 256

FloatArray = npt.NDArray[np.float32]
Box = tuple[float, float, float, float]


class NoFaceFound(ValueError):
    """The image holds no face the pipeline can use."""


@dataclass(frozen=True)
class FoundFace:
    """One face of one image.

    Attributes:
        box: ``(x1, y1, x2, y2)`` pixels in the original image (the detector's box, without
            the crop margin), or the whole image.
        score: detector confidence in [0, 1]; 1.0 when the image was used whole or the caller
            gave the box.
        crop: the crop the verifier embeds (grey ``(S, S)`` for our nets, a colour
            ``(S, S, 3)`` chip for a backbone verifier), ready for :meth:`FacePipeline.embed`.
        warnings: quality warnings from :func:`inference.faces.face_quality` (``tiny_face:``,
            ``blurry:``), empty when the face looks fine.
        whole_image: True when no detector box was used.
    """

    box: Box
    score: float
    crop: UInt8Array
    warnings: list[str] = field(default_factory=list)
    whole_image: bool = False

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])

    def box_dict(self) -> dict[str, float]:
        """JSON-friendly box, rounded to 0.1 px, with the score."""
        x1, y1, x2, y2 = self.box
        return {
            "x1": round(x1, 1),
            "y1": round(y1, 1),
            "x2": round(x2, 1),
            "y2": round(y2, 1),
            "score": round(self.score, 4),
        }


@dataclass(frozen=True)
class FaceSearch:
    """The faces of one image, largest first, and a note for the user when one applies."""

    faces: list[FoundFace]
    width: int
    height: int
    note: str | None = None
    inference_ms: float = 0.0


@dataclass(frozen=True)
class Comparison:
    """A 1:1 decision.

    Attributes:
        distance: Euclidean distance between the two embeddings.
        similarity: ``distance_to_similarity(distance, threshold)``: 0.85 at the threshold.
        threshold: the distance threshold used (accept ``distance < threshold``).
        verified: ``distance < threshold``.
    """

    distance: float
    similarity: float
    threshold: float
    verified: bool


class FacePipeline:
    """A face detector (optional) and a verifier, loaded once and shared by requests.

    Attributes:
        verifier: the embedding net in eval mode.
        threshold: the verifier's calibrated distance threshold (default operating point).
        detector: the face detector, or None (then every image must be a face crop).
        input_size: the verifier's crop side in pixels.
    """

    def __init__(
        self,
        verifier: AnyVerifier,
        threshold: float,
        detector: Predictor | None = None,
        *,
        min_face_score: float | None = None,
        small_image_px: int = SMALL_IMAGE_PX,
    ) -> None:
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        self.verifier = verifier.eval()
        self.threshold = float(threshold)
        self.detector = detector
        self.min_face_score = face_score_bar(detector, min_face_score)
        self.small_image_px = int(small_image_px)
        self.input_size = verifier.input_size

    @classmethod
    def from_checkpoints(
        cls,
        verifier_path: str | Path,
        threshold: float | None = None,
        detector_path: str | Path | None = None,
        *,
        verifier_sha256: str | None = None,
        detector_sha256: str | None = None,
        device: str | torch.device | None = None,
        min_face_score: float | None = None,
    ) -> FacePipeline:
        """Load both models; ``threshold`` defaults to the one saved in the verifier and
        ``min_face_score`` to the detector checkpoint's own score threshold.

        Raises:
            CheckpointError: a file is unreadable or no threshold is known.
        """
        verifier, extra = load_verifier(verifier_path, device, expected_sha256=verifier_sha256)
        if threshold is None:
            saved = extra.get("threshold")
            if not isinstance(saved, int | float) or not saved > 0:
                raise CheckpointError(f"{verifier_path} has no calibrated threshold")
            threshold = float(saved)
        detector = None
        if detector_path is not None:
            detector = Predictor.from_checkpoint(
                detector_path, device=device, expected_sha256=detector_sha256
            )
        return cls(verifier, threshold, detector, min_face_score=min_face_score)

    # ------------------------------------------------------------------ finding faces
    def find_faces(
        self,
        image: npt.NDArray[Any],
        *,
        detect_faces: bool = True,
        box: Sequence[float] | None = None,
    ) -> FaceSearch:
        """Every usable face of ``image``, largest first.

        Args:
            image: ``(H, W)`` or ``(H, W, C)`` uint8 pixels (grey, RGB, RGBA), already
                EXIF-rotated (``inference.preprocess.load_rgb`` does that).
            detect_faces: False when the image is a face crop: it is used whole.
            box: ``(x1, y1, x2, y2)`` of the face, given by the caller; skips detection.

        Returns:
            :class:`FaceSearch`.

        Raises:
            NoFaceFound: a photo larger than ``small_image_px`` with no face, or no detector
                loaded and ``detect_faces`` left True on a large image.
            ValueError: ``box`` is malformed or outside the image.
        """
        start = time.perf_counter()
        pixels = np.asarray(image)
        height, width = int(pixels.shape[0]), int(pixels.shape[1])
        small = max(width, height) <= self.small_image_px
        if box is not None:
            faces = [self._face(pixels, _clip_box(box, width, height), 1.0, whole=False)]
            return FaceSearch(faces, width, height, None, _ms(start))
        if not detect_faces:
            faces = [self._face(pixels, None, 1.0, whole=True)]
            return FaceSearch(faces, width, height, None, _ms(start))
        boxes = self.detect(pixels) if self.detector is not None else []
        if not boxes:
            if not small:
                why = "no face detector is loaded" if self.detector is None else "no face found"
                raise NoFaceFound(
                    f"{why} in this {width}x{height} image; send a photo with a visible face, "
                    "or a face crop with detect_faces=false"
                )
            note = (
                f"no face found; the {width}x{height} image is small, so it was used whole "
                "as a face crop"
            )
            faces = [self._face(pixels, None, 1.0, whole=True)]
            return FaceSearch(faces, width, height, note, _ms(start))
        faces = [self._face(pixels, b, s, whole=False) for b, s in boxes]
        faces.sort(key=lambda f: f.area, reverse=True)
        return FaceSearch(faces, width, height, None, _ms(start))

    def detect(self, image: npt.NDArray[Any]) -> list[tuple[Box, float]]:
        """Face boxes of ``image`` with scores >= ``min_face_score`` (see :func:`detect_faces`)."""
        if self.detector is None:
            return []
        return detect_faces(self.detector, image, self.min_face_score)

    def _face(
        self, pixels: npt.NDArray[Any], box: Box | None, score: float, *, whole: bool
    ) -> FoundFace:
        height, width = int(pixels.shape[0]), int(pixels.shape[1])
        crop = make_face_crop(self.verifier, pixels, box)
        warnings = face_quality(pixels, box)
        full: Box = (0.0, 0.0, float(width), float(height))
        return FoundFace(box or full, score, crop, warnings, whole)

    # ------------------------------------------------------------------ embeddings
    def embed(self, crops: Sequence[UInt8Array], batch_size: int = 64) -> FloatArray:
        """``(N, d)`` float32 embeddings of crops made by :meth:`find_faces`."""
        return embed_face_crops(self.verifier, crops, batch_size)

    def compare(
        self,
        a: npt.NDArray[np.floating],
        b: npt.NDArray[np.floating],
        threshold: float | None = None,
    ) -> Comparison:
        """Decide whether two embeddings ``(d,)`` are the same person."""
        t = self.threshold if threshold is None else float(threshold)
        if not t > 0:
            raise ValueError(f"threshold must be > 0, got {t}")
        distance = float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
        return Comparison(distance, distance_to_similarity(distance, t), t, distance < t)


def face_score_bar(detector: Predictor | None, min_score: float | None = None) -> float:
    """``min_score`` when given, else the detector checkpoint's own ``score_threshold``.

    Serving passes the detector version's working threshold (max F1 on its own validation
    split, as a raw score: ``inference.calibration.raw_working_threshold``); the checkpoint's
    value is the fallback for a bare file.
    """
    if min_score is None:
        min_score = detector.config.score_threshold if detector is not None else 0.0
    if not 0.0 <= float(min_score) <= 1.0:
        raise ValueError(f"min_face_score must be in [0, 1], got {min_score}")
    return float(min_score)


def detect_faces(
    detector: Predictor, image: npt.NDArray[Any], min_score: float | None = None
) -> list[tuple[Box, float]]:
    """Face boxes ``(x1, y1, x2, y2)`` with raw scores >= ``min_score`` (default: the
    detector's own score threshold), best first.

    The detector looks at the photo twice in one batch: as it is, and zoomed out (the photo
    in the middle of a grey canvas twice its size). Detectors trained on crowd and street
    photos see faces of a few dozen pixels; a close-up portrait's face fills the frame and
    is larger than any face they learned. Zoomed out, it is half as large. The two views'
    boxes are merged by NMS. Serving and training (``train_verifier`` finds its training
    faces the same way) both call this, so the verifier learns on the framing it serves.
    """
    rgb = as_rgb_uint8(image)
    height, width = rgb.shape[:2]
    zoomed = np.full((2 * height, 2 * width, 3), 114, dtype=np.uint8)
    top, left = height // 2, width // 2
    zoomed[top : top + height, left : left + width] = rgb
    bar = face_score_bar(detector, min_score)
    plain, wide = detector.predict([rgb, zoomed], score_threshold=bar)
    offset = np.array([left, top, left, top], dtype=np.float32)
    boxes = np.concatenate([plain.boxes, wide.boxes - offset]).reshape(-1, 4)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    scores = np.concatenate([plain.scores, wide.scores]).astype(np.float32)
    # A box clipped to a sliver (mostly outside the photo in the zoomed view) is no face.
    keep = ((boxes[:, 2] - boxes[:, 0]) >= 2) & ((boxes[:, 3] - boxes[:, 1]) >= 2)
    boxes, scores = boxes[keep], scores[keep]
    if not len(scores):
        return []
    kept = nms(torch.from_numpy(boxes), torch.from_numpy(scores), detector.config.iou_threshold)
    kept = _drop_nested(boxes, kept.tolist())
    return [
        (
            (float(boxes[i, 0]), float(boxes[i, 1]), float(boxes[i, 2]), float(boxes[i, 3])),
            float(scores[i]),
        )
        for i in kept
    ]


# A box with at least this share of its area inside a better-scoring box is part of that face.
NESTED_SHARE = 0.7


def _drop_nested(boxes: npt.NDArray[np.float32], order: list[int]) -> list[int]:
    """``order`` (best first) without boxes lying mostly inside a better one.

    NMS keeps a small box inside a large one (their IoU is small): on a portrait the
    detector can box the whole face and, with a lower score, an eye or the mouth. Faces in
    photos do not nest, so such a box is a part of the face that contains it.
    """
    kept: list[int] = []
    for i in order:
        x1, y1, x2, y2 = boxes[i]
        area = max(1e-6, float((x2 - x1) * (y2 - y1)))
        inside = False
        for j in kept:
            iw = max(0.0, float(min(x2, boxes[j, 2]) - max(x1, boxes[j, 0])))
            ih = max(0.0, float(min(y2, boxes[j, 3]) - max(y1, boxes[j, 1])))
            if iw * ih / area >= NESTED_SHARE:
                inside = True
                break
        if not inside:
            kept.append(i)
    return kept


def largest_face(
    detector: Predictor, image: npt.NDArray[Any], min_score: float | None = None
) -> Box | None:
    """The largest face box :func:`detect_faces` finds, or None."""
    boxes = detect_faces(detector, image, min_score)
    if not boxes:
        return None
    return max(boxes, key=lambda b: (b[0][2] - b[0][0]) * (b[0][3] - b[0][1]))[0]


def _clip_box(box: Sequence[float], width: int, height: int) -> Box:
    if len(box) != 4:
        raise ValueError(f"a box needs 4 numbers (x1, y1, x2, y2), got {len(box)}")
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(np.isfinite(v) for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
        raise ValueError(f"box must be finite with x2 > x1 and y2 > y1, got {list(box)}")
    cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
    cx2, cy2 = min(max(x2, 0.0), width), min(max(y2, 0.0), height)
    if cx2 - cx1 < 1 or cy2 - cy1 < 1:
        raise ValueError(f"box {list(box)} lies outside the {width}x{height} image")
    return cx1, cy1, cx2, cy2


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
