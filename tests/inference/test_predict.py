"""inference.predict.Predictor: original-pixel boxes, batching, per-call thresholds."""

from pathlib import Path

import numpy as np
import pytest
import torch

from inference.predict import Detections, Predictor
from inference.yolo import YoloConfig, YoloDetector, save_detector


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    """A tiny untrained detector whose objectness is pushed up so it emits boxes."""
    torch.manual_seed(0)
    config = YoloConfig(
        num_classes=2, class_names=["a", "b"], img_size=64, width_mult=0.25, score_threshold=0.3
    )
    model = YoloDetector(config)
    with torch.no_grad():
        for head in model.heads:
            assert isinstance(head, torch.nn.Conv2d) and head.bias is not None
            head.weight.normal_(std=0.5)  # varied boxes and scores across cells
            head.bias[4 : 3 * 5 : 5] = 1.0  # P(object) ~ 0.73 before the weights' noise
    path = tmp_path_factory.mktemp("ckpt") / "det.safetensors"
    sha = save_detector(path, model)
    return Predictor.from_checkpoint(path, device="cpu", expected_sha256=sha)


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    sizes = [(48, 80), (120, 60), (64, 64)]
    return [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in sizes]


def test_one_detections_per_image_inside_each_image(predictor: Predictor) -> None:
    images = _images()
    results = predictor.predict(images, batch_size=8)
    assert len(results) == len(images)
    for image, det in zip(images, results, strict=True):
        assert isinstance(det, Detections) and len(det) > 0
        assert det.boxes.dtype == np.float32 and det.boxes.shape == (len(det), 4)
        assert det.scores.dtype == np.float32 and det.labels.dtype == np.int64
        h, w = image.shape[:2]
        assert (det.boxes[:, 0::2] >= 0).all() and (det.boxes[:, 0::2] <= w).all()
        assert (det.boxes[:, 1::2] >= 0).all() and (det.boxes[:, 1::2] <= h).all()
        assert (det.scores >= 0.3).all()
        assert det.class_names == tuple(["a", "b"][i] for i in det.labels)
        assert det.inference_ms > 0
    t = predictor.timings
    assert t.images == 3 and t.forward_ms > 0 and 0 < t.decode_share < 1


def test_boxes_are_mapped_back_to_original_pixels(predictor: Predictor) -> None:
    # A 128x96 image letterboxes to 64 with scale 0.5 and pad_y 8: the same picture
    # pre-letterboxed by hand must give the same boxes after the inverse mapping.
    image = _images()[0]
    big = np.ascontiguousarray(np.repeat(np.repeat(image, 2, axis=0), 2, axis=1))  # 96x160
    small = predictor.predict([image])[0]
    large = predictor.predict([big])[0]
    assert len(small) == len(large)
    # Near-equal scores may come out in another order: compare as sets of boxes.
    dist = np.abs(large.boxes[:, None, :] - 2 * small.boxes[None, :, :]).max(-1)
    assert dist.min(axis=1).max() < 2.0 and dist.min(axis=0).max() < 2.0


def test_threshold_override_does_not_leak(predictor: Predictor) -> None:
    images = _images()
    before = predictor.predict(images)
    strict = predictor.predict(images, score_threshold=0.99, iou_threshold=0.1)
    after = predictor.predict(images)
    assert sum(len(d) for d in strict) < sum(len(d) for d in before)
    assert predictor.config.score_threshold == 0.3 and predictor.config.iou_threshold == 0.45
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a.boxes, b.boxes)
    loose = predictor.predict(images, score_threshold=0.05)
    assert sum(len(d) for d in loose) > sum(len(d) for d in before)


def test_batched_equals_one_by_one(predictor: Predictor) -> None:
    images = _images()
    batched = predictor.predict(images, batch_size=8)
    single = [predictor.predict([image], batch_size=1)[0] for image in images]
    for a, b in zip(batched, single, strict=True):
        assert len(a) == len(b)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
        np.testing.assert_array_equal(a.labels, b.labels)


def test_grey_image_is_accepted(predictor: Predictor) -> None:
    det = predictor.predict([np.zeros((50, 70), np.uint8)], score_threshold=0.0)[0]
    assert det.boxes.shape[1] == 4


def test_bad_batch_size(predictor: Predictor) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        predictor.predict(_images(), batch_size=0)


def test_model_is_in_eval_mode(predictor: Predictor, tmp_path: Path) -> None:
    assert not predictor.model.training
    assert predictor.class_names == ["a", "b"]
