"""YoloDetector: shapes, initialisation, output contract, scores, overfitting, FLOPs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from inference.boxes import box_iou
from inference.yolo import (
    YoloConfig,
    YoloDetector,
    class_scores,
    count_flops,
    decode,
    init_weights,
)


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(1)  # the CI box is shared: keep every test on one core


def tiny(**kw: object) -> YoloDetector:
    args: dict = {"num_classes": 3, "img_size": 128, "width_mult": 0.25}
    args.update(kw)
    return YoloDetector(YoloConfig(**args))


@pytest.mark.parametrize(
    ("strides", "B", "priors"),
    [((32,), 2, False), ((32, 16), 3, True), ((32, 16, 8), 1, True), ((16,), 2, True)],
)
def test_output_shapes(strides: tuple[int, ...], B: int, priors: bool) -> None:
    model = tiny(strides=strides, boxes_per_cell=B, use_priors=priors).eval()
    outs = model.raw_outputs(torch.randn(2, 3, 128, 128))
    assert [tuple(o.shape) for o in outs] == [(2, 128 // s, 128 // s, B * 5 + 3) for s in strides]


def test_rejects_bad_images() -> None:
    model = tiny().eval()
    with pytest.raises(ValueError, match="square"):
        model.raw_outputs(torch.randn(1, 3, 128, 96))
    with pytest.raises(ValueError, match="float"):
        model.raw_outputs(torch.zeros(1, 3, 128, 128, dtype=torch.uint8))


def conv_layers(model: nn.Module) -> list[nn.Conv2d]:
    heads = {id(h) for h in getattr(model, "heads", [])}
    return [m for m in model.modules() if isinstance(m, nn.Conv2d) and id(m) not in heads]


@pytest.mark.parametrize("seed", range(3))
def test_he_initialisation_variance(seed: int) -> None:
    torch.manual_seed(seed)
    slope = 0.1
    model = YoloDetector(YoloConfig(leaky_slope=slope))
    for conv in conv_layers(model):
        fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        want = 2.0 / ((1 + slope**2) * fan_in)
        n = conv.weight.numel()
        # The sample variance of n normals has relative std sqrt(2/n): allow 5 of those.
        tol = 5 * math.sqrt(2 / n)
        assert abs(conv.weight.var().item() / want - 1) < tol, (conv, n)
        assert abs(conv.weight.mean().item()) < 5 * math.sqrt(want / n)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("nonlinearity", "gain2"), [("tanh", 1.0), ("relu", 2.0)])
def test_init_weights_tanh_is_xavier(seed: int, nonlinearity: str, gain2: float) -> None:
    torch.manual_seed(seed)
    layers = nn.Sequential(nn.Linear(400, 300), nn.Conv2d(64, 128, 3))
    init_weights(layers, nonlinearity)
    for layer, fan_in in zip(layers, (400, 64 * 9), strict=True):
        assert isinstance(layer, nn.Linear | nn.Conv2d)
        var = layer.weight.var().item()
        assert var == pytest.approx(gain2 / fan_in, rel=0.05)
        assert layer.bias is not None and torch.all(layer.bias == 0)


def test_eval_returns_detection_contract() -> None:
    torch.manual_seed(0)
    model = tiny(score_threshold=0.0, max_detections=7).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 3, 128, 128))
    assert isinstance(out, list) and len(out) == 3
    for det in out:
        assert set(det) == {"boxes", "scores", "labels"}
        d = det["boxes"].shape[0]
        assert det["boxes"].shape == (d, 4) and det["scores"].shape == (d,) and d <= 7
        assert det["labels"].dtype == torch.int64 and det["boxes"].dtype == torch.float32
        assert torch.all(det["boxes"] >= 0) and torch.all(det["boxes"] <= 128)
        assert torch.all(det["scores"][:-1] >= det["scores"][1:])


def test_training_returns_loss_dict() -> None:
    torch.manual_seed(0)
    model = tiny().train()
    targets = [
        {"boxes": torch.tensor([[10.0, 10, 50, 40]]), "labels": torch.tensor([1])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    losses = model(torch.randn(2, 3, 128, 128), targets)
    assert isinstance(losses, dict)
    assert set(losses) == {"loss", "coord", "conf_obj", "conf_noobj", "cls"}
    parts = losses["coord"] + losses["conf_obj"] + losses["conf_noobj"] + losses["cls"]
    assert_close(losses["loss"], parts)
    losses["loss"].backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_class_specific_score_by_hand() -> None:
    cfg = YoloConfig(num_classes=3, img_size=64, strides=(32,), boxes_per_cell=2)
    raw = torch.zeros(1, 2, 2, 13)
    raw[0, 1, 0, 4] = 2.0  # predictor 0 of cell (row 1, col 0): conf = sigmoid(2)
    raw[0, 1, 0, 9] = -1.0  # predictor 1: conf = sigmoid(-1)
    raw[0, 1, 0, 10:13] = torch.tensor([0.5, 1.5, -0.5])  # class logits of the cell
    got = class_scores(raw, cfg)  # (1, 2, 2, 2, 3)
    probs = [math.exp(v) for v in (0.5, 1.5, -0.5)]
    probs = [p / sum(probs) for p in probs]
    for b, logit in enumerate((2.0, -1.0)):
        conf = 1 / (1 + math.exp(-logit))
        for c in range(3):
            assert got[0, 1, 0, b, c].item() == pytest.approx(probs[c] * conf, rel=1e-6)
    # Cells without object logits: 0.5 confidence times a uniform distribution.
    assert_close(got[0, 0, 0], torch.full((2, 3), 0.5 / 3))
    # The decoded detection carries that score, the argmax class and a clipped box.
    cfg.score_threshold = 0.5
    det = decode([raw], cfg)[0]
    assert det["labels"].tolist() == [1]
    assert det["scores"].item() == pytest.approx(probs[1] / (1 + math.exp(-2.0)), rel=1e-6)
    prior_w = (cfg.priors or ())[0][0][0] * 64
    cx, cy = 0.5 * 32, 1.5 * 32  # sigmoid(0) = 0.5: centre of cell (row 1, col 0)
    want = [cx - prior_w / 2, cy - prior_w / 2, cx + prior_w / 2, cy + prior_w / 2]
    assert_close(det["boxes"][0], torch.tensor(want).clamp(0, 64))


def synthetic_batch() -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Two 128x128 images with coloured rectangles; channel = class, like a toy dataset."""
    g = torch.Generator().manual_seed(0)
    targets = [
        {
            "boxes": torch.tensor([[10.0, 10, 50, 60], [70, 20, 120, 70]]),
            "labels": torch.tensor([0, 1]),
        },
        {
            "boxes": torch.tensor([[30.0, 40, 100, 110], [5, 90, 35, 120]]),
            "labels": torch.tensor([1, 0]),
        },
    ]
    images = 0.05 * torch.randn(2, 3, 128, 128, generator=g)
    for i, tgt in enumerate(targets):
        for box, lab in zip(tgt["boxes"].int().tolist(), tgt["labels"].tolist(), strict=True):
            x1, y1, x2, y2 = box
            images[i, lab, y1:y2, x1:x2] += 1.0
            images[i, 2, y1:y2, x1:x2] += 0.5
    return images, targets


@pytest.mark.parametrize("use_priors", [True, False])
def test_tiny_model_overfits_two_images(use_priors: bool) -> None:
    torch.manual_seed(0)
    cfg = YoloConfig(
        num_classes=2,
        img_size=128,
        strides=(32, 16),
        boxes_per_cell=2,
        use_priors=use_priors,
        width_mult=0.25,
        score_threshold=0.3,
    )
    model = YoloDetector(cfg)
    images, targets = synthetic_batch()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = last = 0.0
    for step in range(150):
        losses = model(images, targets)
        assert isinstance(losses, dict)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
        first = losses["loss"].item() if step == 0 else first
        last = losses["loss"].item()
    assert last < 0.15 * first
    model.eval()
    with torch.no_grad():
        dets = model(images)
    assert isinstance(dets, list)
    for det, tgt in zip(dets, targets, strict=True):
        for box, lab in zip(tgt["boxes"], tgt["labels"], strict=True):
            same = det["labels"] == lab
            assert same.any(), "no detection of the right class"
            assert box_iou(box[None], det["boxes"][same]).max() > 0.5


def test_count_flops_positive_and_quadratic_in_size() -> None:
    model = YoloDetector(YoloConfig(num_classes=3))
    was_training = model.training
    f416 = count_flops(model, 416)
    assert f416 > 0 and model.training == was_training
    assert 0.5e9 <= f416 <= 1.5e9  # the CPU budget of the default model
    assert count_flops(model, 832) / f416 == pytest.approx(4.0, rel=0.01)


def test_count_flops_by_hand() -> None:
    # width 0.25 -> channels (8, 8, 16, 32, 64); one scale at stride 32, B=3, C=3.
    model = tiny(strides=(32,))
    layers = [  # (c_out, out side, c_in * k * k) of every conv, input 128 px
        (8, 64, 3 * 9),  # stem
        (8, 32, 8 * 9),
        (16, 16, 8 * 9),  # stage 8
        (32, 8, 16 * 9),  # stage 16
        (32, 8, 32 * 9),
        (64, 4, 32 * 9),  # stage 32
        (64, 4, 64 * 9),
        (32, 4, 64),  # neck 1x1
        (64, 4, 32 * 9),  # neck 3x3
        (18, 4, 64),  # head 1x1: B*5 + C = 18
    ]
    assert count_flops(model, 128) == sum(2 * c * side * side * k for c, side, k in layers)
