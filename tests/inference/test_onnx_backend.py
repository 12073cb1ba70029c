"""The ONNX Runtime backend computes the same network as eager PyTorch."""

from __future__ import annotations

import pytest
import torch

from inference.onnx_backend import OnnxRunner
from inference.yolo import YoloConfig, YoloDetector, decode, decode_dense, dense_predictions


@pytest.mark.parametrize("seed", [0, 1])
def test_raw_outputs_and_boxes_match_pytorch(seed):
    torch.manual_seed(seed)
    config = YoloConfig(num_classes=3, class_names=["a", "b", "c"], img_size=128)
    model = YoloDetector(config).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, as after training
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    images = torch.rand(3, 3, 128, 128)
    runner = OnnxRunner(model, threads=1)
    with torch.inference_mode():
        raw = model.raw_outputs(images)
        expected = dense_predictions(raw, config)
    got = runner(images)
    assert [g.shape for g in got] == [e.shape for e in expected]
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, atol=1e-3, rtol=1e-4)
    low = YoloConfig(**{**config.to_dict(), "score_threshold": 0.01})
    ours, theirs = decode_dense(*got, low, 128), decode(raw, low, 128)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a["boxes"], b["boxes"], atol=1e-3, rtol=1e-4)
        assert torch.equal(a["labels"], b["labels"])


def test_predictor_backends_give_the_same_boxes(tmp_path):
    import numpy as np

    from inference.predict import Predictor
    from inference.yolo import save_detector

    torch.manual_seed(3)
    config = YoloConfig(num_classes=2, class_names=["a", "b"], img_size=128, score_threshold=0.005)
    path = tmp_path / "m.safetensors"
    save_detector(path, YoloDetector(config))
    images = [
        np.random.default_rng(i).integers(0, 256, (90 + i * 7, 120, 3), dtype=np.uint8)
        for i in range(3)
    ]
    fast = Predictor.from_checkpoint(path, backend="onnx")
    slow = Predictor.from_checkpoint(path, backend="torch")
    assert (fast.backend, slow.backend) == ("onnx", "torch")

    def canonical(d):
        # An untrained net ties many scores; tiny numeric differences may reorder ties.
        order = np.lexsort((*np.round(d.boxes, 1).T, d.labels))
        return d.boxes[order], d.scores[order], d.labels[order]

    for a, b in zip(fast.predict(images), slow.predict(images), strict=True):
        assert len(a) == len(b) > 0
        for x, y in zip(canonical(a), canonical(b), strict=True):
            np.testing.assert_allclose(x, y, atol=1e-2)


def test_auto_backend_is_onnx_on_cpu_and_bad_names_are_refused(tmp_path):
    from inference.predict import Predictor
    from inference.yolo import save_detector

    path = tmp_path / "m.safetensors"
    save_detector(path, YoloDetector(YoloConfig(num_classes=1, class_names=["x"], img_size=64)))
    assert Predictor.from_checkpoint(path).backend == "onnx"
    with pytest.raises(ValueError, match="backend must be"):
        Predictor.from_checkpoint(path, backend="tensorrt")
