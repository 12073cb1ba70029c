"""The one record type every reader returns and every writer takes, and the checks they share.

Pure code (no Django). A reader (:mod:`~training.formats.voc`, :mod:`~training.formats.coco`,
:mod:`~training.formats.yolo`) turns a user's folder into a :class:`RecordSet`: one
:class:`Record` per usable image, with its boxes in the house format (``xyxy`` float pixels
of the image as decoded), the class list, the folder's own split if it has one, and a
:class:`FormatWarning` for every problem found and what was done about it. The writers
produce :data:`ExportFile` entries (a path inside the export and its content) that
:mod:`training.formats.archive` packs into a zip.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from numpy.typing import NDArray
from PIL import Image

Box = tuple[float, float, float, float]
# (path inside the export, content): bytes written as they are, or a file copied as it is.
ExportFile = tuple[str, bytes | Path]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
# The splits SplitAssignment knows; readers map a folder's own names onto these.
KNOWN_SPLITS = ("train", "train_val", "val", "test")
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
_EXIF_ORIENTATION = 0x0112
_ROTATED_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that swap width and height


@dataclass(frozen=True)
class FormatWarning:
    """One problem found while reading (or importing), and what was done about it.

    Attributes:
        file: the file's name relative to the folder read (e.g. ``labels/a.txt``).
        code: stable and machine-readable: "zero_area", "out_of_bounds", "outside_image",
            "invalid_box", "unknown_class", "whitespace_class", "empty_class",
            "missing_image", "missing_label", "empty_label", "unreadable_image",
            "malformed_xml", "xml_too_large", "malformed_json", "malformed_yaml",
            "size_mismatch", "split_missing", "iscrowd", "unknown_image", "not_listed",
            "duplicate_image", "duplicate_category", "segment", "config", ...
        reason: a sentence for people saying what was wrong and what was done about it.
    """

    file: str
    code: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}"

    def as_dict(self) -> dict[str, str]:
        return {"file": self.file, "code": self.code, "reason": self.reason}


@dataclass(frozen=True, eq=False)
class Record:
    """One annotated image.

    Attributes:
        stem: the image's id in its set, unique there: the file name without extension
            (``<split>/<stem>`` when two splits have the same name).
        image_path: where the image is.
        width, height: the image's size in pixels, as the boxes' coordinates assume.
        boxes: ``float32 (N, 4)`` xyxy pixels, inside ``[0, width] x [0, height]``, area > 0.
        class_names: ``N`` names, whitespace stripped.
        labels: ``int64 (N,)`` indices into :attr:`RecordSet.class_names`.
    """

    stem: str
    image_path: Path
    width: int
    height: int
    boxes: NDArray[np.float32]
    class_names: tuple[str, ...]
    labels: NDArray[np.int64]


@dataclass
class RecordSet:
    """What a reader found in a folder.

    Attributes:
        root: the folder read.
        records: one per usable image, sorted by stem (background images have no boxes).
        class_names: the classes in label order (declared ones, or the sorted names found).
        splits: the folder's own split (split -> stems that have a record), one of
            :data:`KNOWN_SPLITS` each; empty if the folder has none.
        warnings: every problem found, in reading order.
    """

    root: Path
    records: list[Record]
    class_names: list[str]
    splits: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[FormatWarning] = field(default_factory=list)

    @property
    def num_boxes(self) -> int:
        """Total number of boxes kept over all records."""
        return sum(len(record.boxes) for record in self.records)

    def split_of(self) -> dict[str, str]:
        """``{stem: split}`` for the stems the folder's split names."""
        return {stem: split for split, stems in self.splits.items() for stem in stems}


class Warnings:
    """A warning list with the root that file names are written relative to."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.items: list[FormatWarning] = []

    def add(self, path: Path | str, code: str, reason: str) -> None:
        name = path if isinstance(path, str) else relative_name(path, self.root)
        self.items.append(FormatWarning(name, code, reason))


def relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when it is inside it, as a POSIX string."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def fmt_number(value: float | None) -> str:
    """A number as written in a warning, ``?`` when missing."""
    return "?" if value is None else f"{value:g}"


# Coordinates this close past an edge are rounding (YOLO's six decimals of a normalised
# centre and size land up to ~0.001 px outside): clipped without a warning.
EDGE_TOLERANCE_PX = 0.01


def check_box(
    x1: float, y1: float, x2: float, y2: float, width: int, height: int
) -> tuple[Box | None, str, str]:
    """Validate one xyxy pixel box against its image; clip it when it sticks out.

    A box that sticks out by less than :data:`EDGE_TOLERANCE_PX` is clipped silently.

    Returns:
        ``(box, code, reason)``: ``box`` is the (possibly clipped) box or ``None`` when it
        must be skipped; ``code``/``reason`` are ``""`` for a box kept as it was, else the
        warning to record ("invalid_box", "zero_area", "outside_image" skip the box,
        "out_of_bounds" means it was clipped).
    """
    if not all(np.isfinite(c) for c in (x1, y1, x2, y2)):
        return None, "invalid_box", "non-finite coordinates; skipped"
    if x2 <= x1 or y2 <= y1:
        return None, "zero_area", "zero-area or negative-size box; skipped"
    if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        return None, "outside_image", "box outside the image; skipped"
    clipped = (max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height)))
    past = max(-x1, -y1, x2 - width, y2 - height)
    if past > EDGE_TOLERANCE_PX:
        return clipped, "out_of_bounds", "box out of bounds; clipped"
    return clipped, "", ""


def image_size(path: Path, *, exif: bool = False) -> tuple[int, int]:
    """Decode ``path`` to prove it is readable; return ``(width, height)`` in pixels.

    Args:
        path: an image file.
        exif: report the size after the EXIF orientation is applied (width and height
            swapped for a rotated photo), the frame YOLO's normalised labels refer to.

    Raises:
        OSError, ValueError, PIL.Image.DecompressionBombError: not a readable image.
    """
    with Image.open(path) as image:
        size = image.size
        rotated = exif and image.getexif().get(_EXIF_ORIENTATION) in _ROTATED_ORIENTATIONS
        # draft() lets JPEG decode at 1/8 scale: every byte is still parsed (so a truncated
        # file fails) at a fraction of the cost of a full decode.
        image.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
        image.load()
    return (size[1], size[0]) if rotated else size


UNREADABLE_ERRORS = (OSError, ValueError, Image.DecompressionBombError)


def is_image_name(name: str) -> bool:
    """Whether a file name looks like an image we read (by extension, not hidden)."""
    return not name.startswith(".") and PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES


def normalise_split(name: str) -> str | None:
    """A folder's or file's split name as one of :data:`KNOWN_SPLITS`, or ``None``.

    ``valid``/``validation`` mean ``val``; names such as ``train2017`` or
    ``instances_val2017`` count by their words; ``train_val`` is our own train-val split.
    """
    lowered = name.lower()
    if lowered in KNOWN_SPLITS:
        return lowered
    words = [w for w in re.split(r"[^a-z]+", lowered) if w]
    found = {_SPLIT_ALIASES[w] for w in words if w in _SPLIT_ALIASES}
    return found.pop() if len(found) == 1 else None


def safe_relative(name: str) -> PurePosixPath | None:
    """A file name from an annotation as a relative path that stays inside its folder.

    Backslashes count as separators; ``None`` for an absolute path, a drive letter or a
    ``..`` part (an annotation must never point the reader outside the folder).
    """
    text = name.replace("\\", "/").strip()
    if not text or text.startswith("/") or re.match(r"^[A-Za-z]:", text) or "\x00" in text:
        return None
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return PurePosixPath(*parts)


def make_record(
    stem: str,
    image_path: Path,
    size: tuple[int, int],
    boxes: Sequence[Box],
    names: Sequence[str],
    index: Mapping[str, int],
) -> Record:
    """Freeze one image's boxes into arrays once the class index is known."""
    return Record(
        stem=stem,
        image_path=image_path,
        width=size[0],
        height=size[1],
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        class_names=tuple(names),
        labels=np.asarray([index[name] for name in names], dtype=np.int64),
    )


def kept_splits(assigned: Mapping[str, str | None], stems: set[str]) -> dict[str, list[str]]:
    """The folder's split as ``{split: stems}``, or ``{}`` when it is not a real split.

    A real split names at least two different splits; a folder that puts everything in one
    (coco128's single ``instances_train2017.json``) or lists nothing has none, and the
    importer makes a deterministic one instead. Only stems that produced a record count.
    """
    splits: dict[str, list[str]] = {}
    for stem, split in assigned.items():
        if split is not None and stem in stems:
            splits.setdefault(split, []).append(stem)
    return splits if len(splits) >= 2 else {}


def rename_classes(dataset: RecordSet, mapping: Mapping[str, str]) -> RecordSet:
    """The same set with classes renamed; several old names may map to one new name.

    Used to merge classes at import, e.g. face_mask's ``with_mask``, ``without_mask`` and
    ``mask_weared_incorrect`` into one ``face`` class for the face detector. Names missing
    from ``mapping`` keep their name.

    Args:
        dataset: from a reader.
        mapping: old name -> new name.

    Returns:
        A new :class:`RecordSet` whose ``class_names`` are the sorted new names in use
        (the boxes, images, splits and warnings are unchanged).

    Raises:
        ValueError: ``mapping`` names a class the set does not have.
    """
    unknown = sorted(set(mapping) - set(dataset.class_names))
    if unknown:
        raise ValueError(
            f"class map names classes the dataset does not have: {unknown} "
            f"(it has {dataset.class_names})"
        )
    names = sorted({mapping.get(name, name) for name in dataset.class_names})
    index = {name: i for i, name in enumerate(names)}
    records = []
    for record in dataset.records:
        renamed = tuple(mapping.get(name, name) for name in record.class_names)
        labels = np.array([index[name] for name in renamed], dtype=np.int64)
        records.append(dataclasses.replace(record, class_names=renamed, labels=labels))
    return dataclasses.replace(dataset, records=records, class_names=names)


def unique_stems(paths: Sequence[Path], root: Path) -> list[str]:
    """Record ids for image files: the file's stem, or, where two files share a stem (the
    same name in two splits), its path under ``root`` without the extension and without
    ``images`` folders (``train/images/x.jpg`` -> ``train/x``)."""
    counts: dict[str, int] = {}
    for path in paths:
        counts[path.stem] = counts.get(path.stem, 0) + 1

    def long_id(path: Path) -> str:
        parts = relative_name(path.with_suffix(""), root).split("/")
        return "/".join([p for p in parts[:-1] if p != "images"] + parts[-1:])

    return [path.stem if counts[path.stem] == 1 else long_id(path) for path in paths]


def number_text(value: float) -> str:
    """A pixel coordinate as written in exports: at most two decimals, no trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def export_stems(names: Sequence[str]) -> list[str]:
    """File stems for export, one per name, unique and safe in any zip.

    Characters other than letters, digits, ``-``, ``_`` and ``.`` become ``_``; a stem
    that repeats gets ``-2``, ``-3``, ... (the first keeps its name).
    """
    seen: dict[str, int] = {}
    taken: set[str] = set()
    out = []
    for name in names:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", PurePosixPath(name).stem).strip("._") or "image"
        stem, n = base, seen.get(base, 1)
        while stem.lower() in taken:
            n += 1
            stem = f"{base}-{n}"
        seen[base] = n
        taken.add(stem.lower())
        out.append(stem)
    return out
