"""Face crops: the one place where a face image is cut, converted and normalised.

Training, enrollment and serving all go through :func:`crop_face` and :func:`to_tensor`, so
a model never sees pixels prepared differently from the ones it was trained on.

Input representation: **grayscale, one channel.** The verifier is trained on ORL (grey
photos) while users enroll colour photos; converting everything to grey means a grey photo
and a colour photo of the same person look alike to the network, and the network cannot
learn colour cues (skin tone under one lamp, a shirt) that would vanish on a grey camera.
Replicating grey into three channels would instead feed colour-trained weights inputs they
never saw, or grey-trained weights colour they never learned to ignore. One channel is also
three times cheaper in the first convolution.

Boxes are ``xyxy`` in pixels (the house convention), ``x2``/``y2`` exclusive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt
import torch

# ITU-R BT.601 luma weights, the same ones OpenCV and Pillow use for RGB -> L, so a photo
# converted by another tool before upload ends up with (nearly) the same grey values.
_LUMA_RGB = np.array([0.299, 0.587, 0.114], dtype=np.float32)

# Blur is measured on the face resized to this side so the threshold does not depend on the
# photo's resolution (the Laplacian's variance grows when an image is shrunk).
BLUR_MEASURE_SIZE = 64
# On ORL at 64 px the sharpest-to-blurriest sharp face scores 320..1940 and the same faces
# after a Gaussian blur of sigma 2 px score 25..102, so 150 separates them with room both ways.
DEFAULT_BLUR_THRESHOLD = 150.0
DEFAULT_MIN_FACE_PX = 40.0
# Context added around a detector box before the crop (fraction of the box per side): the
# one margin serving (inference.face_pipeline) and training (training.verification) use.
FACE_MARGIN = 0.2

UInt8Array = npt.NDArray[np.uint8]

# Saved with every verifier: a model trained on crops prepared one way must not be served
# crops prepared another. Change it whenever crop_face / to_tensor change their output.
PREPROCESSING = "grey1-perimage-standardised-v1"


def to_gray(image: np.ndarray) -> UInt8Array:
    """Convert any supported image to a 2-D uint8 grey image.

    Args:
        image: ``(H, W)`` grey, ``(H, W, 1)`` grey, ``(H, W, 2)`` grey + alpha,
            ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA, dtype uint8. Colour channels are read
            as RGB (Pillow's order); an alpha channel is dropped, not composited, because
            transparent pixels of a photo carry no face.

    Returns:
        ``(H, W)`` uint8.
    """
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        return np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected (H, W) or (H, W, 1|2|3|4), got shape {image.shape}")
    channels = image.shape[2]
    if channels <= 2:
        return np.ascontiguousarray(image[:, :, 0], dtype=np.uint8)
    grey = image[:, :, :3].astype(np.float32) @ _LUMA_RGB  # (H, W)
    return np.asarray(np.clip(np.rint(grey), 0, 255), dtype=np.uint8)


def expand_box(
    box_xyxy: Sequence[float] | None, width: int, height: int, *, margin: float = 0.2
) -> tuple[int, int, int, int]:
    """Grow a box by ``margin`` of its size on every side, then clip it to the image.

    Each side moves out by ``margin * box width`` (left, right) or ``margin * box height``
    (top, bottom), so margin 0.2 makes the box 1.4 times wider and taller: detectors box the
    face tightly and a little forehead, chin and ear context helps recognition.

    Args:
        box_xyxy: ``(x1, y1, x2, y2)`` in pixels, or None for the whole image.
        width: image width in pixels.
        height: image height in pixels.
        margin: fraction of the box size added on each side, >= 0.

    Returns:
        Integer ``(x1, y1, x2, y2)`` with ``0 <= x1 < x2 <= width`` and the same for y;
        the float box is rounded outwards so no face pixel is lost.
    """
    if box_xyxy is None:
        return 0, 0, width, height
    if len(box_xyxy) != 4:
        raise ValueError(f"box must have 4 numbers (x1, y1, x2, y2), got {len(box_xyxy)}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
        raise ValueError(f"box must be finite with x2 > x1 and y2 > y1, got {box_xyxy}")
    dx, dy = margin * (x2 - x1), margin * (y2 - y1)
    left = max(0, math.floor(x1 - dx))
    top = max(0, math.floor(y1 - dy))
    right = min(width, math.ceil(x2 + dx))
    bottom = min(height, math.ceil(y2 + dy))
    if right <= left or bottom <= top:
        raise ValueError(f"box {box_xyxy} lies outside the {width}x{height} image")
    return left, top, right, bottom


def crop_face(
    image: np.ndarray,
    box_xyxy: Sequence[float] | None,
    *,
    margin: float = 0.2,
    size: int,
) -> UInt8Array:
    """Cut one face out of an image, ready for :func:`to_tensor`.

    ``size`` has no default on purpose: it must be the model's ``EmbeddingConfig.input_size``
    and a silent default would let a caller feed the wrong size.

    The expanded, clipped box is resized to a square without keeping its aspect ratio: the
    box is clipped (not padded) at the image edge, so it cannot always be made square, and
    since every crop goes through this function the network always sees the same squeeze.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` uint8 with C in 1..4 (see :func:`to_gray`).
        box_xyxy: face box ``(x1, y1, x2, y2)`` in pixels, or None for the whole image.
        margin: fraction of the box size added on each side (see :func:`expand_box`).
        size: side of the output square in pixels.

    Returns:
        ``(size, size)`` uint8 grey crop.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    grey = to_gray(image)
    height, width = grey.shape
    x1, y1, x2, y2 = expand_box(box_xyxy, width, height, margin=margin)
    region = grey[y1:y2, x1:x2]
    # INTER_AREA averages when shrinking (no aliasing); INTER_LINEAR when enlarging, where
    # INTER_AREA would fall back to nearest-neighbour blocks.
    shrinking = region.shape[0] >= size and region.shape[1] >= size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    resized = cv2.resize(region, (size, size), interpolation=interpolation)
    return np.asarray(resized, dtype=np.uint8)


def to_tensor(crops: Sequence[np.ndarray] | np.ndarray) -> torch.Tensor:
    """Stack grey crops into the network's input, normalised per crop.

    Each crop is standardised to zero mean and unit standard deviation over its own pixels.
    Per-crop (rather than dataset-wide) normalisation removes exposure and contrast
    differences between cameras, which otherwise dominate the distance between two photos
    of one person, and needs no statistics saved next to the model.

    Args:
        crops: ``N`` crops from :func:`crop_face`, each ``(S, S)`` uint8, or an ``(N, S, S)``
            uint8 array.

    Returns:
        ``(N, 1, S, S)`` float32 tensor; ``(0, 1, 0, 0)`` for no crops.
    """
    if len(crops) == 0:
        return torch.zeros((0, 1, 0, 0), dtype=torch.float32)
    batch = np.stack([np.asarray(c) for c in crops])  # (N, S, S)
    if batch.dtype != np.uint8 or batch.ndim != 3 or batch.shape[1] != batch.shape[2]:
        raise ValueError(f"expected square uint8 crops (N, S, S), got {batch.dtype} {batch.shape}")
    x = torch.from_numpy(batch.astype(np.float32) / 255.0)  # (N, S, S)
    mean = x.mean(dim=(1, 2), keepdim=True)
    # The floor keeps a flat crop (a blank wall) at zeros instead of dividing by ~0.
    std = x.std(dim=(1, 2), keepdim=True, unbiased=False).clamp_min(1e-3)
    return ((x - mean) / std).unsqueeze(1)  # (N, 1, S, S)


def blur_score(grey: np.ndarray) -> float:
    """Variance of the Laplacian of a grey face resized to ``BLUR_MEASURE_SIZE`` pixels.

    Args:
        grey: ``(H, W)`` uint8 face region.

    Returns:
        The score (unitless); lower means blurrier.
    """
    side = BLUR_MEASURE_SIZE
    interpolation = cv2.INTER_AREA if min(grey.shape) >= side else cv2.INTER_LINEAR
    small = cv2.resize(grey, (side, side), interpolation=interpolation)
    return float(cv2.Laplacian(small, cv2.CV_64F).var())


def face_quality(
    image: np.ndarray,
    box_xyxy: Sequence[float] | None = None,
    *,
    min_face_px: float = DEFAULT_MIN_FACE_PX,
    blur_threshold: float = DEFAULT_BLUR_THRESHOLD,
) -> list[str]:
    """Warnings about a face that would make a poor enrollment photo.

    Args:
        image: the photo, ``(H, W)`` or ``(H, W, C)`` uint8; with ``box_xyxy`` None it is
            taken to be the face crop itself.
        box_xyxy: the detector's face box ``(x1, y1, x2, y2)`` in pixels, without margin.
        min_face_px: a box whose shorter side is below this many pixels is "tiny".
        blur_threshold: a face whose :func:`blur_score` is below this is "blurry".

    Returns:
        Messages, each starting with a stable code (``tiny_face:``, ``blurry:``) the UI may
        match on; empty when the face looks fine.
    """
    grey = to_gray(image)
    height, width = grey.shape
    x1, y1, x2, y2 = expand_box(box_xyxy, width, height, margin=0.0)
    warnings: list[str] = []
    if box_xyxy is not None:
        bw, bh = float(box_xyxy[2]) - float(box_xyxy[0]), float(box_xyxy[3]) - float(box_xyxy[1])
    else:
        bw, bh = float(width), float(height)
    if min(bw, bh) < min_face_px:
        warnings.append(
            f"tiny_face: the face is {bw:.0f}x{bh:.0f} px, under the {min_face_px:.0f} px "
            "minimum; use a closer or higher-resolution photo"
        )
    score = blur_score(grey[y1:y2, x1:x2])
    if score < blur_threshold:
        warnings.append(
            f"blurry: sharpness {score:.0f} is under {blur_threshold:.0f}; use a sharper photo"
        )
    return warnings
