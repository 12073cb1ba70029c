"""Detection augmentation keeps boxes consistent with pixels, and is reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from inference.preprocess import letterbox, unletterbox_boxes
from training.augment import (
    AugmentConfig,
    DetectionAugment,
    adjust_contrast,
    adjust_gamma,
    color_shift,
    crop,
    hflip,
    occlude,
    random_crop,
    random_zoom,
    shade,
    to_grayscale,
    zoom_window,
)


def _image(height: int = 80, width: int = 100, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _random_boxes(rng: np.random.Generator, n: int, width: int, height: int) -> np.ndarray:
    xy = rng.uniform(0, [width - 10, height - 10], size=(n, 2))
    wh = rng.uniform(5, 40, size=(n, 2))
    boxes = np.concatenate([xy, np.minimum(xy + wh, [width, height])], axis=1)
    return boxes.astype(np.float32)


def test_hflip_maps_x_exactly_and_twice_is_identity() -> None:
    image = _image()
    boxes = np.array([[10, 5, 30, 25], [0, 0, 100, 80]], dtype=np.float32)
    flipped, fboxes = hflip(image, boxes)
    np.testing.assert_array_equal(fboxes, [[70, 5, 90, 25], [0, 0, 100, 80]])
    np.testing.assert_array_equal(flipped[:, 0], image[:, 99])
    again, aboxes = hflip(flipped, fboxes)
    np.testing.assert_array_equal(again, image)
    np.testing.assert_array_equal(aboxes, boxes)


def test_hflip_moves_the_pixels_with_the_box() -> None:
    image = np.zeros((20, 30, 3), dtype=np.uint8)
    image[5:10, 2:6] = 255  # a white patch exactly at box (2, 5, 6, 10)
    flipped, fboxes = hflip(image, np.array([[2, 5, 6, 10]], dtype=np.float32))
    x1, y1, x2, y2 = fboxes[0].astype(int)
    assert (flipped[y1:y2, x1:x2] == 255).all()
    assert flipped.sum() == image.sum()


def test_crop_hand_made_case() -> None:
    image = _image(80, 100)
    boxes = np.array(
        [
            [30, 20, 50, 40],  # A: fully inside -> shifted by (20, 10)
            [10, 10, 40, 30],  # B: 2/3 visible -> kept, clipped
            [0, 0, 30, 20],  # C: 1/6 visible -> dropped
            [65, 55, 69, 59],  # D: small but inside -> kept
            [68.5, 20, 71, 21.5],  # E: 60% visible but 1.5 px wide after clipping -> dropped
        ],
        dtype=np.float32,
    )
    labels = np.arange(5, dtype=np.int64)
    out, oboxes, olabels = crop(image, boxes, labels, (20, 10, 70, 60), 0.4, 2.0)
    assert out.shape == (50, 50, 3)
    np.testing.assert_array_equal(out, image[10:60, 20:70])
    np.testing.assert_array_equal(olabels, [0, 1, 3])
    np.testing.assert_allclose(oboxes, [[10, 10, 30, 30], [0, 0, 20, 20], [45, 45, 49, 49]])
    assert oboxes.dtype == np.float32 and olabels.dtype == np.int64


def test_crop_rejects_a_window_outside_the_image() -> None:
    with pytest.raises(ValueError, match="not inside"):
        crop(_image(), np.zeros((0, 4), np.float32), np.zeros(0, np.int64), (50, 0, 120, 10))


@pytest.mark.parametrize("seed", range(5))
def test_random_crop_keeps_boxes_inside_and_labels_aligned(seed: int) -> None:
    rng = np.random.default_rng(seed)
    image = _image(120, 160, seed)
    boxes = _random_boxes(rng, 12, 160, 120)
    labels = np.arange(12, dtype=np.int64)
    config = AugmentConfig(crop_min_scale=0.5)
    for _ in range(20):
        out, oboxes, olabels = random_crop(image, boxes, labels, rng, config)
        height, width = out.shape[:2]
        assert oboxes.shape == (len(olabels), 4)
        assert (oboxes[:, 0] >= 0).all() and (oboxes[:, 2] <= width).all()
        assert (oboxes[:, 1] >= 0).all() and (oboxes[:, 3] <= height).all()
        assert (oboxes[:, 2] - oboxes[:, 0] >= 2).all() and (oboxes[:, 3] - oboxes[:, 1] >= 2).all()
        # Each kept box is its original box clipped to some common window: same label,
        # never larger than the original.
        orig = boxes[olabels]
        assert ((oboxes[:, 2] - oboxes[:, 0]) <= (orig[:, 2] - orig[:, 0]) + 1e-4).all()


def test_random_crop_keeps_the_image_rather_than_drop_every_box() -> None:
    image = _image(80, 100)
    boxes = np.array([[0, 0, 100, 80]], dtype=np.float32)  # any smaller window cuts it
    labels = np.array([7], dtype=np.int64)
    config = AugmentConfig(crop_min_scale=0.3, crop_min_visible=0.99)
    out, oboxes, olabels = random_crop(image, boxes, labels, np.random.default_rng(0), config)
    assert out.shape == image.shape
    np.testing.assert_array_equal(oboxes, boxes)
    np.testing.assert_array_equal(olabels, labels)


def test_color_shift_moves_channel_means_by_the_offsets() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(50, 200, (40, 60, 3), dtype=np.uint8)
    shifted = color_shift(image, (10, -20, 30))
    assert shifted.dtype == np.uint8
    delta = shifted.astype(float).mean(axis=(0, 1)) - image.astype(float).mean(axis=(0, 1))
    np.testing.assert_allclose(delta, [10, -20, 30], atol=1e-9)


def test_color_shift_clips_to_the_valid_range() -> None:
    image = np.array([[[250, 5, 128]]], dtype=np.uint8)
    np.testing.assert_array_equal(color_shift(image, (10, -20, 0)), [[[255, 0, 128]]])
    np.testing.assert_array_equal(color_shift(image, (-255, 255, 0)), [[[0, 255, 128]]])


def test_grayscale_gives_equal_channels() -> None:
    grey = to_grayscale(_image())
    assert grey.shape == (80, 100, 3) and grey.dtype == np.uint8
    np.testing.assert_array_equal(grey[..., 0], grey[..., 1])
    np.testing.assert_array_equal(grey[..., 0], grey[..., 2])
    pure = np.zeros((1, 3, 3), dtype=np.uint8)
    pure[0, 0, 0], pure[0, 1, 1], pure[0, 2, 2] = 255, 255, 255
    np.testing.assert_array_equal(to_grayscale(pure)[0, :, 0], [76, 150, 29])  # BT.601 luma


@pytest.mark.parametrize(
    ("height", "width", "size"), [(480, 640, 416), (500, 300, 416), (30, 50, 64)]
)
def test_letterbox_then_unletterbox_returns_the_boxes(height: int, width: int, size: int) -> None:
    rng = np.random.default_rng(height)
    image = _image(height, width)
    boxes = _random_boxes(rng, 8, width, height)
    boxed = letterbox(image, size, boxes)
    out, lboxes, scale, left, top = boxed.image, boxed.boxes, boxed.scale, boxed.pad_x, boxed.pad_y
    assert out.shape == (size, size, 3) and out.dtype == np.uint8
    assert scale == pytest.approx(size / max(height, width))
    assert min(left, top) == 0  # the long side fills the square
    assert (lboxes >= 0).all() and (lboxes <= size).all()
    back = unletterbox_boxes(lboxes, scale, left, top, width, height)
    np.testing.assert_allclose(back, boxes, atol=1e-3)


@pytest.mark.parametrize("width", [318, 334, 400, 1000])
def test_letterbox_keeps_a_full_image_box_inside_the_square(width: int) -> None:
    # In float32, 318 * (416 / 318) is 416.00003: the edge must still be clipped to <= size.
    boxes = np.array([[0, 0, width, 300]], dtype=np.float32)
    boxed = letterbox(_image(300, width), 416, boxes)
    assert (boxed.boxes >= 0).all() and (boxed.boxes <= 416).all()
    back = unletterbox_boxes(boxed.boxes, boxed.scale, boxed.pad_x, boxed.pad_y, width, 300)
    np.testing.assert_allclose(back, boxes, atol=1e-3)


def test_letterbox_pads_the_short_side_symmetrically() -> None:
    image = np.full((50, 100, 3), 200, dtype=np.uint8)
    boxed = letterbox(image, 200)
    out = boxed.image
    assert boxed.scale == 2.0 and (boxed.pad_x, boxed.pad_y) == (0, 50)
    assert (out[:50] == 114).all() and (out[150:] == 114).all() and (out[50:150] == 200).all()


def test_unletterbox_clips_predictions_in_the_padding() -> None:
    boxes = np.array([[-5, 0, 20, 200]], dtype=np.float32)
    back = unletterbox_boxes(boxes, 2.0, 0, 50, 100, 50)
    np.testing.assert_allclose(back, [[0, 0, 10, 50]])


def _run(augment: DetectionAugment, n: int = 10) -> list[tuple[np.ndarray, ...]]:
    rng = np.random.default_rng(99)
    image = _image(60, 90)
    boxes = _random_boxes(rng, 6, 90, 60)
    labels = np.arange(6, dtype=np.int64)
    return [augment(image, boxes, labels) for _ in range(n)]


def test_detection_augment_is_deterministic_for_a_seeded_generator() -> None:
    config = AugmentConfig(grayscale_p=0.3)
    first = _run(DetectionAugment(config, np.random.default_rng(5)))
    second = _run(DetectionAugment(config, np.random.default_rng(5)))
    other = _run(DetectionAugment(config, np.random.default_rng(6)))
    for a, b in zip(first, second, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    assert any(
        a[0].shape != b[0].shape or not np.array_equal(a[0], b[0])
        for a, b in zip(first, other, strict=True)
    )


def test_detection_augment_keeps_types_and_does_not_modify_inputs() -> None:
    rng = np.random.default_rng(1)
    image = _image(60, 90)
    boxes = _random_boxes(rng, 6, 90, 60)
    labels = np.arange(6, dtype=np.int64)
    before = (image.copy(), boxes.copy(), labels.copy())
    augment = DetectionAugment(AugmentConfig(grayscale_p=1.0, color_p=1.0), rng)
    for _ in range(10):
        out, oboxes, olabels = augment(image, boxes, labels)
        assert out.dtype == np.uint8 and oboxes.dtype == np.float32 and olabels.dtype == np.int64
        np.testing.assert_array_equal(out[..., 0], out[..., 2])  # grayscale_p=1
        assert (oboxes[:, 2] <= out.shape[1]).all() and (oboxes[:, 3] <= out.shape[0]).all()
    for original, now in zip(before, (image, boxes, labels), strict=True):
        np.testing.assert_array_equal(original, now)


def test_augment_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="flip_p"):
        AugmentConfig(flip_p=1.5)
    with pytest.raises(ValueError, match="crop_min_scale"):
        AugmentConfig(crop_min_scale=0.0)


# ----------------------------------------------------------------------------- portraits
def test_zoom_window_makes_the_box_fill_the_asked_share() -> None:
    box = np.array([40, 50, 60, 80], np.float32)  # 20 x 30: the longer side is 30
    x0, y0, x1, y1 = zoom_window((400, 300), box, 0.5, (0.5, 0.5))
    assert (x1 - x0, y1 - y0) == (60, 60)  # 30 / 0.5
    assert x0 <= 40 and y0 <= 50 and x1 >= 60 and y1 >= 80  # the box inside, centred
    assert (x0 + x1) / 2 == pytest.approx(50, abs=1) and (y0 + y1) / 2 == pytest.approx(65, abs=1)
    # Near the edge the window is clipped to the image, never outside it.
    assert zoom_window((100, 100), np.array([0, 0, 10, 10], np.float32), 0.1, (0.5, 0.5))[:2] == (
        0,
        0,
    )


def test_random_zoom_turns_a_crowd_face_into_a_portrait() -> None:
    rng = np.random.default_rng(0)
    image = _image(400, 600)
    boxes = np.array([[100, 100, 130, 140], [400, 300, 404, 305]], np.float32)  # 40 px and 5 px
    labels = np.array([0, 0], np.int64)
    config = AugmentConfig(zoom_p=1.0, zoom_min_fill=0.5, zoom_max_fill=0.8, zoom_min_px=16)
    for _ in range(20):
        out, out_boxes, out_labels = random_zoom(image, boxes, labels, rng, config)
        # Only the 40-px face is large enough to zoom onto; the 5-px one is left out of view.
        assert len(out_boxes) == 1 and out_labels.tolist() == [0]
        longer = max(out_boxes[0, 2] - out_boxes[0, 0], out_boxes[0, 3] - out_boxes[0, 1])
        assert 0.5 - 0.03 <= longer / max(out.shape[:2]) <= 0.8 + 0.03
    tiny = np.array([[10, 10, 14, 14]], np.float32)
    same, same_boxes, _ = random_zoom(image, tiny, labels[:1], rng, config)
    np.testing.assert_array_equal(same, image)
    np.testing.assert_array_equal(same_boxes, tiny)


def test_gamma_contrast_and_shading_change_light_as_written() -> None:
    image = np.full((4, 10, 3), 128, np.uint8)
    np.testing.assert_array_equal(adjust_gamma(image, 1.0), image)
    assert int(adjust_gamma(image, 2.0)[0, 0, 0]) == round(255 * (128 / 255) ** 2)  # 64
    assert int(adjust_gamma(image, 0.5)[0, 0, 0]) == round(255 * (128 / 255) ** 0.5)  # 181
    ramp = np.tile(np.arange(0, 250, 25, dtype=np.uint8)[None, :, None], (4, 1, 3))
    np.testing.assert_array_equal(adjust_contrast(ramp, 1.0), ramp)
    flat = adjust_contrast(ramp, 0.0)
    assert np.all(flat == round(float(ramp.mean())))
    left = shade(image, "left", 0.25)
    assert int(left[0, 0, 0]) == 32 and int(left[0, -1, 0]) == 128  # darkest at the left
    top = shade(image, "top", 0.5)
    assert int(top[0, 0, 0]) == 64 and int(top[-1, 0, 0]) == 128
    assert np.all(np.diff(left[0, :, 0].astype(int)) >= 0)
    with pytest.raises(ValueError):
        shade(image, "diagonal", 0.5)


def test_new_options_off_draw_nothing_from_the_generator() -> None:
    image = _image()
    boxes = np.array([[10, 10, 40, 50]], np.float32)
    labels = np.array([0], np.int64)
    plain = DetectionAugment(AugmentConfig(), np.random.default_rng(3))
    with_zero = DetectionAugment(
        AugmentConfig(zoom_p=0.0, gamma_p=0.0, contrast_p=0.0, shade_p=0.0),
        np.random.default_rng(3),
    )
    for _ in range(5):
        a, b = plain(image, boxes, labels), with_zero(image, boxes, labels)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    with pytest.raises(ValueError, match="zoom_min_fill and zoom_max_fill"):
        AugmentConfig(zoom_min_fill=0.9, zoom_max_fill=0.5)
    with pytest.raises(ValueError, match="gamma_max"):
        AugmentConfig(gamma_max=0.5)


def test_occlusion_covers_a_band_of_one_face_and_keeps_its_box() -> None:
    image = np.full((100, 100, 3), 200, np.uint8)
    box = np.array([20, 40, 60, 80], np.float32)  # 40 x 40
    eyes = occlude(image, box, ("horizontal", 0.25, 0.25), 0)
    covered = np.argwhere(eyes[..., 0] == 0)
    assert covered[:, 0].min() == 50 and covered[:, 0].max() == 59  # rows 40 + 10 .. 40 + 20
    assert covered[:, 1].min() == 20 and covered[:, 1].max() == 59  # the box's whole width
    hair = occlude(image, box, ("vertical", 0.5, 0.5), 30)
    covered = np.argwhere(hair[..., 0] == 30)
    assert (covered[:, 1].min(), covered[:, 1].max()) == (40, 59)
    assert (covered[:, 0].min(), covered[:, 0].max()) == (40, 79)
    assert int(image[50, 30, 0]) == 200  # the input is untouched
    with pytest.raises(ValueError, match="direction"):
        occlude(image, box, ("diagonal", 0.0, 0.5), 0)

    boxes = np.array([[20, 40, 60, 80], [0, 0, 5, 5]], np.float32)
    labels = np.array([0, 0], np.int64)
    augment = DetectionAugment(
        AugmentConfig(
            flip_p=0, crop_p=0, color_p=0, occlude_p=1.0, occlude_min=0.3, occlude_max=0.3
        ),
        np.random.default_rng(0),
    )
    for _ in range(10):
        out, out_boxes, _ = augment(image, boxes, labels)
        np.testing.assert_array_equal(out_boxes, boxes)  # boxes stay whole
        changed = np.argwhere((out != image).any(axis=2))
        if len(changed):  # a grey of 200 changes nothing it covers
            # only the 40-px face is long enough; the band is 30% of one of its sides
            assert changed[:, 0].min() >= 40 and changed[:, 0].max() <= 79
            assert changed[:, 1].min() >= 20 and changed[:, 1].max() <= 59
            rows = changed[:, 0].max() - changed[:, 0].min() + 1
            cols = changed[:, 1].max() - changed[:, 1].min() + 1
            assert sorted((rows, cols)) == [12, 40]
    with pytest.raises(ValueError, match="occlude_min and occlude_max"):
        AugmentConfig(occlude_min=0.6, occlude_max=0.4)
