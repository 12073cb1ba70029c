"""The sheet's thumbnails: a small JPEG cropped around each mistake with its boxes drawn.

Detection cases: the region around the true and the predicted box (with context around
them, so a person sees what the model saw), the true box solid and the prediction dashed,
each in its class's colour. Verification pairs: both photos side by side.

Crops are drawn once and kept under ``MEDIA_ROOT/error-crops/``, named by a digest of
everything drawn (image bytes, boxes, colours, style), so a changed colour or style never
serves an old picture and an unchanged one is never drawn twice.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image as PILImage
from PIL import ImageColor, ImageDraw

from webapp.analysis.models import ErrorCase
from webapp.images.models import LabelClass
from webapp.images.pixels import image_rgb

CROP_MAX = 160  # px, the longer side of a thumbnail
CROP_STYLE = 2  # bump to redraw every cached crop
CONTEXT = 0.5  # context around the boxes, as a share of their larger side
MIN_SIDE = 48  # px of the stored image: tiny boxes still show their surroundings
FALLBACK_COLOR = "#667085"

Box = Sequence[float]  # [x1, y1, x2, y2] pixels


def _box(raw: object) -> list[float] | None:
    if isinstance(raw, list | tuple) and len(raw) == 4:
        try:
            x1, y1, x2, y2 = (float(v) for v in raw)
        except (TypeError, ValueError):
            return None
        if x2 > x1 and y2 > y1:
            return [x1, y1, x2, y2]
    return None


def crop_region(boxes: Sequence[Box], width: int, height: int) -> tuple[int, int, int, int]:
    """The integer region (x1, y1, x2, y2) around ``boxes`` with context, inside the image.

    No boxes: the whole image.
    """
    if not boxes:
        return 0, 0, width, height
    x1, y1 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x2, y2 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    side = max(x2 - x1, y2 - y1, 1.0)
    pad = max(side * CONTEXT, (MIN_SIDE - side) / 2, 0.0)
    left, top = max(0, int(x1 - pad)), max(0, int(y1 - pad))
    right, bottom = min(width, int(np.ceil(x2 + pad))), min(height, int(np.ceil(y2 + pad)))
    if right <= left or bottom <= top:
        return 0, 0, width, height
    return left, top, right, bottom


def _dashed(draw: ImageDraw.ImageDraw, box: Box, color: str, width: int) -> None:
    x1, y1, x2, y2 = box
    dash, gap = 6.0, 4.0
    edges = [((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))]
    for (ax, ay), (bx, by) in edges:
        length = max(abs(bx - ax), abs(by - ay))
        t = 0.0
        while t < length:
            s, e = t / length, min(t + dash, length) / length
            start = (ax + (bx - ax) * s, ay + (by - ay) * s)
            end = (ax + (bx - ax) * e, ay + (by - ay) * e)
            draw.line([start, end], fill=color, width=width)
            t += dash + gap


def _draw_box(draw: ImageDraw.ImageDraw, box: Box, color: str, *, dashed: bool, width: int) -> None:
    if dashed:
        _dashed(draw, box, color, width)
    else:
        draw.rectangle(list(box), outline=color, width=width)


def _fit(image: PILImage.Image, limit: int) -> tuple[PILImage.Image, float]:
    # Small crops are enlarged too, so a 20 px box is not a 20 px thumbnail.
    scale = limit / max(image.width, image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, PILImage.Resampling.LANCZOS), scale


def render_detection(
    rgb: np.ndarray, drawn: Sequence[tuple[Box, str, bool]], limit: int = CROP_MAX
) -> PILImage.Image:
    """The crop around ``drawn`` boxes (box, "#rrggbb", dashed), fitted into ``limit`` px.

    Args:
        rgb: (H, W, 3) uint8 pixels of the stored image.
        drawn: boxes in pixels of ``rgb``, each with its colour and whether it is dashed.
    """
    height, width = rgb.shape[:2]
    left, top, right, bottom = crop_region([b for b, _, _ in drawn], width, height)
    region = PILImage.fromarray(np.ascontiguousarray(rgb[top:bottom, left:right]))
    fitted, scale = _fit(region, limit)
    draw = ImageDraw.Draw(fitted)
    moved = [
        [(b[0] - left) * scale, (b[1] - top) * scale, (b[2] - left) * scale, (b[3] - top) * scale]
        for b, _, _ in drawn
    ]
    # White halos first, then every colour: the boxes show on any background, and one
    # box's halo never covers the other's line where they nearly coincide.
    for box, (_, _, dashed) in zip(moved, drawn, strict=True):
        _draw_box(draw, box, "#ffffff", dashed=dashed, width=4)
    for box, (_, color, dashed) in zip(moved, drawn, strict=True):
        _draw_box(draw, box, color, dashed=dashed, width=2)
    return fitted


def render_pair(first: np.ndarray, second: np.ndarray, limit: int = CROP_MAX) -> PILImage.Image:
    """Two photos side by side, each fitted into half of ``limit`` wide."""
    half = limit // 2
    a, _ = _fit(PILImage.fromarray(first), half)
    b, _ = _fit(PILImage.fromarray(second), half)
    canvas = PILImage.new("RGB", (a.width + b.width + 2, max(a.height, b.height)), "#ffffff")
    canvas.paste(a, (0, 0))
    canvas.paste(b, (a.width + 2, 0))
    return canvas


def _color(colors: dict[str, str], name: str) -> str:
    try:
        ImageColor.getrgb(colors.get(name, FALLBACK_COLOR))
    except ValueError:
        return FALLBACK_COLOR
    return colors.get(name, FALLBACK_COLOR)


def _plan(case: ErrorCase) -> list[tuple[list[float], str, bool]]:
    """The boxes to draw: the true box solid, the prediction dashed."""
    names = {case.label_class, case.predicted_class} - {""}
    colors = dict(
        LabelClass.objects.filter(dataset_id=case.evaluation.dataset_id, name__in=names)
        .values_list("name", "color")
        .order_by("pk")
    )
    drawn: list[tuple[list[float], str, bool]] = []
    true_box, predicted = _box(case.true_box), _box(case.predicted_box)
    if true_box:
        drawn.append((true_box, _color(colors, case.label_class), False))
    if predicted:
        drawn.append((predicted, _color(colors, case.predicted_class or case.label_class), True))
    return drawn


def crop_name(case: ErrorCase) -> str:
    """Where the case's crop is kept: named by a digest of what it draws."""
    facts = {
        "style": CROP_STYLE,
        "size": CROP_MAX,
        "image": case.image.sha256,
        "other": case.other_image.sha256 if case.other_image else None,
        "boxes": _plan(case) if case.other_image is None else [],
    }
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
    return f"error-crops/{case.evaluation_id}/{case.pk}-{digest}.jpg"


def crop_jpeg(case: ErrorCase) -> tuple[bytes, str]:
    """The case's thumbnail as JPEG bytes, and its stored name (an ETag)."""
    name = crop_name(case)
    if default_storage.exists(name):
        with default_storage.open(name, "rb") as stored:
            return bytes(stored.read()), name
    if case.other_image is not None:
        picture = render_pair(image_rgb(case.image), image_rgb(case.other_image))
    else:
        picture = render_detection(image_rgb(case.image), _plan(case))
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=85)
    data = buffer.getvalue()
    if not default_storage.exists(name):  # another request may have drawn it meanwhile
        default_storage.save(name, ContentFile(data))
    return data, name
