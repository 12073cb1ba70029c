"""inference.preprocess: letterbox numbers on hand cases, exact inversion, any mode -> RGB."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inference.preprocess import (
    PAD_VALUE,
    as_rgb_uint8,
    letterbox,
    load_rgb,
    to_tensor,
    unletterbox_boxes,
)


def test_letterbox_640x480_to_416() -> None:
    image = np.full((480, 640, 3), 200, np.uint8)
    boxes = np.array([[0, 0, 640, 480], [100, 50, 200, 150]], np.float32)
    out = letterbox(image, 416, boxes)
    assert out.image.shape == (416, 416, 3) and out.image.dtype == np.uint8
    assert out.scale == pytest.approx(0.65)
    assert (out.pad_x, out.pad_y) == (0, 52)
    np.testing.assert_allclose(out.boxes[0], [0, 52, 416, 364], atol=1e-4)
    np.testing.assert_allclose(out.boxes[1], [65, 84.5, 130, 149.5], atol=1e-4)
    # Picture rows 52..363, grey padding above and below.
    assert (out.image[:52] == PAD_VALUE).all() and (out.image[364:] == PAD_VALUE).all()
    assert (out.image[52:364] == 200).all()


def test_letterbox_portrait_pads_left_and_right() -> None:
    out = letterbox(np.zeros((300, 100, 3), np.uint8), 96)
    assert out.scale == pytest.approx(96 / 300)
    assert (out.pad_x, out.pad_y) == (32, 0)  # 100 * 0.32 = 32 px wide picture
    assert out.boxes.shape == (0, 4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unletterbox_inverts_letterbox(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(20, 900, size=2))
    xy = rng.uniform(0, [w, h], size=(10, 2))
    wh = rng.uniform(1, [w, h], size=(10, 2))
    boxes = np.concatenate([xy, np.minimum(xy + wh, [w, h])], axis=1).astype(np.float32)
    out = letterbox(np.zeros((h, w, 3), np.uint8), 416, boxes)
    back = unletterbox_boxes(out.boxes, out.scale, out.pad_x, out.pad_y, w, h)
    np.testing.assert_allclose(back, boxes, atol=1e-3, rtol=0)


def test_unletterbox_clips_to_the_original_image() -> None:
    back = unletterbox_boxes(np.array([[-10, 0, 500, 416]], np.float32), 0.65, 0, 52, 640, 480)
    np.testing.assert_allclose(back, [[0, 0, 640, 480]])


def test_to_tensor_layout_and_range() -> None:
    a = np.zeros((8, 8, 3), np.uint8)
    a[0, 1] = (255, 0, 51)
    t = to_tensor([a, a])
    assert t.shape == (2, 3, 8, 8) and t.dtype == torch.float32 and t.is_contiguous()
    torch.testing.assert_close(t[1, :, 0, 1], torch.tensor([1.0, 0.0, 0.2]))


def test_array_layouts_become_rgb_uint8() -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rgba = np.zeros((3, 4, 4), np.uint8)
    sixteen = np.full((3, 4), 65535, np.uint16)
    for a in (grey, grey[:, :, None], rgba, sixteen):
        out = as_rgb_uint8(a)
        assert out.shape == (3, 4, 3) and out.dtype == np.uint8
    assert (as_rgb_uint8(grey)[..., 2] == grey).all()
    assert (as_rgb_uint8(sixteen) == 255).all()


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("L", 77, (77, 77, 77)),
        ("RGBA", (10, 20, 30, 0), (10, 20, 30)),
        ("I;16", 257 * 40, (40, 40, 40)),
        ("P", 0, (0, 0, 0)),
        ("RGB", (1, 2, 3), (1, 2, 3)),
    ],
)
def test_load_rgb_any_mode(
    tmp_path: Path, mode: str, value: object, expected: tuple[int, ...]
) -> None:
    path = tmp_path / "x.png"
    Image.new(mode, (5, 3), value).save(path)
    out = load_rgb(path)
    assert out.shape == (3, 5, 3) and out.dtype == np.uint8
    assert tuple(out[1, 2]) == expected


def test_load_rgb_applies_exif_orientation(tmp_path: Path) -> None:
    img = Image.new("RGB", (6, 2), (255, 0, 0))
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display": a portrait photo stored landscape
    path = tmp_path / "x.jpg"
    img.save(path, exif=exif)
    assert load_rgb(path).shape == (6, 2, 3)


def test_load_rgb_rejects_non_images(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        load_rgb(path)
