"""Detection data augmentation on numpy images, keeping boxes consistent with pixels.

Conventions (house style: one box format, converted only at the edges):

- ``image``: ``uint8`` array of shape ``(H, W, 3)``, RGB channel order.
- ``boxes``: ``float32`` array of shape ``(N, 4)``, ``xyxy`` in pixels, where ``x`` runs over
  ``[0, W]`` and ``y`` over ``[0, H]`` (pixel edges, not centres, so a box covering the whole
  image is ``(0, 0, W, H)``).
- ``labels``: ``int64`` array of shape ``(N,)``, one class index per box.

Every operation returns new arrays and never modifies its inputs. The random ones draw only
from the ``numpy.random.Generator`` they are given, so a seeded generator reproduces the same
augmentations (see :class:`DetectionAugment`).

The methods are the ones in the deep-learning notes (mirroring, random cropping, colour
shifting; rotation and shearing, which the notes call "not often used", off by default) plus
optional grayscale, which lets a detector trained on colour photos also work on grey ones,
and optional Gaussian blur (for targets shot out of focus). Rotation and shear move each box
to the axis-aligned box enclosing its four transformed corners (the only box that still
contains the whole object; it is looser than the object when the angle is not a multiple of
90 degrees). Resizing to the model's square input is not here but in
``inference.preprocess.letterbox`` (the function serving uses), applied after augmentation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

ImageArray = NDArray[np.uint8]
BoxArray = NDArray[np.float32]
LabelArray = NDArray[np.int64]
Sample = tuple[ImageArray, BoxArray, LabelArray]

# ITU-R BT.601 luma weights for RGB, the same ones PIL's "L" mode and OpenCV use.
_LUMA_RGB = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# Pixels a rotation or shear brings in from outside the image: the letterbox's mid-grey, so
# they read as "nothing" like the padding the model already sees.
FILL_VALUE = 114


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges for :class:`DetectionAugment`.

    Attributes:
        flip_p: probability of a horizontal mirror.
        crop_p: probability of a random crop.
        crop_min_scale: smallest crop side as a fraction of the image side (each side is drawn
            independently in ``[crop_min_scale, 1]``, so the aspect ratio may change a little).
        crop_min_visible: a box is dropped when the part inside the crop is under this fraction
            of its original area (0.4: a box mostly cut away is no longer a fair example).
        crop_min_size: a box is dropped when its clipped width or height is under this many
            pixels (slivers at the crop border teach the model nothing).
        crop_attempts: random windows tried before giving up and keeping the whole image, when
            every window would drop all of an image's boxes.
        color_p: probability of a colour shift.
        color_max_shift: per-channel offset drawn uniformly in ``[-max, +max]`` (grey levels).
        grayscale_p: probability of converting to grey (still 3 equal channels).
        rotate_p: probability of a rotation about the image centre (0: off, the default).
        rotate_max_deg: angle drawn uniformly in ``[-max, +max]`` degrees (counter-clockwise
            positive).
        shear_p: probability of a horizontal shear about the image centre (0: off).
        shear_max: shear factor ``s`` drawn uniformly in ``[-max, +max]``:
            ``x' = x + s * (y - H / 2)``.
        blur_p: probability of a Gaussian blur (0: off); boxes do not move.
        blur_max_sigma: blur standard deviation drawn uniformly in ``[0.1, max]`` pixels.
        zoom_p: probability of a zoom onto one object (0: off): a window around one box,
            sized so the box's longer side is ``zoom_min_fill..zoom_max_fill`` of the
            window's side, is cut out; the model input then shows that object large. For
            faces this turns a face in a crowd into a portrait-sized one.
        zoom_min_fill, zoom_max_fill: the box's share of the window side, drawn uniformly.
        zoom_min_px: only boxes whose longer side has at least this many pixels are zoomed
            onto (a 6-pixel face blown up to a portrait is only blur).
        gamma_p: probability of a gamma change ``255 * (x / 255) ** g`` (0: off), ``g``
            drawn log-uniformly in ``[1 / gamma_max, gamma_max]`` (dark and bright photos).
        gamma_max: see ``gamma_p`` (>= 1).
        contrast_p: probability of a contrast change about the image mean (0: off).
        contrast_min, contrast_max: the factor's range (1 keeps the image).
        shade_p: probability of one-sided shading (0: off): the brightness falls linearly
            from 1 on one side (left, right, top or bottom, drawn) to ``shade_min..shade_max``
            on the other, as light from one side leaves the other half of a face in shadow.
        shade_min, shade_max: the darkest side's factor range.
        occlude_p: probability of covering part of one object (0: off): a band across one
            box at least ``zoom_min_px`` long, ``occlude_min..occlude_max`` of the box's
            height (a horizontal band: sunglasses, a mask, a scarf) or width (a vertical
            band: hair over one side), filled with one grey level. The box stays whole, so
            the model learns where the whole object is when part of it is hidden (random
            erasing).
        occlude_min, occlude_max: the band's share of the box side.

    Rotated or sheared boxes are dropped by the crop's rules (``crop_min_visible`` of their
    enclosing box inside the image, ``crop_min_size`` pixels).
    """

    flip_p: float = 0.5
    crop_p: float = 0.5
    crop_min_scale: float = 0.6
    crop_min_visible: float = 0.4
    crop_min_size: float = 2.0
    crop_attempts: int = 10
    color_p: float = 0.5
    color_max_shift: int = 20
    grayscale_p: float = 0.0
    rotate_p: float = 0.0
    rotate_max_deg: float = 10.0
    shear_p: float = 0.0
    shear_max: float = 0.2
    blur_p: float = 0.0
    blur_max_sigma: float = 1.5
    zoom_p: float = 0.0
    zoom_min_fill: float = 0.3
    zoom_max_fill: float = 0.8
    zoom_min_px: float = 16.0
    gamma_p: float = 0.0
    gamma_max: float = 2.5
    contrast_p: float = 0.0
    contrast_min: float = 0.4
    contrast_max: float = 1.3
    shade_p: float = 0.0
    shade_min: float = 0.15
    shade_max: float = 0.7
    occlude_p: float = 0.0
    occlude_min: float = 0.2
    occlude_max: float = 0.5

    def __post_init__(self) -> None:
        probabilities = ("flip_p", "crop_p", "color_p", "grayscale_p", "crop_min_visible")
        photometric = ("zoom_p", "gamma_p", "contrast_p", "shade_p", "occlude_p")
        for name in (*probabilities, "rotate_p", "shear_p", "blur_p", *photometric):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if not 0.0 < self.crop_min_scale <= 1.0:
            raise ValueError(f"crop_min_scale must be in (0, 1], got {self.crop_min_scale}")
        if self.crop_min_size < 0 or self.crop_attempts < 1:
            raise ValueError("crop_min_size must be >= 0 and crop_attempts >= 1")
        if not 0 <= self.color_max_shift <= 255:
            raise ValueError(f"color_max_shift must be in [0, 255], got {self.color_max_shift}")
        if not 0.0 <= self.rotate_max_deg <= 180.0:
            raise ValueError(f"rotate_max_deg must be in [0, 180], got {self.rotate_max_deg}")
        if not 0.0 <= self.shear_max <= 1.0:
            raise ValueError(f"shear_max must be in [0, 1], got {self.shear_max}")
        if not 0.1 <= self.blur_max_sigma <= 10.0:
            raise ValueError(f"blur_max_sigma must be in [0.1, 10], got {self.blur_max_sigma}")
        if not 1.0 <= self.gamma_max <= 10.0:
            raise ValueError(f"gamma_max must be in [1, 10], got {self.gamma_max}")
        self._check_range("zoom_min_fill", "zoom_max_fill", 0.0, 1.0, open_floor=True)
        self._check_range("contrast_min", "contrast_max", 0.0, 4.0, open_floor=True)
        self._check_range("shade_min", "shade_max", 0.0, 1.0, open_floor=False)
        self._check_range("occlude_min", "occlude_max", 0.0, 1.0, open_floor=True)

    def _check_range(
        self, low: str, high: str, floor: float, ceiling: float, *, open_floor: bool
    ) -> None:
        """``floor < low <= high <= ceiling`` (``floor <= low`` when the floor is closed)."""
        a, b = getattr(self, low), getattr(self, high)
        above = a > floor if open_floor else a >= floor
        if not (above and a <= b <= ceiling):
            sign = "<" if open_floor else "<="
            raise ValueError(
                f"{low} and {high} must satisfy {floor} {sign} {low} <= {high} <= {ceiling}, "
                f"got {a}, {b}"
            )


def _check_sample(image: ImageArray, boxes: BoxArray, labels: LabelArray | None = None) -> None:
    """Fail early with a readable message instead of a broadcasting error deep inside numpy."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {boxes.shape}")
    if labels is not None and labels.shape != (boxes.shape[0],):
        raise ValueError(f"labels must have shape ({boxes.shape[0]},), got {labels.shape}")


def hflip(image: ImageArray, boxes: BoxArray) -> tuple[ImageArray, BoxArray]:
    """Mirror an image left-right and its boxes with it.

    Args:
        image: ``uint8 (H, W, 3)``.
        boxes: ``float32 (N, 4)`` xyxy pixels.

    Returns:
        The mirrored image ``(H, W, 3)`` and boxes ``(N, 4)`` where ``x1' = W - x2`` and
        ``x2' = W - x1`` (pixel-edge coordinates make this exact, and flipping twice is the
        identity).
    """
    _check_sample(image, boxes)
    width = image.shape[1]
    flipped = np.ascontiguousarray(image[:, ::-1])
    out = boxes.astype(np.float32, copy=True)
    out[:, 0] = width - boxes[:, 2]
    out[:, 2] = width - boxes[:, 0]
    return flipped, out


def crop(
    image: ImageArray,
    boxes: BoxArray,
    labels: LabelArray,
    window: tuple[int, int, int, int],
    min_visible: float = 0.4,
    min_size: float = 2.0,
) -> Sample:
    """Cut ``window`` out of the image and keep the boxes that are still fair examples.

    Args:
        image: ``uint8 (H, W, 3)``.
        boxes: ``float32 (N, 4)`` xyxy pixels.
        labels: ``int64 (N,)``.
        window: ``(x0, y0, x1, y1)`` integer pixels, ``0 <= x0 < x1 <= W``, same for y.
        min_visible: drop a box whose area inside the window is under this fraction of its
            original area.
        min_size: drop a box whose clipped width or height is under this many pixels.

    Returns:
        ``(image, boxes, labels)``: the crop ``(y1 - y0, x1 - x0, 3)``, the kept boxes
        ``(M, 4)`` shifted into crop coordinates and clipped to it, and their labels ``(M,)``.
    """
    _check_sample(image, boxes, labels)
    x0, y0, x1, y1 = window
    height, width = image.shape[:2]
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ValueError(f"crop window {window} is not inside a {width}x{height} image")
    cropped = np.ascontiguousarray(image[y0:y1, x0:x1])
    shifted = boxes.astype(np.float32) - np.array([x0, y0, x0, y0], dtype=np.float32)
    clipped = shifted.copy()
    clipped[:, 0::2] = np.clip(shifted[:, 0::2], 0.0, float(x1 - x0))
    clipped[:, 1::2] = np.clip(shifted[:, 1::2], 0.0, float(y1 - y0))
    widths = clipped[:, 2] - clipped[:, 0]
    heights = clipped[:, 3] - clipped[:, 1]
    original_area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    # Degenerate originals (area 0) would divide by zero; they also fail the size test below.
    visible = widths * heights / np.maximum(original_area, 1e-9)
    keep = (visible >= min_visible) & (widths >= min_size) & (heights >= min_size)
    return cropped, clipped[keep], labels[keep].astype(np.int64, copy=False)


def random_crop(
    image: ImageArray,
    boxes: BoxArray,
    labels: LabelArray,
    rng: np.random.Generator,
    config: AugmentConfig,
) -> Sample:
    """Crop a random sub-window whose sides are ``crop_min_scale..1`` of the image's.

    Args:
        image, boxes, labels: a sample, shapes ``(H, W, 3)``, ``(N, 4)``, ``(N,)``.
        rng: the only source of randomness.
        config: uses ``crop_min_scale``, ``crop_min_visible``, ``crop_min_size`` and
            ``crop_attempts``.

    Returns:
        The cropped sample. If the image had boxes and every window tried dropped all of
        them, the sample is returned uncropped: silently turning a labelled image into a
        background one would teach the detector to miss objects.
    """
    height, width = image.shape[:2]
    for _ in range(config.crop_attempts):
        crop_w = max(1, round(width * rng.uniform(config.crop_min_scale, 1.0)))
        crop_h = max(1, round(height * rng.uniform(config.crop_min_scale, 1.0)))
        x0 = int(rng.integers(0, width - crop_w + 1))
        y0 = int(rng.integers(0, height - crop_h + 1))
        window = (x0, y0, x0 + crop_w, y0 + crop_h)
        out = crop(image, boxes, labels, window, config.crop_min_visible, config.crop_min_size)
        if len(out[1]) > 0 or len(boxes) == 0:
            return out
    return image.copy(), boxes.astype(np.float32, copy=True), labels.copy()


def color_shift(
    image: ImageArray, offsets: NDArray[np.integer] | tuple[int, int, int]
) -> ImageArray:
    """Add one offset per channel, clipping to ``0..255``.

    Args:
        image: ``uint8 (H, W, 3)``.
        offsets: three integers (grey levels), one per channel, e.g. ``(10, -5, 0)``.

    Returns:
        ``uint8 (H, W, 3)``. Where nothing clips, each channel mean moves by its offset exactly.
    """
    shift = np.asarray(offsets, dtype=np.int16).reshape(1, 1, 3)
    # int16 holds 255 + 255 and -255 without wrapping, unlike uint8 arithmetic.
    out: ImageArray = np.clip(image.astype(np.int16) + shift, 0, 255).astype(np.uint8)
    return out


def _clip_and_filter(
    boxes: BoxArray,
    labels: LabelArray,
    width: int,
    height: int,
    min_visible: float,
    min_size: float,
) -> tuple[BoxArray, LabelArray]:
    """Clip moved boxes to the image; drop those mostly outside it or too thin to learn from."""
    clipped = boxes.copy()
    clipped[:, 0::2] = np.clip(boxes[:, 0::2], 0.0, float(width))
    clipped[:, 1::2] = np.clip(boxes[:, 1::2], 0.0, float(height))
    widths, heights = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    visible = widths * heights / np.maximum(area, 1e-9)
    keep = (visible >= min_visible) & (widths >= min_size) & (heights >= min_size)
    return clipped[keep], labels[keep].astype(np.int64, copy=False)


def affine(
    image: ImageArray,
    boxes: BoxArray,
    labels: LabelArray,
    matrix: NDArray[np.float64],
    min_visible: float = 0.4,
    min_size: float = 2.0,
) -> Sample:
    """Warp an image by an affine map in pixel-edge coordinates and move the boxes with it.

    Args:
        image: ``uint8 (H, W, 3)``.
        boxes: ``float32 (N, 4)`` xyxy pixels.
        labels: ``int64 (N,)``.
        matrix: ``(2, 3)``: a point ``p`` (pixel edges, as boxes) goes to ``A @ p + t``.
        min_visible, min_size: as :func:`crop`, on each box's enclosing box.

    Returns:
        ``(image, boxes, labels)``: the warped image, same size, with :data:`FILL_VALUE`
        where it came from outside; each kept box the axis-aligned box around its four
        mapped corners, clipped to the image.
    """
    _check_sample(image, boxes, labels)
    height, width = image.shape[:2]
    m = np.asarray(matrix, dtype=np.float64).reshape(2, 3)
    # OpenCV indexes pixel centres (pixel i's centre is at i, its edges at i +- 0.5): conjugate
    # by that half-pixel shift so both images and boxes move by exactly the same map.
    shift = m[:, :2] @ np.array([0.5, 0.5]) + m[:, 2] - 0.5
    pixel_map = np.concatenate([m[:, :2], shift[:, None]], axis=1)
    warped = cv2.warpAffine(
        image,
        pixel_map,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(FILL_VALUE, FILL_VALUE, FILL_VALUE),
    )
    b = boxes.astype(np.float64)
    corners = b[:, [[0, 1], [2, 1], [0, 3], [2, 3]]]  # (N, 4, 2): the four (x, y) corners
    mapped = corners @ m[:, :2].T + m[:, 2]  # (N, 4, 2)
    moved = np.concatenate([mapped.min(axis=1), mapped.max(axis=1)], axis=1).astype(np.float32)
    kept, kept_labels = _clip_and_filter(moved, labels, width, height, min_visible, min_size)
    return np.ascontiguousarray(warped), kept, kept_labels


def rotation_matrix(width: int, height: int, degrees: float) -> NDArray[np.float64]:
    """``(2, 3)`` map rotating by ``degrees`` counter-clockwise (as seen) about the centre.

    With y pointing down: ``x' = cx + c (x - cx) + s (y - cy)``,
    ``y' = cy - s (x - cx) + c (y - cy)``, ``c = cos``, ``s = sin``; 90 degrees on a square
    image is ``np.rot90``.
    """
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    cx, cy = width / 2.0, height / 2.0
    return np.array([[c, s, cx - c * cx - s * cy], [-s, c, cy + s * cx - c * cy]])


def shear_matrix(height: int, factor: float) -> NDArray[np.float64]:
    """``(2, 3)`` horizontal shear about the centre row: ``x' = x + factor * (y - H / 2)``."""
    return np.array([[1.0, factor, -factor * height / 2.0], [0.0, 1.0, 0.0]])


def rotate(
    image: ImageArray,
    boxes: BoxArray,
    labels: LabelArray,
    degrees: float,
    min_visible: float = 0.4,
    min_size: float = 2.0,
) -> Sample:
    """Rotate about the image centre (counter-clockwise positive); see :func:`affine`."""
    height, width = image.shape[:2]
    m = rotation_matrix(width, height, degrees)
    return affine(image, boxes, labels, m, min_visible, min_size)


def shear(
    image: ImageArray,
    boxes: BoxArray,
    labels: LabelArray,
    factor: float,
    min_visible: float = 0.4,
    min_size: float = 2.0,
) -> Sample:
    """Shear horizontally about the centre row; see :func:`affine` and :func:`shear_matrix`."""
    m = shear_matrix(image.shape[0], factor)
    return affine(image, boxes, labels, m, min_visible, min_size)


def blur(image: ImageArray, sigma: float) -> ImageArray:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel about 6 sigma wide).

    Args:
        image: ``uint8 (H, W, 3)``.

    Returns:
        ``uint8 (H, W, 3)``; a constant image stays the same (edges are reflected).
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    out = cv2.GaussianBlur(
        image, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101
    )
    return np.asarray(out, dtype=np.uint8)


def zoom_window(
    image_size: tuple[int, int],
    box: NDArray[np.float32],
    fill: float,
    offset: tuple[float, float],
) -> tuple[int, int, int, int]:
    """The square window (clipped to the image) in which ``box`` fills ``fill`` of the side.

    Args:
        image_size: ``(width, height)``.
        box: ``(4,)`` xyxy pixels.
        fill: the box's longer side divided by the window's side, in ``(0, 1]``.
        offset: ``(u, v)`` in ``[0, 1]``: where the box sits in the window, 0 at the left or
            top edge, 1 at the right or bottom (0.5, 0.5 centres it).

    Returns:
        ``(x0, y0, x1, y1)`` integer pixels, the box inside it whenever the image allows.
    """
    width, height = image_size
    bw, bh = float(box[2] - box[0]), float(box[3] - box[1])
    side = max(bw, bh) / fill
    x0 = box[0] - offset[0] * (side - bw)
    y0 = box[1] - offset[1] * (side - bh)
    left, top = int(np.clip(np.floor(x0), 0, width - 1)), int(np.clip(np.floor(y0), 0, height - 1))
    right = int(np.clip(np.ceil(x0 + side), left + 1, width))
    bottom = int(np.clip(np.ceil(y0 + side), top + 1, height))
    return left, top, right, bottom


def random_zoom(
    image: ImageArray,
    boxes: BoxArray,
    labels: LabelArray,
    rng: np.random.Generator,
    config: AugmentConfig,
) -> Sample:
    """Zoom onto one box at least ``zoom_min_px`` long (see :attr:`AugmentConfig.zoom_p`).

    The other boxes follow the crop's rules (kept when ``crop_min_visible`` of them is still
    inside). A sample without a box that large comes back unchanged.
    """
    if not len(boxes):
        return image.copy(), boxes.copy(), labels.copy()
    longer = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    candidates = np.flatnonzero(longer >= config.zoom_min_px)
    if not len(candidates):
        return image.copy(), boxes.copy(), labels.copy()
    chosen = boxes[int(candidates[int(rng.integers(0, len(candidates)))])]
    fill = float(rng.uniform(config.zoom_min_fill, config.zoom_max_fill))
    offset = (float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.2, 0.8)))
    window = zoom_window((image.shape[1], image.shape[0]), chosen, fill, offset)
    return crop(image, boxes, labels, window, config.crop_min_visible, config.crop_min_size)


def occlude(
    image: ImageArray, box: NDArray[np.float32], band: tuple[str, float, float], grey: int
) -> ImageArray:
    """Fill a band across ``box`` with grey level ``grey``.

    Args:
        image: ``uint8 (H, W, 3)``.
        box: ``(4,)`` xyxy pixels.
        band: ``(direction, start, share)``: ``"horizontal"`` covers rows ``start..start +
            share`` of the box's height (0 at its top), ``"vertical"`` the same columns of
            its width (0 at its left), both as fractions in ``[0, 1]``.
        grey: the fill, ``0..255``.
    """
    direction, start, share = band
    if direction not in ("horizontal", "vertical"):
        raise ValueError(f"direction must be horizontal or vertical, got {direction!r}")
    if not (0.0 <= start <= 1.0 and 0.0 <= share <= 1.0 and 0 <= grey <= 255):
        raise ValueError(f"start and share must be in [0, 1], grey in 0..255, got {band}, {grey}")
    height, width = image.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    if direction == "horizontal":
        y0, y1 = y0 + start * (y1 - y0), y0 + min(1.0, start + share) * (y1 - y0)
    else:
        x0, x1 = x0 + start * (x1 - x0), x0 + min(1.0, start + share) * (x1 - x0)
    left, right = int(np.clip(round(x0), 0, width)), int(np.clip(round(x1), 0, width))
    top, bottom = int(np.clip(round(y0), 0, height)), int(np.clip(round(y1), 0, height))
    out = image.copy()
    out[top:bottom, left:right] = grey
    return out


def random_occlude(
    image: ImageArray, boxes: BoxArray, rng: np.random.Generator, config: AugmentConfig
) -> ImageArray:
    """Cover a band of one box at least ``zoom_min_px`` long (see
    :attr:`AugmentConfig.occlude_p`); an image without such a box comes back as it is."""
    if not len(boxes):
        return image
    longer = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    candidates = np.flatnonzero(longer >= config.zoom_min_px)
    if not len(candidates):
        return image
    box = boxes[int(candidates[int(rng.integers(0, len(candidates)))])]
    direction = ("horizontal", "vertical")[int(rng.integers(0, 2))]
    share = float(rng.uniform(config.occlude_min, config.occlude_max))
    start = float(rng.uniform(0.0, 1.0 - share))
    return occlude(image, box, (direction, start, share), int(rng.integers(0, 256)))


def adjust_gamma(image: ImageArray, gamma: float) -> ImageArray:
    """``255 * (x / 255) ** gamma`` per pixel (``gamma < 1`` brightens, ``> 1`` darkens)."""
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    table = np.clip(np.rint(255.0 * (np.arange(256) / 255.0) ** gamma), 0, 255).astype(np.uint8)
    out: ImageArray = table[image]
    return out


def adjust_contrast(image: ImageArray, factor: float) -> ImageArray:
    """Scale every pixel's distance from the image's mean grey level by ``factor``."""
    if not factor >= 0:
        raise ValueError(f"contrast factor must be >= 0, got {factor}")
    mean = float(image.mean())
    scaled = mean + factor * (image.astype(np.float32) - mean)
    out: ImageArray = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return out


def shade(image: ImageArray, side: str, darkest: float) -> ImageArray:
    """Darken the image linearly from factor 1 at ``side``'s opposite edge to ``darkest``
    at ``side`` (``"left"``, ``"right"``, ``"top"`` or ``"bottom"``)."""
    if side not in ("left", "right", "top", "bottom"):
        raise ValueError(f"side must be left, right, top or bottom, got {side!r}")
    if not 0.0 <= darkest <= 1.0:
        raise ValueError(f"darkest must be in [0, 1], got {darkest}")
    height, width = image.shape[:2]
    n = width if side in ("left", "right") else height
    ramp = np.linspace(darkest, 1.0, n, dtype=np.float32)  # darkest at index 0
    if side in ("right", "bottom"):
        ramp = ramp[::-1]
    factor = ramp[None, :, None] if side in ("left", "right") else ramp[:, None, None]
    out: ImageArray = np.clip(np.rint(image.astype(np.float32) * factor), 0, 255).astype(np.uint8)
    return out


def to_grayscale(image: ImageArray) -> ImageArray:
    """Convert an RGB image to grey, keeping three (equal) channels so models need no change.

    Args:
        image: ``uint8 (H, W, 3)`` RGB.

    Returns:
        ``uint8 (H, W, 3)`` with ``out[..., 0] == out[..., 1] == out[..., 2]``.
    """
    luma = image.astype(np.float32) @ _LUMA_RGB  # (H, W)
    grey = np.clip(np.rint(luma), 0, 255).astype(np.uint8)
    out: ImageArray = np.repeat(grey[:, :, None], 3, axis=2)
    return out


class DetectionAugment:
    """Random crop or zoom, mirror, rotation, shear, occlusion, colour shift, gamma,
    contrast, shading, grayscale and blur, in that order.

    Cropping comes first so it works at full resolution; the colour operations come last
    because they do not move pixels. An operation whose probability is 0 draws nothing from
    the generator for the options added after the first four (rotation, shear, occlusion,
    blur, ...), so turning them off gives exactly the augmentations of a configuration
    without them. Use
    :func:`inference.preprocess.letterbox` afterwards to reach the model size.

    The generator is the only source of randomness, so ``DetectionAugment(cfg,
    np.random.default_rng(0))`` yields the same sequence every run. With several DataLoader
    workers, give each worker its own generator (e.g. seeded from ``seed + worker_id``):
    copies of one generator would repeat the same augmentations in every worker.
    """

    def __init__(self, config: AugmentConfig, rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng

    def __call__(self, image: ImageArray, boxes: BoxArray, labels: LabelArray) -> Sample:
        """Augment one sample.

        Args:
            image: ``uint8 (H, W, 3)`` RGB.
            boxes: ``float32 (N, 4)`` xyxy pixels.
            labels: ``int64 (N,)``.

        Returns:
            ``(image, boxes, labels)`` with the same conventions; ``M <= N`` boxes survive.
        """
        _check_sample(image, boxes, labels)
        cfg, rng = self.config, self.rng
        original = image
        boxes = boxes.astype(np.float32, copy=False)
        labels = labels.astype(np.int64, copy=False)
        zoomed = cfg.zoom_p > 0 and rng.random() < cfg.zoom_p
        if zoomed:
            image, boxes, labels = random_zoom(image, boxes, labels, rng, cfg)
        if rng.random() < cfg.crop_p and not zoomed:
            image, boxes, labels = random_crop(image, boxes, labels, rng, cfg)
        if rng.random() < cfg.flip_p:
            image, boxes = hflip(image, boxes)
        if cfg.rotate_p > 0 and rng.random() < cfg.rotate_p:
            degrees = float(rng.uniform(-cfg.rotate_max_deg, cfg.rotate_max_deg))
            image, boxes, labels = rotate(
                image, boxes, labels, degrees, cfg.crop_min_visible, cfg.crop_min_size
            )
        if cfg.shear_p > 0 and rng.random() < cfg.shear_p:
            factor = float(rng.uniform(-cfg.shear_max, cfg.shear_max))
            image, boxes, labels = shear(
                image, boxes, labels, factor, cfg.crop_min_visible, cfg.crop_min_size
            )
        if cfg.occlude_p > 0 and rng.random() < cfg.occlude_p:
            image = random_occlude(image, boxes, rng, cfg)
        if rng.random() < cfg.color_p:
            offsets = rng.integers(-cfg.color_max_shift, cfg.color_max_shift + 1, size=3)
            image = color_shift(image, offsets)
        if cfg.gamma_p > 0 and rng.random() < cfg.gamma_p:
            log_max = math.log(cfg.gamma_max)
            image = adjust_gamma(image, math.exp(float(rng.uniform(-log_max, log_max))))
        if cfg.contrast_p > 0 and rng.random() < cfg.contrast_p:
            image = adjust_contrast(image, float(rng.uniform(cfg.contrast_min, cfg.contrast_max)))
        if cfg.shade_p > 0 and rng.random() < cfg.shade_p:
            side = ("left", "right", "top", "bottom")[int(rng.integers(0, 4))]
            image = shade(image, side, float(rng.uniform(cfg.shade_min, cfg.shade_max)))
        if rng.random() < cfg.grayscale_p:
            image = to_grayscale(image)
        if cfg.blur_p > 0 and rng.random() < cfg.blur_p:
            image = blur(image, float(rng.uniform(0.1, cfg.blur_max_sigma)))
        if image is original:  # nothing applied: still hand back arrays the caller may mutate
            image = image.copy()
        return image, boxes.copy(), labels.copy()
