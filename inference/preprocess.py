"""The one place where an image becomes model input, shared by serving and training.

Conventions (house style: one box format, converted only at the edges):

- ``image``: ``uint8`` array ``(H, W, 3)``, RGB channel order.
- ``boxes``: ``float32`` array ``(N, 4)``, ``xyxy`` in pixels with pixel-edge coordinates
  (a box covering the whole image is ``(0, 0, W, H)``).

The chain is ``load_rgb`` (or :func:`as_rgb_uint8` on an array) -> :func:`letterbox` ->
:func:`to_tensor` -> model; predictions go back through :func:`unletterbox_boxes`. Training
uses the very same functions, so a model never sees a resize or padding at serving time
that differs from the one it was trained on.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "PAD_VALUE",
    "Letterboxed",
    "as_rgb_uint8",
    "letterbox",
    "load_rgb",
    "to_tensor",
    "unletterbox_boxes",
]

ImageArray = NDArray[np.uint8]
BoxArray = NDArray[np.float32]
# Mid-grey padding: after scaling to 0..1 it is ~0.45, close to the mean of natural images,
# so the padded border looks like "nothing" rather than a strong black edge.
PAD_VALUE = 114


@dataclass(frozen=True)
class Letterboxed:
    """A letterboxed image and how to undo it.

    Attributes:
        image: ``uint8 (size, size, 3)``.
        boxes: ``float32 (N, 4)`` xyxy pixels of ``image`` (``(0, 4)`` when none were given).
        scale: input pixels per original pixel (``new = old * scale + pad``).
        pad_x, pad_y: left and top padding in input pixels.
    """

    image: ImageArray
    boxes: BoxArray
    scale: float
    pad_x: int
    pad_y: int


def letterbox(image: ImageArray, size: int, boxes: BoxArray | None = None) -> Letterboxed:
    """Resize to a ``size x size`` square keeping the aspect ratio, padding the short side.

    Args:
        image: ``uint8 (H, W, 3)`` RGB.
        size: side of the square model input, pixels.
        boxes: optional ``float32 (N, 4)`` xyxy pixels of ``image``.

    Returns:
        :class:`Letterboxed`; e.g. 640x480 -> 416 gives scale 0.65, a 416x312 picture and
        ``pad_x = 0, pad_y = 52``. Boxes use the exact float scale, so
        :func:`unletterbox_boxes` inverts them exactly (the image's rounding to whole pixels
        differs from it by under half a pixel).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    height, width = image.shape[:2]
    scale = size / max(height, width)
    new_w = min(size, max(1, round(width * scale)))
    new_h = min(size, max(1, round(height * scale)))
    # INTER_AREA avoids aliasing when shrinking; INTER_LINEAR is the better choice to enlarge.
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interp)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    out = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    out[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    src = np.zeros((0, 4), np.float32) if boxes is None else np.asarray(boxes, np.float32)
    if src.ndim != 2 or src.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {src.shape}")
    offset = np.array([pad_x, pad_y, pad_x, pad_y], dtype=np.float32)
    new_boxes = (src * np.float32(scale) + offset).astype(np.float32)
    # float32 rounding can put an edge at e.g. 416.00003; keep the promise boxes are inside.
    np.clip(new_boxes, 0.0, float(size), out=new_boxes)
    return Letterboxed(out, new_boxes, scale, pad_x, pad_y)


def unletterbox_boxes(
    boxes: BoxArray, scale: float, pad_x: int, pad_y: int, orig_w: int, orig_h: int
) -> BoxArray:
    """Map boxes on a letterboxed input back to the original image's pixels.

    Args:
        boxes: ``float (N, 4)`` xyxy pixels of the letterboxed input.
        scale, pad_x, pad_y: as in :class:`Letterboxed`.
        orig_w, orig_h: the original image size in pixels.

    Returns:
        ``float32 (N, 4)`` xyxy pixels of the original image, clipped to
        ``[0, W] x [0, H]`` (a prediction reaching into the padding must not leave the image).
    """
    offset = np.array([pad_x, pad_y, pad_x, pad_y], dtype=np.float32)
    out = (np.asarray(boxes, np.float32).reshape(-1, 4) - offset) / np.float32(scale)
    out[:, 0::2] = np.clip(out[:, 0::2], 0.0, float(orig_w))
    out[:, 1::2] = np.clip(out[:, 1::2], 0.0, float(orig_h))
    return out.astype(np.float32, copy=False)


def to_tensor(images: Sequence[ImageArray]) -> torch.Tensor:
    """Stack equally sized RGB uint8 images into the model's input.

    Args:
        images: ``N`` arrays ``uint8 (S, S, 3)``.

    Returns:
        Tensor[N, 3, S, S] float32 in ``[0, 1]``, contiguous, on the CPU.
    """
    if len(images) == 0:
        raise ValueError("to_tensor needs at least one image")
    batch = torch.from_numpy(np.ascontiguousarray(np.stack(images)))  # (N, S, S, 3) uint8
    # Convert after the permute so the division runs once on the final contiguous layout.
    return batch.permute(0, 3, 1, 2).contiguous().to(torch.float32).div_(255.0)


def as_rgb_uint8(array: NDArray[np.generic]) -> ImageArray:
    """Turn a decoded image array of any common layout into ``uint8 (H, W, 3)`` RGB.

    Args:
        array: ``(H, W)`` or ``(H, W, 1)`` grey (replicated to 3 channels), ``(H, W, 3)``
            RGB, or ``(H, W, 4)`` RGBA (alpha dropped); ``uint8``, ``uint16`` (16-bit:
            divided by 257 so 65535 -> 255), or float in ``[0, 1]``.

    Returns:
        ``uint8 (H, W, 3)`` RGB, a new contiguous array.
    """
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got {a.shape}")
    a = a[:, :, :3]
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype == np.uint16 or (np.issubdtype(a.dtype, np.integer) and a.max(initial=0) > 255):
        scaled = np.clip(a.astype(np.float64) / 257.0, 0, 255)  # 16-bit range -> 8-bit
    elif np.issubdtype(a.dtype, np.floating):
        scaled = np.clip(a.astype(np.float64) * 255.0, 0, 255)
    else:
        scaled = np.clip(a, 0, 255)
    return np.ascontiguousarray(np.rint(scaled).astype(np.uint8))


def _pil_to_array(img: Image.Image) -> NDArray[np.generic]:
    """PIL image of any mode -> array ``as_rgb_uint8`` understands."""
    img = ImageOps.exif_transpose(img) or img  # phones store rotation in EXIF
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16/32-bit grey: keep the precision until as_rgb_uint8 rescales it.
        arr = np.asarray(img)
        return arr.astype(np.uint16) if img.mode.startswith("I;16") else arr
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")  # palette, CMYK, LA, RGBA (alpha dropped), YCbCr ...
    return np.asarray(img)


def load_rgb(source: str | Path | bytes) -> ImageArray:
    """Decode an image file, or an image's bytes, into ``uint8 (H, W, 3)`` RGB.

    The one image-to-array reader: stored images, uploads held in memory and training
    files all become pixels here. EXIF orientation is applied; grey is replicated to three
    channels; 16-bit images are scaled to 8 bits; alpha is dropped. PIL decodes first;
    files PIL cannot identify are tried with OpenCV (e.g. some 16-bit TIFFs).

    Raises:
        ValueError: not an image either library can decode.
    """
    opened = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with Image.open(opened) as img:
            return as_rgb_uint8(_pil_to_array(img))
    except UnidentifiedImageError:
        if isinstance(source, bytes):
            flags = cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH
            decoded = cv2.imdecode(np.frombuffer(source, np.uint8), flags)
        else:
            decoded = cv2.imread(str(source), cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
        if decoded is None:
            where = "the image data" if isinstance(source, bytes) else str(source)
            raise ValueError(f"{where}: not a readable image") from None
        if decoded.ndim == 3:  # OpenCV is BGR(A)
            code = cv2.COLOR_BGRA2RGBA if decoded.shape[2] == 4 else cv2.COLOR_BGR2RGB
            decoded = cv2.cvtColor(decoded, code)
        return as_rgb_uint8(decoded)
