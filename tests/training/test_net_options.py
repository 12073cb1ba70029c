"""The detector's options the notes name, each against what the notes say it does:
He / Xavier initialisation variances, dropout only while training, batch norm's running
averages at evaluation, input normalisation (also in the exported ONNX graph), rotation,
shear and blur augmentation moving boxes with the pixels, the torchvision backbones' shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from inference.yolo import YoloConfig, YoloDetector, init_weights
from training.augment import blur, rotate, shear

# A variance estimated from n samples has relative standard error sqrt(2 / n); with the
# 300k weights below, 5 standard errors is under 1.5%.


def flat(outputs: list[torch.Tensor]) -> torch.Tensor:
    """The detector's per-stride outputs as one vector."""
    return torch.cat([o.flatten() for o in outputs])


@pytest.mark.parametrize(
    ("nonlinearity", "expected"),
    [
        ("relu", lambda fan_in: 2.0 / fan_in),  # He: Var W = 2 / n
        ("leaky_relu", lambda fan_in: 2.0 / ((1 + 0.1**2) * fan_in)),
        ("tanh", lambda fan_in: 1.0 / fan_in),  # Xavier as the notes write it: 1 / n
    ],
)
def test_initialisation_variances_follow_the_notes(nonlinearity, expected):
    torch.manual_seed(0)
    conv = nn.Conv2d(256, 256, 3)
    init_weights(nn.Sequential(conv), nonlinearity, slope=0.1)
    weights = conv.weight.detach().double()
    fan_in = 256 * 3 * 3
    n = weights.numel()
    assert weights.mean().abs() < 5 * math.sqrt(expected(fan_in) / n)
    assert weights.var().item() == pytest.approx(expected(fan_in), rel=5 * math.sqrt(2 / n))
    assert conv.bias is not None and torch.count_nonzero(conv.bias) == 0


def test_the_detector_initialises_by_its_config():
    def first_conv_var(init: str) -> float:
        torch.manual_seed(1)
        model = YoloDetector(YoloConfig(class_names=["a"], img_size=64, init=init))
        conv = next(
            m for m in model.modules() if isinstance(m, nn.Conv2d) and m.weight.numel() > 20000
        )
        return conv.weight.detach().var().item() * conv.weight[0].numel()  # Var × fan_in

    assert first_conv_var("he") == pytest.approx(2.0 / 1.01, rel=0.1)
    assert first_conv_var("xavier") == pytest.approx(1.0, rel=0.1)


def test_dropout_acts_only_while_training():
    torch.manual_seed(2)
    model = YoloDetector(YoloConfig(class_names=["a"], img_size=64, dropout=0.5))
    x = torch.rand(2, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        a, b = flat(model.raw_outputs(x)), flat(model.raw_outputs(x))
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # evaluation: deterministic
    model.train()
    with torch.no_grad():
        c, d = flat(model.raw_outputs(x)), flat(model.raw_outputs(x))
    assert not torch.equal(c, d)  # training: a different mask each pass
    plain = YoloDetector(YoloConfig(class_names=["a"], img_size=64))
    assert set(plain.state_dict()) == set(model.state_dict())  # no weights of its own


def test_batch_norm_uses_running_averages_at_evaluation():
    torch.manual_seed(3)
    model = YoloDetector(YoloConfig(class_names=["a"], img_size=64))
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    before = bn.running_mean.clone()
    model.train()
    model.raw_outputs(
        torch.rand(4, 3, 64, 64) * 0.2 + 0.7
    )  # a batch far from the running mean of 0
    after = bn.running_mean.clone()
    assert not torch.allclose(before, after)  # moved by momentum toward the batch's mean
    model.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        alone = flat(model.raw_outputs(x))
        with_others = flat(
            [o[:1] for o in model.raw_outputs(torch.cat([x, torch.rand(3, 3, 64, 64)]))]
        )
    torch.testing.assert_close(bn.running_mean, after, rtol=0, atol=0)
    # At evaluation an image's output does not depend on the rest of its batch.
    torch.testing.assert_close(alone, with_others, rtol=1e-4, atol=1e-5)


def test_input_normalisation_is_the_first_step_and_survives_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from inference.onnx_backend import _DenseOutputs, export_onnx

    mean, std = (0.6, 0.5, 0.4), (0.2, 0.25, 0.3)
    torch.manual_seed(4)
    normalised = YoloDetector(
        YoloConfig(class_names=["a"], img_size=64, input_mean=mean, input_std=std)
    ).eval()
    plain = YoloDetector(YoloConfig(class_names=["a"], img_size=64)).eval()
    plain.load_state_dict(normalised.state_dict())
    x = torch.rand(1, 3, 64, 64)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(
            flat(normalised.raw_outputs(x)),
            flat(plain.raw_outputs((x - m) / s)),
            rtol=1e-5,
            atol=1e-5,
        )
        expected = np.concatenate([o.numpy().ravel() for o in _DenseOutputs(normalised)(x)])
    path = export_onnx(normalised, tmp_path / "n.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    got = np.concatenate([np.asarray(o).ravel() for o in outputs])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)  # float32, other kernels


@pytest.mark.parametrize(("backbone", "channels"), [("resnet18", 512), ("mobilenet_v3_small", 576)])
def test_torchvision_backbones_feed_the_same_heads(backbone, channels):
    config = YoloConfig(num_classes=2, class_names=["a", "b"], img_size=128, backbone=backbone)
    model = YoloDetector(config).eval()
    assert model.backbone is not None
    with torch.no_grad():
        raw = model.backbone(torch.rand(1, 3, 128, 128))  # torchvision's own widths
        out = model.raw_outputs(torch.rand(1, 3, 128, 128))
    assert raw[32].shape == (1, channels, 4, 4)
    ours = YoloDetector(YoloConfig(num_classes=2, class_names=["a", "b"], img_size=128)).eval()
    with torch.no_grad():
        shapes = [o.shape for o in ours.raw_outputs(torch.rand(1, 3, 128, 128))]
    assert [o.shape for o in out] == shapes  # S x S x (B*5 + C) per scale


# ---------------------------------------------------------------------------- augmentation


def _square_with_box() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image = np.zeros((100, 100, 3), np.uint8)
    image[20:40, 60:90] = 255  # a white box x 60..90, y 20..40
    return image, np.array([[60, 20, 90, 40]], np.float32), np.array([0], np.int64)


def test_rotating_90_degrees_moves_the_box_with_the_pixels():
    image, boxes, labels = _square_with_box()
    out, moved, kept = rotate(image, boxes, labels, 90.0)
    np.testing.assert_array_equal(out, np.rot90(image))  # counter-clockwise, as seen
    # rot90: (x, y) -> (y, W - x): x 20..40, y 10..40.
    np.testing.assert_allclose(moved, [[20, 10, 40, 40]], atol=1e-3)
    ys, xs = np.nonzero(out[..., 0] == 255)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (20, 10, 40, 40)
    assert kept.tolist() == [0]


def test_shear_moves_the_box_to_enclose_its_sheared_corners():
    image, boxes, labels = _square_with_box()
    _, moved, _ = shear(image, boxes, labels, 0.5)
    # x' = x + 0.5 (y - 50): the top edge (y 20) shifts -15, the bottom (y 40) -5.
    np.testing.assert_allclose(moved, [[45, 20, 85, 40]], atol=1e-3)


def test_blur_keeps_the_mean_and_smooths_edges():
    image, _, _ = _square_with_box()
    out = blur(image, 2.0)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert abs(out.astype(float).mean() - image.astype(float).mean()) < 0.5
    assert 0 < out[30, 58, 0] < 255  # the edge is now a ramp
    with pytest.raises(ValueError, match="sigma"):
        blur(image, 0.0)
