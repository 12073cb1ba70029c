"""Face crops: margin and clipping arithmetic, channel handling, normalisation, quality."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from inference.faces import crop_face, expand_box, face_quality, to_gray, to_tensor
from tests.shared_data import orl_faces


def test_margin_expansion_numbers() -> None:
    # Box 20 wide, 40 tall; margin 0.2 adds 4 px left/right and 8 px top/bottom.
    assert expand_box((10, 20, 30, 60), 100, 100, margin=0.2) == (6, 12, 34, 68)
    assert expand_box((10, 20, 30, 60), 100, 100, margin=0.0) == (10, 20, 30, 60)
    # Fractional boxes round outwards: 10.5 - 0 -> 10, 20.2 -> 21.
    assert expand_box((10.5, 10.5, 20.2, 20.2), 100, 100, margin=0.0) == (10, 10, 21, 21)
    assert expand_box(None, 92, 112) == (0, 0, 92, 112)


def test_expansion_is_clipped_to_the_image() -> None:
    # 50x50 box at the corner with margin 0.2 would reach (-10, -10, 60, 60).
    assert expand_box((0, 0, 50, 50), 60, 40, margin=0.2) == (0, 0, 60, 40)
    # Partly outside on the right/bottom: 90..110 grows to 86..114, clipped at 100.
    assert expand_box((90, 90, 110, 110), 100, 100, margin=0.2) == (86, 86, 100, 100)


@pytest.mark.parametrize(
    "box", [(10, 10, 10, 20), (5, 5, 1, 1), (float("nan"), 0, 5, 5), (200, 200, 300, 300)]
)
def test_bad_boxes_are_rejected(box: tuple[float, float, float, float]) -> None:
    with pytest.raises(ValueError):
        expand_box(box, 100, 100)


def test_crop_takes_the_expanded_region() -> None:
    image = np.zeros((100, 100), dtype=np.uint8)
    image[20:60, 10:30] = 200  # the "face"
    tight = crop_face(image, (10, 20, 30, 60), margin=0.0, size=16)
    assert tight.shape == (16, 16) and tight.dtype == np.uint8
    assert np.all(tight == 200)
    loose = crop_face(image, (10, 20, 30, 60), margin=0.2, size=28)
    # The margin brings in the dark surroundings: 28 px cover 28 px of image, 1:1.
    assert loose[0, 0] == 0 and loose[14, 14] == 200
    assert (loose == 200).sum() == 20 * 40 * (28 * 28) // (28 * 56)


def test_channel_layouts_give_the_same_grey() -> None:
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, size=(30, 40), dtype=np.uint8)
    rgb_of_grey = np.repeat(grey[:, :, None], 3, axis=2)
    rgba = np.concatenate([rgb_of_grey, np.full((30, 40, 1), 17, np.uint8)], axis=2)
    grey_alpha = np.stack([grey, np.zeros_like(grey)], axis=2)
    for layout in [grey, grey[:, :, None], grey_alpha, rgb_of_grey, rgba]:
        assert np.array_equal(to_gray(layout), grey)
        assert np.array_equal(crop_face(layout, None, size=24), crop_face(grey, None, size=24))


def test_colour_uses_standard_luma() -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(20, 20, 3), dtype=np.uint8)
    expected = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    assert np.abs(to_gray(rgb).astype(int) - expected.astype(int)).max() <= 1
    with pytest.raises(ValueError):
        to_gray(rgb.astype(np.float32))
    with pytest.raises(ValueError):
        to_gray(np.zeros((4, 4, 5), np.uint8))


def test_to_tensor_normalises_each_crop() -> None:
    rng = np.random.default_rng(2)
    crops = [rng.integers(0, 256, size=(8, 8), dtype=np.uint8) for _ in range(3)]
    crops.append(np.full((8, 8), 90, np.uint8))  # flat: no contrast to normalise
    x = to_tensor(crops)
    assert x.shape == (4, 1, 8, 8) and x.dtype == torch.float32
    torch.testing.assert_close(x[:3].mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(x[:3].std(dim=(1, 2, 3), unbiased=False), torch.ones(3))
    torch.testing.assert_close(x[3], torch.zeros(1, 8, 8), atol=1e-4, rtol=0)
    # Brightness and contrast changes vanish: the same face under another exposure.
    brighter = np.clip(crops[0].astype(int) // 2 + 100, 0, 255).astype(np.uint8)
    torch.testing.assert_close(to_tensor([brighter])[0], x[0], atol=0.05, rtol=0)
    assert to_tensor([]).shape == (0, 1, 0, 0)
    with pytest.raises(ValueError):
        to_tensor([np.zeros((8, 6), np.uint8)])


def _orl(person: int, image: int) -> np.ndarray:
    grey = cv2.imread(str(orl_faces() / f"s{person}" / f"{image}.pgm"), cv2.IMREAD_GRAYSCALE)
    assert grey is not None
    return grey


def test_quality_warns_on_a_tiny_box() -> None:
    face = _orl(1, 1)  # 92x112
    warnings = face_quality(face, (30, 40, 55, 70))  # 25 x 30 px
    assert [w.split(":")[0] for w in warnings if w.startswith("tiny_face")] == ["tiny_face"]
    assert not [w for w in face_quality(face, (10, 10, 80, 100)) if w.startswith("tiny_face")]
    assert face_quality(face, (10, 10, 80, 100), min_face_px=80)[0].startswith("tiny_face")


@pytest.mark.parametrize(("person", "image"), [(1, 1), (7, 3), (22, 5), (40, 10)])
def test_quality_flags_a_blurred_face_but_not_the_sharp_one(person: int, image: int) -> None:
    sharp = _orl(person, image)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 2.0)
    assert face_quality(sharp) == []
    warnings = face_quality(blurred)
    assert len(warnings) == 1 and warnings[0].startswith("blurry:")
    # A colour copy of the same photo is judged the same way.
    assert face_quality(np.repeat(blurred[:, :, None], 3, axis=2)) == warnings
