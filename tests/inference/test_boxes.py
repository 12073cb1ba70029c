"""inference.boxes against slow, obviously-correct pure-Python references."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from inference import boxes as B

SEEDS = range(10)


def random_boxes(n: int, seed: int, size: float = 100.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * size
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * size / 2
    return torch.cat([xy, xy + wh], dim=1)


def ref_iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def ref_iou_matrix(b1: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    rows = [[ref_iou(a, b) for b in b2.tolist()] for a in b1.tolist()]
    return torch.tensor(rows, dtype=torch.float64).reshape(len(b1), len(b2))


def ref_nms(
    boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, thr: float
) -> list[int]:
    # Greedy by descending score; equal scores keep input order (stable sort).
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    kept: list[int] = []
    for i in order:
        if all(
            int(labels[k]) != int(labels[i]) or ref_iou(boxes[k].tolist(), boxes[i].tolist()) <= thr
            for k in kept
        ):
            kept.append(i)
    return kept


@pytest.mark.parametrize("seed", SEEDS)
def test_iou_matches_reference(seed: int) -> None:
    b1, b2 = random_boxes(7, seed), random_boxes(5, seed + 100)
    assert_close(B.box_iou(b1, b2), ref_iou_matrix(b1, b2))


def test_iou_empty_inputs_are_typed() -> None:
    b = random_boxes(3, 0)
    out = B.box_iou(B.empty_boxes(torch.float64), b)
    assert out.shape == (0, 3) and out.dtype == torch.float64
    assert B.box_iou(b, B.empty_boxes(torch.float64)).shape == (3, 0)
    assert B.box_iou(B.empty_boxes(), B.empty_boxes()).shape == (0, 0)


def test_iou_identical_touching_and_degenerate() -> None:
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    touching = torch.tensor([[10.0, 0.0, 20.0, 10.0], [0.0, 10.0, 10.0, 20.0]])
    assert_close(B.box_iou(a, a), torch.ones(1, 1))
    assert_close(B.box_iou(a, touching), torch.zeros(1, 2))
    point = torch.tensor([[5.0, 5.0, 5.0, 5.0]])
    assert_close(B.box_iou(point, point), torch.zeros(1, 1))  # 0, not NaN


def test_iou_rejects_bad_shape() -> None:
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        B.box_iou(torch.zeros(3), torch.zeros(2, 4))


@pytest.mark.parametrize("seed", SEEDS)
def test_conversions_match_reference(seed: int) -> None:
    b = random_boxes(6, seed)
    x1, y1, x2, y2 = b.unbind(1)
    xywh = torch.stack([x1, y1, x2 - x1, y2 - y1], 1)
    cxcywh = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], 1)
    assert_close(B.xyxy_to_xywh(b), xywh)
    assert_close(B.xywh_to_xyxy(xywh), b)
    assert_close(B.xyxy_to_cxcywh(b), cxcywh)
    assert_close(B.cxcywh_to_xyxy(cxcywh), b)
    w, h = 640.0, 480.0
    yolo = cxcywh / torch.tensor([w, h, w, h], dtype=torch.float64)
    assert_close(B.xyxy_to_yolo(b, w, h), yolo)
    assert_close(B.yolo_to_xyxy(yolo, w, h), b)


def test_conversions_on_empty_input() -> None:
    for fn in (B.xyxy_to_xywh, B.xywh_to_xyxy, B.xyxy_to_cxcywh, B.cxcywh_to_xyxy):
        out = fn(B.empty_boxes(torch.float64))
        assert out.shape == (0, 4) and out.dtype == torch.float64
    assert B.xyxy_to_yolo(B.empty_boxes(), 10, 10).shape == (0, 4)
    assert B.clip_boxes(B.empty_boxes(), 10, 10).shape == (0, 4)


@pytest.mark.parametrize("seed", SEEDS)
def test_clip_matches_reference(seed: int) -> None:
    b = random_boxes(8, seed, size=200.0) - 50.0
    h, w = 90.0, 120.0
    ref = torch.tensor(
        [
            [min(max(x1, 0), w), min(max(y1, 0), h), min(max(x2, 0), w), min(max(y2, 0), h)]
            for x1, y1, x2, y2 in b.tolist()
        ],
        dtype=torch.float64,
    )
    assert_close(B.clip_boxes(b, h, w), ref)


def test_box_area_and_small_boxes() -> None:
    b = torch.tensor([[0.0, 0.0, 2.0, 3.0], [0.0, 0.0, 0.5, 9.0], [1.0, 1.0, 1.0, 1.0]])
    assert_close(B.box_area(b), torch.tensor([6.0, 4.5, 0.0]))
    assert B.remove_small_boxes(b, 1.0).tolist() == [0]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
def test_nms_matches_reference(seed: int, thr: float) -> None:
    g = torch.Generator().manual_seed(seed)
    boxes = random_boxes(40, seed, size=60.0)
    scores = torch.rand(40, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (40,), generator=g)
    keep = B.batched_nms(boxes, scores, labels, thr)
    assert keep.dtype == torch.int64
    assert keep.tolist() == ref_nms(boxes, scores, labels, thr)


@pytest.mark.parametrize("seed", SEEDS)
def test_nms_with_tied_scores_keeps_same_set(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    boxes = random_boxes(30, seed, size=50.0)
    scores = torch.randint(0, 3, (30,), generator=g).double() / 2  # many exact ties
    labels = torch.zeros(30, dtype=torch.int64)
    keep = B.batched_nms(boxes, scores, labels, 0.5)
    # Among equal scores the order is an implementation detail; the sorted scores and
    # the non-overlap property are not.
    kept_scores = scores[keep]
    assert torch.all(kept_scores[:-1] >= kept_scores[1:])
    iou = B.box_iou(boxes[keep], boxes[keep]).fill_diagonal_(0)
    assert torch.all(iou <= 0.5)
    assert sorted(keep.tolist()) == sorted(ref_nms(boxes, scores, labels, 0.5))


def test_nms_identical_boxes_keep_highest_only() -> None:
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3)
    scores = torch.tensor([0.2, 0.9, 0.5])
    labels = torch.zeros(3, dtype=torch.int64)
    assert B.batched_nms(boxes, scores, labels, 0.5).tolist() == [1]


def test_nms_different_classes_do_not_suppress() -> None:
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3)
    scores = torch.tensor([0.2, 0.9, 0.5])
    labels = torch.tensor([0, 1, 2])
    assert B.batched_nms(boxes, scores, labels, 0.5).tolist() == [1, 2, 0]


def test_nms_touching_boxes_are_kept() -> None:
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 20.0, 10.0]])
    keep = B.batched_nms(boxes, torch.tensor([0.9, 0.8]), torch.zeros(2, dtype=torch.int64), 0.0)
    assert keep.tolist() == [0, 1]


def test_nms_empty_input_is_typed() -> None:
    keep = B.batched_nms(B.empty_boxes(), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5)
    assert keep.shape == (0,) and keep.dtype == torch.int64
