"""inference.metrics against pycocotools' COCOeval on the same random data."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from inference.metrics import evaluate_detections, iou_matrix

NUM_CLASSES = 3


def make_data(seed: int, n_images: int = 6) -> tuple[list[dict], list[dict]]:
    """Random ground truths and noisy, partly wrong predictions around them."""
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for _ in range(n_images):
        g = int(rng.integers(0, 8))
        xy = rng.uniform(0, 200, (g, 2))
        g_boxes = np.concatenate([xy, xy + rng.uniform(5, 60, (g, 2))], axis=1)
        g_labels = rng.integers(0, NUM_CLASSES, g)
        # Jittered copies of the truths (some with the wrong class) plus pure noise.
        jitter = g_boxes + rng.normal(0, 6, g_boxes.shape)
        j_labels = np.where(rng.random(g) < 0.8, g_labels, rng.integers(0, NUM_CLASSES, g))
        k = int(rng.integers(0, 6))
        xy = rng.uniform(0, 200, (k, 2))
        noise = np.concatenate([xy, xy + rng.uniform(5, 60, (k, 2))], axis=1)
        p_boxes = np.concatenate([jitter, noise])
        p_boxes[:, 2:] = np.maximum(p_boxes[:, 2:], p_boxes[:, :2] + 1)
        preds.append(
            {
                "boxes": p_boxes,
                "scores": rng.random(len(p_boxes)),
                "labels": np.concatenate([j_labels, rng.integers(0, NUM_CLASSES, k)]),
            }
        )
        gts.append({"boxes": g_boxes, "labels": g_labels})
    return preds, gts


def coco_eval(preds: list[dict], gts: list[dict], max_dets: int) -> np.ndarray:
    """COCOeval precision array [T, R, K] for area 'all' and the given maxDets."""
    images, anns, dets = [], [], []
    for i, (p, g) in enumerate(zip(preds, gts, strict=True)):
        images.append({"id": i + 1, "width": 300, "height": 300})
        for b, lab in zip(g["boxes"], g["labels"], strict=True):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": int(lab) + 1,
                    "bbox": [b[0], b[1], w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
        for b, s, lab in zip(p["boxes"], p["scores"], p["labels"], strict=True):
            dets.append(
                {
                    "image_id": i + 1,
                    "category_id": int(lab) + 1,
                    "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                    "score": float(s),
                }
            )
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {
            "images": images,
            "annotations": anns,
            "categories": [{"id": c + 1, "name": str(c)} for c in range(NUM_CLASSES)],
        }
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.params.maxDets = [max_dets]  # evaluate() sorts this list; keep one entry
        ev.evaluate()
        ev.accumulate()
    return ev.eval["precision"][:, :, :, 0, -1]


def mean_valid(x: np.ndarray) -> float:
    return float(np.mean(x[x > -1])) if np.any(x > -1) else 0.0


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("max_dets", [100, 3])
def test_matches_pycocotools(seed: int, max_dets: int) -> None:
    preds, gts = make_data(seed)
    ours = evaluate_detections(preds, gts, max_dets=max_dets)
    prec = coco_eval(preds, gts, max_dets)  # [T, R, K]
    assert ours.map50 == pytest.approx(mean_valid(prec[0]), abs=1e-3)
    assert ours.map50_95 == pytest.approx(mean_valid(prec), abs=1e-3)
    for k in range(NUM_CLASSES):
        if np.all(prec[0, :, k] == -1):
            assert k not in ours.per_class_ap50
        else:
            assert ours.per_class_ap50[k] == pytest.approx(float(prec[0, :, k].mean()), abs=1e-3)
            assert ours.per_class_ap50_95[k] == pytest.approx(mean_valid(prec[:, :, k]), abs=1e-3)


def test_torch_inputs_give_same_result() -> None:
    preds, gts = make_data(3)
    as_torch = [{k: torch.as_tensor(v) for k, v in p.items()} for p in preds]
    gts_torch = [{k: torch.as_tensor(v) for k, v in g.items()} for g in gts]
    a = evaluate_detections(preds, gts)
    b = evaluate_detections(as_torch, gts_torch)
    assert a.map50 == b.map50 and a.map50_95 == b.map50_95


def test_perfect_predictions_score_one() -> None:
    _, gts = make_data(1)
    preds = [
        {"boxes": g["boxes"], "scores": np.ones(len(g["labels"])), "labels": g["labels"]}
        for g in gts
    ]
    m = evaluate_detections(preds, gts, score_threshold=0.5)
    assert m.map50 == pytest.approx(1.0) and m.map50_95 == pytest.approx(1.0)
    assert m.precision == 1.0 and m.recall == 1.0 and m.f1 == 1.0
    assert all(v == pytest.approx(1.0) for v in m.per_class_ap50.values())


def test_no_predictions_score_zero() -> None:
    _, gts = make_data(2)
    empty = {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0, int)}
    m = evaluate_detections([empty] * len(gts), gts)
    assert m.map50 == 0.0 and m.map50_95 == 0.0
    assert m.precision == 0.0 and m.recall == 0.0 and m.f1 == 0.0


def test_precision_recall_f1_by_hand() -> None:
    gts = [{"boxes": np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), "labels": np.array([0, 0])}]
    preds = [
        {
            "boxes": np.array([[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]]),
            "scores": np.array([0.9, 0.8, 0.1]),
            "labels": np.array([0, 0, 0]),
        }
    ]
    m = evaluate_detections(preds, gts, score_threshold=0.5)
    assert (m.precision, m.recall) == (0.5, 0.5)
    assert m.f1 == pytest.approx(0.5)
    curve = m.pr_curves[0]
    np.testing.assert_allclose(curve.recall, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(curve.precision, [1.0, 0.5, 2 / 3], atol=1e-12)


def test_max_dets_300_for_crowded_images() -> None:
    n = 250
    xy = np.stack([np.arange(n) * 20.0 % 1000, np.arange(n) // 50 * 20.0], axis=1)
    boxes = np.concatenate([xy, xy + 10], axis=1)
    gts = [{"boxes": boxes, "labels": np.zeros(n, int)}]
    preds = [{"boxes": boxes, "scores": np.linspace(1, 0.5, n), "labels": np.zeros(n, int)}]
    assert evaluate_detections(preds, gts, max_dets=100).map50 < 0.5
    assert evaluate_detections(preds, gts, max_dets=300).map50 == pytest.approx(1.0)


def test_iou_matrix_touching_is_zero() -> None:
    a = np.array([[0.0, 0, 10, 10]])
    b = np.array([[10.0, 0, 20, 10], [0.0, 0, 10, 10]])
    np.testing.assert_allclose(iou_matrix(a, b), [[0.0, 1.0]])


def test_matched_detections_by_hand() -> None:
    # Class 0: a hit (0.9), a background box (0.8), a duplicate of the hit (0.7, its truth
    # is taken); class 1: one truth, no box; class 2: a box with no truth of its class.
    gts = [
        {
            "boxes": np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]),
            "labels": np.array([0, 0, 1]),
        }
    ]
    preds = [
        {
            "boxes": np.array([[0, 0, 10, 10], [60, 60, 70, 70], [0, 0, 10, 9], [40, 40, 50, 50]]),
            "scores": np.array([0.9, 0.8, 0.7, 0.6]),
            "labels": np.array([0, 0, 0, 2]),
        }
    ]
    matched = evaluate_detections(preds, gts).matched
    got = sorted(
        zip(matched.scores, matched.labels, matched.true_positive, strict=True), reverse=True
    )
    assert got == [(0.9, 0, True), (0.8, 0, False), (0.7, 0, False), (0.6, 2, False)]
    assert matched.n_gt == {0: 2, 1: 1, 2: 0} and matched.total_gt == 3
    assert len(matched.of_class(0)) == 3 and matched.of_class(0).n_gt == {0: 2}


@pytest.mark.parametrize("seed", range(4))
def test_matched_detections_agree_with_precision_and_recall(seed: int) -> None:
    preds, gts = make_data(seed, n_images=10)
    for threshold in (0.2, 0.5, 0.8):
        m = evaluate_detections(preds, gts, score_threshold=threshold)
        keep = m.matched.scores >= threshold
        tp = int(m.matched.true_positive[keep].sum())
        assert m.precision == (tp / keep.sum() if keep.any() else 0.0)
        assert m.recall == tp / m.matched.total_gt
