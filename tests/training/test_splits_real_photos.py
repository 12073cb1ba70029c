"""Leaks on real photos: a set with the same photo twice under two names and once
re-encoded (as public sets have), and face_mask's own duplicates, split with their
perceptual hashes: every copy lands with its original."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2

from inference.phash import phash_bytes
from tests.shared_data import shared_path
from training.splits import SplitItem, assign_splits


def _item(name: str, data: bytes, source: str) -> SplitItem:
    return SplitItem(name, hashlib.sha256(data).hexdigest(), source, phash=phash_bytes(data))


def _reencoded(path: Path) -> bytes:
    pixels = cv2.imread(str(path))
    smaller = cv2.resize(pixels, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    brighter = cv2.convertScaleAbs(smaller, alpha=1.0, beta=30)
    return bytes(cv2.imencode(".jpg", brighter, [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes())


def test_copies_under_other_names_land_with_their_original() -> None:
    photos = sorted(shared_path("bccd", "JPEGImages").glob("*.jpg"))[:120]
    items = [_item(p.name, p.read_bytes(), "app") for p in photos]
    copied = photos[::10]  # 12 photos, each also as "copy_<name>" and a re-encoded one
    items += [_item(f"copy_{p.name}", p.read_bytes(), "app") for p in copied]
    items += [_item(f"small_{p.stem}.jpg", _reencoded(p), "app") for p in copied]
    result = assign_splits(items, "app")
    for p in copied:
        trio = {result.splits[n] for n in (p.name, f"copy_{p.name}", f"small_{p.stem}.jpg")}
        assert len(trio) == 1, (p.name, trio)
    groups = {frozenset(g.keys): g for g in result.duplicate_groups}
    trios = [frozenset({p.name, f"copy_{p.name}", f"small_{p.stem}.jpg"}) for p in copied]
    for trio_keys in trios:
        group = groups[trio_keys]
        assert group.kind == "near" and group.max_distance <= 8  # often 0: pHash is robust
    # besides the 12 trios, the set's own near-duplicate: one microscope field shot twice
    others = [g.keys for g in result.duplicate_groups if frozenset(g.keys) not in trios]
    assert others == [("BloodImage_00037.jpg", "BloodImage_00038.jpg")]
    assert set(result.splits.values()) == {"train", "train_val", "val", "test"}


def test_face_mask_duplicates_never_straddle_splits() -> None:
    photos = sorted(shared_path("face_mask", "images").glob("*.jpg"))
    # the first half from the "web", the rest from the "app" (the target)
    items = [
        _item(p.name, p.read_bytes(), "web" if i < len(photos) // 2 else "app")
        for i, p in enumerate(photos)
    ]
    result = assign_splits(items, "app")
    assert len(result.duplicate_groups) == 24
    assert all(len(g.splits) == 1 for g in result.duplicate_groups)
    source = {i.key: i.source for i in items}
    for key, split in result.splits.items():
        if split in ("val", "test"):
            assert source[key] == "app"
    # a duplicate pair across the two sources can only train
    mixed = [g for g in result.duplicate_groups if len({source[k] for k in g.keys}) > 1]
    assert mixed and all(g.splits[0] in ("train", "train_val") for g in mixed)
