"""Bounding-box utilities: IoU, format conversions, clipping and class-aware NMS.

One convention everywhere inside the project: ``xyxy`` in pixels, i.e. ``(x1, y1, x2, y2)``
with ``x1 <= x2`` and ``y1 <= y2``. Other formats only appear at the edges (dataset import,
export, the YOLO head's parametrisation) and go through the converters below.

Formats:

* ``xyxy``: top-left and bottom-right corners, pixels.
* ``xywh``: top-left corner plus width and height, pixels (COCO's ``bbox``).
* ``cxcywh``: centre plus width and height, pixels.
* ``yolo``: centre plus width and height, all divided by the image width/height, so every
  value is in ``[0, 1]`` for a box inside the image (the YOLO / Darknet label format).

The heavy lifting is done by :mod:`torchvision.ops`, which has fast, tested kernels; this
module adds the project's conventions (typed empty results, one import point).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision import ops

__all__ = [
    "batched_nms",
    "box_area",
    "box_iou",
    "clip_boxes",
    "cxcywh_to_xyxy",
    "empty_boxes",
    "remove_small_boxes",
    "xywh_to_xyxy",
    "xyxy_to_cxcywh",
    "xyxy_to_xywh",
    "xyxy_to_yolo",
    "yolo_to_xyxy",
]


def empty_boxes(dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> Tensor:
    """Return a typed empty box tensor.

    Returns:
        Tensor[0, 4] of ``dtype`` on ``device``.
    """
    return torch.zeros((0, 4), dtype=dtype, device=device)


def _check_boxes(boxes: Tensor, name: str = "boxes") -> None:
    # A clear message beats an obscure indexing error deep inside torchvision.
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have shape [N, 4], got {tuple(boxes.shape)}")


def _convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    # torchvision ships no type information; pin the return type in one place.
    out: Tensor = ops.box_convert(boxes, in_fmt, out_fmt)
    return out


def box_area(boxes: Tensor) -> Tensor:
    """Area of each box.

    Args:
        boxes (Tensor[N, 4]): ``xyxy`` boxes in pixels.

    Returns:
        Tensor[N]: area in square pixels (0 for degenerate boxes, never negative).
    """
    _check_boxes(boxes)
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0)
    return wh[:, 0] * wh[:, 1]


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise intersection-over-union of two box sets.

    Args:
        boxes1 (Tensor[N, 4]): ``xyxy`` boxes in pixels.
        boxes2 (Tensor[M, 4]): ``xyxy`` boxes in pixels.

    Returns:
        Tensor[N, M]: IoU in ``[0, 1]``; 0 where the union is empty (two degenerate boxes),
        so the result never contains NaN.
    """
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    dtype = torch.promote_types(boxes1.dtype, boxes2.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float32
    if boxes1.shape[0] == 0 or boxes2.shape[0] == 0:
        return torch.zeros((boxes1.shape[0], boxes2.shape[0]), dtype=dtype, device=boxes1.device)
    iou: Tensor = ops.box_iou(boxes1.to(dtype), boxes2.to(dtype))
    # torchvision divides by the union without a guard: 0/0 for two empty boxes.
    return torch.nan_to_num(iou, nan=0.0)


def xyxy_to_xywh(boxes: Tensor) -> Tensor:
    """Convert ``(x1, y1, x2, y2)`` to ``(x, y, w, h)`` (top-left corner + size).

    Args:
        boxes (Tensor[N, 4]): pixels.

    Returns:
        Tensor[N, 4]: pixels, same dtype.
    """
    _check_boxes(boxes)
    return _convert(boxes, "xyxy", "xywh")


def xywh_to_xyxy(boxes: Tensor) -> Tensor:
    """Convert ``(x, y, w, h)`` (top-left corner + size) to ``(x1, y1, x2, y2)``.

    Args:
        boxes (Tensor[N, 4]): pixels.

    Returns:
        Tensor[N, 4]: pixels, same dtype.
    """
    _check_boxes(boxes)
    return _convert(boxes, "xywh", "xyxy")


def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """Convert ``(x1, y1, x2, y2)`` to ``(cx, cy, w, h)`` (centre + size).

    Args:
        boxes (Tensor[N, 4]): pixels.

    Returns:
        Tensor[N, 4]: pixels, same dtype.
    """
    _check_boxes(boxes)
    return _convert(boxes, "xyxy", "cxcywh")


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """Convert ``(cx, cy, w, h)`` (centre + size) to ``(x1, y1, x2, y2)``.

    Args:
        boxes (Tensor[N, 4]): pixels.

    Returns:
        Tensor[N, 4]: pixels, same dtype.
    """
    _check_boxes(boxes)
    return _convert(boxes, "cxcywh", "xyxy")


def xyxy_to_yolo(boxes: Tensor, width: float, height: float) -> Tensor:
    """Convert pixel ``xyxy`` boxes to normalised YOLO ``(cx, cy, w, h)``.

    Args:
        boxes (Tensor[N, 4]): ``xyxy`` in pixels.
        width: image width in pixels (> 0).
        height: image height in pixels (> 0).

    Returns:
        Tensor[N, 4]: centre and size divided by the image size (unitless, ``[0, 1]`` for
        boxes inside the image).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    scale = boxes.new_tensor([width, height, width, height])
    return xyxy_to_cxcywh(boxes) / scale


def yolo_to_xyxy(boxes: Tensor, width: float, height: float) -> Tensor:
    """Convert normalised YOLO ``(cx, cy, w, h)`` boxes to pixel ``xyxy``.

    Args:
        boxes (Tensor[N, 4]): centre and size relative to the image (unitless).
        width: image width in pixels (> 0).
        height: image height in pixels (> 0).

    Returns:
        Tensor[N, 4]: ``xyxy`` in pixels.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    _check_boxes(boxes)
    scale = boxes.new_tensor([width, height, width, height])
    return cxcywh_to_xyxy(boxes * scale)


def clip_boxes(boxes: Tensor, height: float, width: float) -> Tensor:
    """Clip boxes so they lie inside an image of ``height x width`` pixels.

    Args:
        boxes (Tensor[N, 4]): ``xyxy`` in pixels.
        height: image height in pixels.
        width: image width in pixels.

    Returns:
        Tensor[N, 4]: clipped copy; x in ``[0, width]``, y in ``[0, height]``.
    """
    _check_boxes(boxes)
    x = boxes[:, 0::2].clamp(min=0, max=width)
    y = boxes[:, 1::2].clamp(min=0, max=height)
    return torch.stack((x[:, 0], y[:, 0], x[:, 1], y[:, 1]), dim=1)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices of boxes whose width and height are both at least ``min_size`` pixels.

    Args:
        boxes (Tensor[N, 4]): ``xyxy`` in pixels.
        min_size: minimum side in pixels.

    Returns:
        Tensor[K]: int64 indices of the boxes to keep, in input order.
    """
    _check_boxes(boxes)
    wh = boxes[:, 2:] - boxes[:, :2]
    keep = (wh[:, 0] >= min_size) & (wh[:, 1] >= min_size)
    return torch.nonzero(keep).flatten()


def batched_nms(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """Class-aware non-maximum suppression.

    A box is suppressed when a higher-scoring box *of the same label* overlaps it with
    IoU strictly greater than ``iou_threshold``; boxes of different labels never suppress
    each other.

    Args:
        boxes (Tensor[N, 4]): ``xyxy`` in pixels.
        scores (Tensor[N]): detection scores.
        labels (Tensor[N]): integer class index of each box.
        iou_threshold: IoU above which the lower-scoring box is discarded.

    Returns:
        Tensor[K]: int64 indices of kept boxes, sorted by decreasing score.
    """
    _check_boxes(boxes)
    if scores.shape != (boxes.shape[0],) or labels.shape != (boxes.shape[0],):
        raise ValueError("scores and labels must have shape [N] matching boxes")
    if boxes.shape[0] == 0:
        return torch.zeros((0,), dtype=torch.int64, device=boxes.device)
    dtype = torch.promote_types(boxes.dtype, scores.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float32
    keep: Tensor = ops.batched_nms(boxes.to(dtype), scores.to(dtype), labels, iou_threshold)
    return keep
