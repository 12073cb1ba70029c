"""Identity folders (``root/<person>/<image>``) read as face samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inference.preprocess import load_rgb
from training.formats.folders import load_identity_folder


def test_load_identity_folder_lists_images_per_person(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    layout = {"alice": ["1.png", "2.jpg"], "bob": ["a.pgm", "b.png", "c.bmp"], "carol": ["x.png"]}
    for person, files in layout.items():
        (tmp_path / person).mkdir()
        for name in files:
            pixels = rng.integers(0, 256, size=(20, 16), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / person / name)
    (tmp_path / "bob" / "notes.txt").write_text("not a face")
    (tmp_path / "bob" / ".hidden.png").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    (tmp_path / "stray.png").write_bytes(b"")  # files at the top level belong to nobody

    samples = load_identity_folder(tmp_path)

    assert [(s.identity, s.image_path.name) for s in samples] == [
        ("alice", "1.png"),
        ("alice", "2.jpg"),
        ("bob", "a.pgm"),
        ("bob", "b.png"),
        ("bob", "c.bmp"),
        ("carol", "x.png"),
    ]
    assert all(s.box is None for s in samples)
    assert load_rgb(samples[2].image_path).shape == (20, 16, 3)


def test_load_identity_folder_rejects_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_identity_folder(tmp_path / "nope")
