"""YOLO target encoding, checked number by number, and decode(encode(boxes)) == boxes."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from inference.yolo import (
    YoloConfig,
    YoloTarget,
    assign_scales,
    decode,
    decode_boxes,
    encode_targets,
)

F64 = torch.float64


def cfg_one_scale(**kw: object) -> YoloConfig:
    args: dict = {"num_classes": 3, "img_size": 128, "strides": (32,), "boxes_per_cell": 2}
    args.update(kw)
    return YoloConfig(**args)


def t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=F64).reshape(-1, 4)


def labels(*xs: int) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.int64)


def expected_empty(S: int, B: int, C: int) -> YoloTarget:
    return YoloTarget(
        obj_mask=torch.zeros(S, S, B, dtype=torch.bool),
        box=torch.zeros(S, S, B, 4, dtype=F64),
        box_xyxy=torch.zeros(S, S, B, 4, dtype=F64),
        labels=torch.full((S, S, B), -1, dtype=torch.int64),
        cls_mask=torch.zeros(S, S, dtype=torch.bool),
        cls_target=torch.zeros(S, S, C, dtype=F64),
    )


def assert_target_equal(got: YoloTarget, want: YoloTarget) -> None:
    for name in ("obj_mask", "box", "box_xyxy", "labels", "cls_mask", "cls_target"):
        assert_close(getattr(got, name), getattr(want, name), msg=name)


def put(
    want: YoloTarget, row: int, col: int, b: int, box: list[float], xyxy: list[float], label: int
) -> None:
    want.obj_mask[row, col, b] = True
    want.box[row, col, b] = torch.tensor(box, dtype=F64)
    want.box_xyxy[row, col, b] = torch.tensor(xyxy, dtype=F64)
    want.labels[row, col, b] = label
    want.cls_mask[row, col] = True


def test_single_object_every_number() -> None:
    cfg = cfg_one_scale(use_priors=False)
    # Centre (40, 72), size 20 x 30 px; cells are 32 px: column 1, row 2.
    tgt = encode_targets(t([[30, 57, 50, 87]]), labels(2), cfg, 0)
    want = expected_empty(4, 2, 3)
    put(want, 2, 1, 0, [40 / 32 - 1, 72 / 32 - 2, 20 / 128, 30 / 128], [30, 57, 50, 87], 2)
    want.cls_target[2, 1] = torch.tensor([0, 0, 1], dtype=F64)
    assert_target_equal(tgt, want)


def test_no_objects_and_degenerate_boxes() -> None:
    cfg = cfg_one_scale(use_priors=False)
    assert_target_equal(encode_targets(t([]), labels(), cfg, 0), expected_empty(4, 2, 3))
    zero_width = t([[10, 10, 10, 40]])
    assert_target_equal(encode_targets(zero_width, labels(0), cfg, 0), expected_empty(4, 2, 3))


def test_box_outside_image_is_clipped() -> None:
    cfg = cfg_one_scale(use_priors=False)
    tgt = encode_targets(t([[-20, 100, 20, 140]]), labels(1), cfg, 0)  # clipped to 0..20, 100..128
    want = expected_empty(4, 2, 3)
    put(want, 3, 0, 0, [10 / 32, 114 / 32 - 3, 20 / 128, 28 / 128], [0, 100, 20, 128], 1)
    want.cls_target[3, 0, 1] = 1
    assert_target_equal(tgt, want)


def test_two_objects_in_one_cell_without_priors() -> None:
    cfg = cfg_one_scale(use_priors=False)
    small, big = [66, 66, 74, 74], [40, 40, 100, 90]  # centres (70, 70) and (70, 65): cell (2, 2)
    tgt = encode_targets(t([small, big]), labels(0, 1), cfg, 0)
    want = expected_empty(4, 2, 3)
    # No priors and no predictions: the larger object gets predictor 0.
    put(want, 2, 2, 0, [70 / 32 - 2, 65 / 32 - 2, 60 / 128, 50 / 128], big, 1)
    put(want, 2, 2, 1, [70 / 32 - 2, 70 / 32 - 2, 8 / 128, 8 / 128], small, 0)
    want.cls_target[2, 2] = torch.tensor([0.5, 0.5, 0], dtype=F64)  # one class set per cell
    assert_target_equal(tgt, want)


def test_predictions_decide_the_predictor_without_priors() -> None:
    cfg = cfg_one_scale(use_priors=False)
    box = [40, 40, 100, 90]
    pred = torch.zeros(4, 4, 2, 4, dtype=F64)
    pred[2, 2, 0] = t([[0, 0, 5, 5]])
    pred[2, 2, 1] = t([[42, 40, 100, 88]])  # predictor 1 already fits best (YOLOv1 rule)
    tgt = encode_targets(t([box]), labels(0), cfg, 0, pred_boxes=pred)
    assert tgt.obj_mask[2, 2].tolist() == [False, True]


def test_more_objects_than_predictors_drops_extras() -> None:
    cfg = cfg_one_scale(use_priors=False)
    boxes = t([[60, 60, 70, 70], [55, 55, 75, 75], [50, 50, 80, 80]])  # all centred at 65
    tgt = encode_targets(boxes, labels(0, 1, 2), cfg, 0)
    assert int(tgt.obj_mask.sum()) == 2
    assert tgt.labels[2, 2].tolist() == [2, 1]  # the two largest
    assert_close(tgt.cls_target[2, 2], torch.tensor([0, 0.5, 0.5], dtype=F64))


def test_priors_pick_predictor_by_shape() -> None:
    cfg = cfg_one_scale(priors=(((0.1, 0.1), (0.5, 0.5)),))
    big, small = [40, 40, 100, 104], [64, 64, 80, 76]  # 60x64 px ~ 0.47x0.5; 16x12 px
    tgt = encode_targets(t([small, big]), labels(0, 1), cfg, 0)
    want = expected_empty(4, 2, 3)
    put(want, 2, 2, 1, [70 / 32 - 2, 72 / 32 - 2, 60 / 128, 64 / 128], big, 1)
    put(want, 2, 2, 0, [72 / 32 - 2, 70 / 32 - 2, 16 / 128, 12 / 128], small, 0)
    want.cls_target[2, 2] = torch.tensor([0.5, 0.5, 0], dtype=F64)
    assert_target_equal(tgt, want)


def test_priors_conflict_best_iou_first() -> None:
    cfg = cfg_one_scale(priors=(((0.1, 0.1), (0.5, 0.5)),))
    a = [40, 40, 100, 100]  # 0.47: IoU with prior 1 is 0.88
    b = [50, 50, 90, 90]  # 0.31: also prefers prior 1 (IoU 0.39 vs 0.10) but loses it
    tgt = encode_targets(t([b, a]), labels(0, 1), cfg, 0)
    assert tgt.labels[2, 2].tolist() == [0, 1]
    assert_close(tgt.box[2, 2, 0, 2:], torch.tensor([40 / 128, 40 / 128], dtype=F64))


def two_scale_cfg(use_priors: bool) -> YoloConfig:
    priors = (((0.5, 0.5), (0.8, 0.8)), ((0.05, 0.05), (0.1, 0.1))) if use_priors else None
    return YoloConfig(
        num_classes=2,
        img_size=256,
        strides=(32, 16),
        boxes_per_cell=2,
        use_priors=use_priors,
        priors=priors,
    )


@pytest.mark.parametrize("use_priors", [True, False])
def test_two_scales_split_objects_by_size(use_priors: bool) -> None:
    cfg = two_scale_cfg(use_priors)
    small = [100, 100, 124, 120]  # 24 x 20 px, centre (112, 110)
    big = [20, 30, 220, 210]  # 200 x 180 px, centre (120, 120)
    boxes, labs = t([small, big]), labels(1, 0)
    assert assign_scales(
        torch.tensor([[24 / 256, 20 / 256], [200 / 256, 180 / 256]]), cfg, 256
    ).tolist() == [1, 0]
    coarse, fine = encode_targets(boxes, labs, cfg, 0), encode_targets(boxes, labs, cfg, 1)
    assert coarse.obj_mask.shape == (8, 8, 2) and fine.obj_mask.shape == (16, 16, 2)
    b_big = 1 if use_priors else 0  # prior 0.8 fits 0.78x0.70 best
    assert torch.nonzero(coarse.obj_mask).tolist() == [[3, 3, b_big]]
    assert_close(
        coarse.box[3, 3, b_big],
        torch.tensor([120 / 32 - 3, 120 / 32 - 3, 200 / 256, 180 / 256], dtype=F64),
    )
    assert coarse.labels[3, 3, b_big] == 0 and coarse.cls_target[3, 3].tolist() == [1, 0]
    b_small = 1 if use_priors else 0  # prior 0.1 (25.6 px) fits 24x20 best
    assert torch.nonzero(fine.obj_mask).tolist() == [[6, 7, b_small]]
    assert_close(
        fine.box[6, 7, b_small],
        torch.tensor([112 / 16 - 7, 110 / 16 - 6, 24 / 256, 20 / 256], dtype=F64),
    )
    assert fine.labels[6, 7, b_small] == 1 and fine.cls_target[6, 7].tolist() == [0, 1]


def raw_from_targets(targets: list[YoloTarget], cfg: YoloConfig) -> list[torch.Tensor]:
    """Invert the head parametrisation: the raw outputs a perfect network would give."""
    B, C = cfg.boxes_per_cell, cfg.num_classes
    outs = []
    for scale, tgt in enumerate(targets):
        S = tgt.obj_mask.shape[0]
        raw = torch.zeros(1, S, S, B * 5 + C, dtype=F64)
        box = raw[0, ..., : B * 5].view(S, S, B, 5)
        box[..., 4] = torch.where(tgt.obj_mask, 20.0, -20.0)
        box[..., 0:2] = torch.logit(tgt.box[..., 0:2])
        if cfg.priors is None:
            box[..., 2:4] = torch.logit(tgt.box[..., 2:4].sqrt())
        else:
            prior = torch.tensor(cfg.priors[scale], dtype=F64)
            box[..., 2:4] = torch.log(tgt.box[..., 2:4].clamp(min=1e-12) / prior)
        raw[0, ..., B * 5 :] = 20.0 * tgt.cls_target
        outs.append(raw)
    return outs


CONFIGS = {
    "one_scale_no_priors": cfg_one_scale(use_priors=False, img_size=416),
    "one_scale_priors": cfg_one_scale(img_size=416),
    "two_scales_priors": YoloConfig(num_classes=3, img_size=416),
    "two_scales_no_priors": YoloConfig(num_classes=3, img_size=416, use_priors=False),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("seed", range(5))
def test_decode_inverts_encode(name: str, seed: int) -> None:
    cfg = CONFIGS[name]
    cfg.iou_threshold = 1.0  # keep overlapping truths: we test geometry, not NMS
    cfg.score_threshold = 0.5
    g = torch.Generator().manual_seed(seed)
    k = 6
    xy = torch.rand(k, 2, generator=g, dtype=F64) * 300 + 5
    wh = torch.rand(k, 2, generator=g, dtype=F64) * 100 + 4
    boxes = torch.cat([xy, xy + wh], 1)
    labs = torch.randint(0, 3, (k,), generator=g)
    targets = [encode_targets(boxes, labs, cfg, s) for s in range(len(cfg.strides))]
    raws = raw_from_targets(targets, cfg)
    got_all = []
    for s, (tgt, raw) in enumerate(zip(targets, raws, strict=True)):
        dec = decode_boxes(raw, cfg, s)[0]  # (S, S, B, 4)
        assert_close(dec[tgt.obj_mask], tgt.box_xyxy[tgt.obj_mask], atol=1e-4, rtol=0)
        got_all.append(tgt.box_xyxy[tgt.obj_mask])
    assigned = torch.cat(got_all)
    # Every truth is encoded exactly once unless its cell overflowed (> B objects).
    assert len(assigned) <= k
    det = decode(raws, cfg)[0]
    assert len(det["boxes"]) == len(assigned)
    key = lambda b: sorted(b.tolist())  # noqa: E731
    assert_close(torch.tensor(key(det["boxes"])), torch.tensor(key(assigned)), atol=1e-4, rtol=0)
    assert torch.all(det["scores"] > 0.99)


def test_stack_adds_batch_dim() -> None:
    stacked = YoloTarget.stack([expected_empty(8, 2, 2)] * 3)
    assert stacked.obj_mask.shape == (3, 8, 8, 2) and stacked.cls_target.shape == (3, 8, 8, 2)


def test_every_random_box_is_encoded_when_cells_do_not_overflow() -> None:
    cfg = CONFIGS["two_scales_priors"]
    boxes = t([[10, 10, 30, 30], [200, 200, 390, 400], [100, 300, 140, 310]])
    targets = [encode_targets(boxes, labels(0, 1, 2), cfg, s) for s in range(2)]
    assert sum(int(x.obj_mask.sum()) for x in targets) == 3
    found = torch.cat([x.box_xyxy[x.obj_mask] for x in targets])
    assert sorted(found.tolist()) == sorted(boxes.tolist())


def test_labels_out_of_range_rejected() -> None:
    with pytest.raises(ValueError, match="labels"):
        encode_targets(t([[0, 0, 10, 10]]), labels(3), cfg_one_scale(), 0)


def test_config_round_trip_and_validation() -> None:
    cfg = YoloConfig(num_classes=2, class_names=["cell", "platelet"], strides=(32, 16))
    again = YoloConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.grids == (13, 26) and again.channels_per_cell == 17
    assert len(cfg.priors or ()) == 2 and all(len(p) == 3 for p in cfg.priors or ())
    assert math.isclose(YoloConfig().lambda_coord, 5.0) and YoloConfig().lambda_noobj == 0.5
    with pytest.raises(ValueError):
        YoloConfig(img_size=400)
    with pytest.raises(ValueError):
        YoloConfig(strides=(64,))
    with pytest.raises(ValueError):
        YoloConfig.from_dict({"num_classes": 1, "surprise": True})
    with pytest.raises(ValueError):
        YoloConfig(priors=(((0.1, 0.1),),))  # wrong shape for 2 scales x 3
    with pytest.raises(ValueError, match="use_priors"):
        YoloConfig(use_priors=False, priors=(((0.1, 0.1),) * 3,) * 2)
