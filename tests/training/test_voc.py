"""The Pascal VOC reader on the real BCCD set and on small broken folders; the writer."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.formats import VocDataset, VocRecord, read_voc
from training.formats.voc import voc_files


@pytest.fixture(scope="module")
def bccd(shared_data: Path) -> VocDataset:
    return read_voc(shared_data / "bccd")


def test_bccd_counts_classes_and_splits(bccd: VocDataset) -> None:
    assert len(bccd.records) == 364
    assert bccd.class_names == ["Platelets", "RBC", "WBC"]
    assert bccd.num_boxes == 4886  # 4,888 in the files minus the two zero-area boxes
    counts = Counter(name for record in bccd.records for name in record.class_names)
    assert counts == {"RBC": 4153, "WBC": 372, "Platelets": 361}
    assert {split: len(stems) for split, stems in bccd.splits.items()} == {
        "train": 205,
        "val": 87,
        "test": 72,
    }
    assert bccd.splits["train"][0] == "BloodImage_00001"


def test_bccd_zero_area_boxes_are_reported_with_their_files(bccd: VocDataset) -> None:
    zero = [w for w in bccd.warnings if w.code == "zero_area"]
    assert sorted(w.file for w in zero) == [
        "Annotations/BloodImage_00338.xml",
        "Annotations/BloodImage_00343.xml",
    ]
    assert all("zero-area" in w.reason for w in zero)
    # Only the defects the data set documents: nothing else is reported.
    assert {w.code for w in bccd.warnings} <= {"zero_area", "whitespace_class"}


def test_bccd_records_are_consistent(bccd: VocDataset) -> None:
    for record in bccd.records:
        assert record.image_path.is_file() and (record.width, record.height) == (640, 480)
        assert record.boxes.dtype == np.float32 and record.boxes.shape == (len(record.labels), 4)
        assert (record.boxes[:, 2] > record.boxes[:, 0]).all()
        assert (record.boxes[:, 3] > record.boxes[:, 1]).all()
        assert (record.boxes[:, :2] >= 0).all() and (record.boxes[:, 2] <= 640).all()
        assert [bccd.class_names[i] for i in record.labels] == list(record.class_names)
        # Names are stripped, whichever files had stray whitespace.
        assert all(name == name.strip() for name in record.class_names)


def test_face_mask_lowercase_folders_read_completely(shared_data: Path) -> None:
    dataset = read_voc(shared_data / "face_mask")
    assert len(dataset.records) == 853 and dataset.num_boxes == 4072
    assert dataset.class_names == ["mask_weared_incorrect", "with_mask", "without_mask"]
    assert dataset.splits == {}
    # Its only defect: a few faces drawn past the image edge, clipped and reported.
    assert {w.code for w in dataset.warnings} == {"out_of_bounds"}


# --- small synthetic folders ----------------------------------------------------------------


def _jpeg(path: Path, width: int = 64, height: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (120, 30, 200)).save(path, "JPEG")
    return path


def _xml(
    path: Path,
    filename: str,
    objects: list[tuple[str, tuple[float, float, float, float]]],
    size: tuple[int, int] = (64, 48),
    extra: str = "",
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, b in objects
    )
    path.write_text(
        f"<annotation>{extra}<filename>{filename}</filename><size><width>{size[0]}</width>"
        f"<height>{size[1]}</height><depth>3</depth></size>{body}</annotation>"
    )
    return path


def _voc_folder(root: Path) -> Path:
    """A VOC folder with one good image and one of each defect."""
    _jpeg(root / "JPEGImages" / "good.jpg")
    _xml(root / "Annotations" / "good.xml", "good.jpg", [("cat", (1, 2, 30, 40))])
    _jpeg(root / "JPEGImages" / "bounds.jpg")
    _xml(
        root / "Annotations" / "bounds.xml",
        "bounds.jpg",
        [("cat", (-5, 10, 20, 60)), ("dog", (70, 50, 90, 60)), ("dog", (10, 10, 20, 20))],
    )
    (root / "Annotations" / "broken.xml").write_text("<annotation><object><name>cat</name>")
    _xml(root / "Annotations" / "orphan.xml", "orphan.jpg", [("cat", (1, 1, 9, 9))])
    (root / "JPEGImages" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    _xml(root / "Annotations" / "corrupt.xml", "corrupt.jpg", [("cat", (1, 1, 9, 9))])
    return root


def _codes(dataset: VocDataset) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for warning in dataset.warnings:
        out.setdefault(warning.file, []).append(warning.code)
    return out


def test_one_bad_file_never_stops_the_import(tmp_path: Path) -> None:
    dataset = read_voc(_voc_folder(tmp_path))
    assert [r.stem for r in dataset.records] == ["bounds", "good"]
    codes = _codes(dataset)
    assert codes["Annotations/broken.xml"] == ["malformed_xml"]
    assert codes["Annotations/orphan.xml"] == ["missing_image"]
    assert codes["Annotations/corrupt.xml"] == ["unreadable_image"]
    assert dataset.class_names == ["cat", "dog"]
    assert dataset.splits == {}


def test_boxes_out_of_bounds_are_clipped_and_outside_ones_skipped(tmp_path: Path) -> None:
    dataset = read_voc(_voc_folder(tmp_path))
    bounds = next(r for r in dataset.records if r.stem == "bounds")
    np.testing.assert_array_equal(bounds.boxes, [[0, 10, 20, 48], [10, 10, 20, 20]])
    assert bounds.class_names == ("cat", "dog")
    np.testing.assert_array_equal(bounds.labels, [0, 1])
    assert sorted(_codes(dataset)["Annotations/bounds.xml"]) == ["out_of_bounds", "outside_image"]


def test_unknown_classes_are_skipped_when_classes_are_given(tmp_path: Path) -> None:
    dataset = read_voc(_voc_folder(tmp_path), class_names=["dog ", "cat"])
    assert dataset.class_names == ["dog", "cat"]  # given order, stripped
    good = next(r for r in dataset.records if r.stem == "good")
    np.testing.assert_array_equal(good.labels, [1])
    only_dogs = read_voc(tmp_path, class_names=["dog"])
    good = next(r for r in only_dogs.records if r.stem == "good")
    assert good.boxes.shape == (0, 4) and good.labels.shape == (0,)
    unknown = [w for w in only_dogs.warnings if w.code == "unknown_class"]
    assert [w.file for w in unknown] == ["Annotations/bounds.xml", "Annotations/good.xml"]
    assert "'cat'" in unknown[0].reason


def test_truncated_jpeg_is_unreadable(tmp_path: Path) -> None:
    whole = _jpeg(tmp_path / "src.jpg", 256, 192).read_bytes()
    images = tmp_path / "voc" / "images"
    images.mkdir(parents=True)
    (images / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    _xml(tmp_path / "voc" / "annotations" / "cut.xml", "cut.jpg", [("a", (1, 1, 9, 9))])
    dataset = read_voc(tmp_path / "voc")
    assert dataset.records == []
    assert [w.code for w in dataset.warnings] == ["unreadable_image"]


def test_stray_whitespace_is_fixed_and_warned_once_per_name(tmp_path: Path) -> None:
    for i in range(3):
        _jpeg(tmp_path / "images" / f"im{i}.jpg")
        objects = [(" RBC ", (1.0, 1.0, 5.0, 5.0)), ("RBC", (2, 2, 8, 8)), ("WBC\t", (3, 3, 9, 9))]
        _xml(tmp_path / "annotations" / f"im{i}.xml", f"im{i}.jpg", objects)
    dataset = read_voc(tmp_path)
    assert dataset.class_names == ["RBC", "WBC"]
    assert dataset.num_boxes == 9
    whitespace = [w for w in dataset.warnings if w.code == "whitespace_class"]
    assert len(whitespace) == 2 and "' RBC '" in whitespace[0].reason


def test_xml_size_disagreeing_with_the_image_trusts_the_image(tmp_path: Path) -> None:
    _jpeg(tmp_path / "JPEGImages" / "a.jpg", 50, 40)
    _xml(tmp_path / "Annotations" / "a.xml", "a.jpg", [("x", (10, 10, 60, 45))], size=(100, 90))
    dataset = read_voc(tmp_path)
    record = dataset.records[0]
    assert (record.width, record.height) == (50, 40)
    np.testing.assert_array_equal(record.boxes, [[10, 10, 50, 40]])
    assert [w.code for w in dataset.warnings] == ["size_mismatch", "out_of_bounds"]
    assert "100x90" in dataset.warnings[0].reason and "50x40" in dataset.warnings[0].reason


def test_xmls_beside_images_and_fallback_by_stem(tmp_path: Path) -> None:
    _jpeg(tmp_path / "photos" / "p1.jpg")
    _xml(tmp_path / "photos" / "p1.xml", "renamed_by_tool.png", [("face", (1, 1, 20, 20))])
    dataset = read_voc(tmp_path)
    assert [r.image_path for r in dataset.records] == [tmp_path / "photos" / "p1.jpg"]
    assert dataset.warnings == []


def test_paths_in_the_xml_never_leave_the_folder(tmp_path: Path) -> None:
    outside = _jpeg(tmp_path / "secret" / "secret.jpg")
    root = tmp_path / "voc"
    extra = f"<path>{outside}</path>"
    _xml(root / "Annotations" / "x.xml", "../secret/secret.jpg", [("a", (1, 1, 5, 5))], extra=extra)
    dataset = read_voc(root)
    assert dataset.records == []
    assert [w.code for w in dataset.warnings] == ["missing_image"]


def test_entities_and_huge_files_are_refused(tmp_path: Path) -> None:
    _jpeg(tmp_path / "JPEGImages" / "e.jpg")
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "e.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx">]>'
        "<annotation><filename>e.jpg</filename><object><name>&x;</name></object></annotation>"
    )
    (tmp_path / "Annotations" / "big.xml").write_bytes(b"<annotation>" + b" " * (5 << 20))
    dataset = read_voc(tmp_path)
    assert dataset.records == []
    assert sorted(w.code for w in dataset.warnings) == ["malformed_xml", "xml_too_large"]


def test_non_numeric_and_zero_area_boxes_are_skipped(tmp_path: Path) -> None:
    _jpeg(tmp_path / "JPEGImages" / "n.jpg")
    xml = _xml(
        tmp_path / "Annotations" / "n.xml", "n.jpg", [("a", (5, 5, 5, 9)), ("a", (9, 9, 2, 20))]
    )
    xml.write_text(
        xml.read_text().replace("</annotation>", "<object><name>a</name></object></annotation>")
    )
    dataset = read_voc(tmp_path)
    assert dataset.records[0].boxes.shape == (0, 4)
    assert [w.code for w in dataset.warnings] == ["zero_area", "zero_area", "invalid_box"]


def test_splits_drop_stems_without_records(tmp_path: Path) -> None:
    root = _voc_folder(tmp_path)
    main = root / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "train.txt").write_text("good\nbroken\n\n")
    (main / "test.txt").write_text("bounds\n")
    dataset = read_voc(root)
    assert dataset.splits == {"train": ["good"], "test": ["bounds"]}
    assert _codes(dataset)["ImageSets/Main/train.txt"] == ["split_missing"]


# --- the writer ------------------------------------------------------------------------------


def test_voc_files_round_trip_through_the_reader(tmp_path: Path) -> None:
    image = _jpeg(tmp_path / "src" / "a.JPG")
    boxes = np.array([[1.25, 2.5, 10.75, 20], [0, 0, 64, 48]], np.float32)
    record = VocRecord("a&b", image, 64, 48, boxes, ("dog <1>", "cat"), np.array([1, 0]))
    out = tmp_path / "voc"
    for name, content in voc_files(
        [record], {"train": ["a&b"], "val": []}, ["cat", "dog <1>", "x"]
    ):
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.read_bytes() if isinstance(content, Path) else content)
    assert (out / "JPEGImages" / "a&b.jpg").read_bytes() == image.read_bytes()
    back = read_voc(out)
    assert back.warnings == []
    # Names escaped in the XML are read back; "x", used by no box, comes from classes.txt.
    assert back.class_names == ["cat", "dog <1>", "x"]
    assert back.splits == {"train": ["a&b"], "val": []}
    np.testing.assert_array_equal(back.records[0].boxes, boxes)
    assert back.records[0].class_names == ("dog <1>", "cat")
    assert "<xmin>1.25</xmin>" in (out / "Annotations" / "a&b.xml").read_text()
