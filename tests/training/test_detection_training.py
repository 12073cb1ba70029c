"""training.detection: targets line up with letterboxed pixels; a tiny detector learns."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inference.yolo import YoloConfig
from training.augment import AugmentConfig, DetectionAugment
from training.detection import (
    DetectionDataset,
    DetectionSample,
    collate,
    evaluate_detector,
    train_detector,
)
from training.fit import FitConfig

COLOURS = ((255, 40, 40), (40, 255, 40))  # class 0 red, class 1 green
BACKGROUND = 30


def _make_sample(
    path: Path, rng: np.random.Generator, h: int = 96, w: int = 128
) -> DetectionSample:
    """A dark image with 1-3 non-overlapping bright rectangles, saved as PNG (lossless)."""
    image = np.full((h, w, 3), BACKGROUND, np.uint8)
    boxes: list[list[float]] = []
    labels: list[int] = []
    for _ in range(40):  # rejection sampling until 1-3 boxes that do not touch
        if len(boxes) == int(rng.integers(1, 4)):
            break
        bw, bh = (int(v) for v in rng.integers(14, 34, size=2))
        x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        box = [x0, y0, x0 + bw, y0 + bh]
        if any(
            x0 < b[2] + 2 and b[0] < box[2] + 2 and y0 < b[3] + 2 and b[1] < box[3] + 2
            for b in boxes
        ):
            continue
        label = int(rng.integers(0, 2))
        image[y0 : y0 + bh, x0 : x0 + bw] = COLOURS[label]
        boxes.append([float(v) for v in box])
        labels.append(label)
    Image.fromarray(image).save(path)
    return DetectionSample(path, np.array(boxes, np.float32), np.array(labels, np.int64))


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[DetectionSample]:
    folder = tmp_path_factory.mktemp("synthetic")
    rng = np.random.default_rng(0)
    return [_make_sample(folder / f"{i}.png", rng) for i in range(12)]


@pytest.mark.parametrize("augment", [False, True])
def test_targets_line_up_with_letterboxed_pixels(
    samples: list[DetectionSample], augment: bool
) -> None:
    aug = None
    if augment:  # crop and mirror always; no colour change so the colours stay checkable
        cfg = AugmentConfig(flip_p=1.0, crop_p=1.0, color_p=0.0)
        aug = DetectionAugment(cfg, np.random.default_rng(0))
    data = DetectionDataset(samples, 64, aug)
    for i in range(len(data)):
        image, target = data[i]
        assert image.shape == (3, 64, 64) and image.dtype == torch.float32
        assert target["boxes"].shape[0] == target["labels"].shape[0] > 0
        for box, label in zip(target["boxes"], target["labels"], strict=True):
            x0, y0, x1, y1 = box.round().int().tolist()
            inside = image[:, y0 + 1 : y1 - 1, x0 + 1 : x1 - 1].mean(dim=(1, 2)) * 255
            expected = torch.tensor(COLOURS[int(label)], dtype=torch.float32)
            torch.testing.assert_close(inside, expected, atol=12.0, rtol=0)


def test_collate_stacks_images_and_keeps_targets(samples: list[DetectionSample]) -> None:
    data = DetectionDataset(samples[:3], 64)
    images, targets = collate([data[i] for i in range(3)])
    assert images.shape == (3, 3, 64, 64) and len(targets) == 3


def test_tiny_detector_learns_and_reports_its_best_state(samples: list[DetectionSample]) -> None:
    # A pipeline test, not a generalisation test: validating on the training images shows
    # that targets, loss, decoding and the mapping back to original pixels agree (8 images
    # are too few to measure generalisation in a few seconds).
    # One thread: on a shared, oversubscribed 2-core machine two threads wait on each other
    # at every op (measured 20x slower under load), while one thread just runs.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    train = samples[:8]
    config = YoloConfig(img_size=128, strides=(16,), boxes_per_cell=2, width_mult=0.25)
    fit_cfg = FitConfig(
        learning_rate=3e-3, batch_size=2, max_epochs=30, max_minutes=None, patience=None
    )
    try:
        result = train_detector(
            train,
            train,
            ["red", "green"],
            model_config=config,
            fit_config=fit_cfg,
            augment_config=AugmentConfig(crop_p=0.0, color_p=0.0),
            seed=0,
        )
    finally:
        torch.set_num_threads(threads)
    assert result.model_config.class_names == ["red", "green"]
    history = [round(h.metrics["map50"], 3) for h in result.history]
    assert result.metrics.map50 > 0.5, history
    assert result.stopped_reason == "max_epochs"
    best = max(h.metrics["map50"] for h in result.history)
    assert result.metrics.map50 == pytest.approx(best, abs=1e-9)
    assert result.history[result.best_epoch].metrics["map50"] == pytest.approx(best, abs=1e-9)
    # The returned model IS the best state: a fresh evaluation reproduces the number.
    again = evaluate_detector(result.model, train, 128)
    assert again.map50 == pytest.approx(best, abs=1e-9)
