"""Pascal VOC: a reader for a user's folder, tolerant of the defects real data sets have,
and a writer (:func:`voc_files`) for exports.

One bad file never stops an import: each problem becomes a :class:`FormatWarning` (file name
and reason) and the offending box, record or file is fixed or skipped as documented in
:func:`read_voc`.

Boxes come out in the house format, ``xyxy`` float pixels. VOC coordinates are taken as
written (no 1-based shift), as torchvision and most labelling tools do.

XML safety: annotations come from users, so files over :data:`MAX_XML_BYTES` are refused and
any file declaring a DTD entity is refused (VOC never needs one; this rules out "billion
laughs" expansion whatever the expat version). ``xml.etree.ElementTree`` never fetches
external entities, so no file or URL outside the folder is read through the XML. Image paths
are likewise only looked up *inside* the folder: the ``<path>``/``<filename>`` elements are
reduced to their base name, so an XML cannot point the importer at ``/etc`` or ``../..``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath, PureWindowsPath

import numpy as np

from training.formats.records import (
    IMAGE_SUFFIXES,
    UNREADABLE_ERRORS,
    Box,
    ExportFile,
    FormatWarning,
    Record,
    RecordSet,
    Warnings,
    check_box,
    fmt_number,
    image_size,
    make_record,
    number_text,
    rename_classes,
)
from training.splits import SPLIT_NAMES

MAX_XML_BYTES = 4 * 1024 * 1024  # a VOC file with 1,000 boxes is about 250 kB
ANNOTATION_DIRS = ("Annotations", "annotations")
IMAGE_DIRS = ("JPEGImages", "images", "Images")
# "<!ENTITY" as bytes in each encoding expat auto-detects, so UTF-16 files cannot slip past.
# (Expat >= 2.4.1 also limits entity expansion itself; this keeps us safe on older builds.)
_ENTITY_MARKERS = tuple("<!ENTITY".encode(enc) for enc in ("utf-8", "utf-16-le", "utf-16-be"))


# The names this module had before the record types were shared by every format.
VocWarning = FormatWarning
VocRecord = Record
VocDataset = RecordSet


@dataclass
class _Parsed:
    """One XML's content before the class list is known."""

    stem: str
    image_path: Path
    width: int
    height: int
    boxes: list[Box]
    names: list[str]


class _Reader:
    """Reads one folder; holds the warning list and the once-per-name whitespace memory."""

    def __init__(self, root: Path, class_names: Sequence[str] | None) -> None:
        self.root = root
        self.known = None if class_names is None else {name.strip() for name in class_names}
        self.warnings = Warnings(root)
        self.whitespace_warned: set[str] = set()

    def warn(self, path: Path, code: str, reason: str) -> None:
        self.warnings.add(path, code, reason)

    def annotation_files(self) -> list[Path]:
        """XMLs in ``Annotations/`` or ``annotations/``, else anywhere under the root."""
        found: dict[Path, Path] = {}
        for name in ANNOTATION_DIRS:
            folder = self.root / name
            if folder.is_dir():
                # resolve() merges the two names on case-insensitive file systems.
                found.update((p.resolve(), p) for p in folder.glob("*.xml"))
        if not found:
            found.update((p.resolve(), p) for p in self.root.rglob("*.xml"))
        return sorted(found.values(), key=lambda p: (p.stem, str(p)))

    def parse_file(self, xml_path: Path) -> _Parsed | None:
        """Parse one annotation; ``None`` (with a warning) if the file must be skipped."""
        root = self.load_xml(xml_path)
        if root is None:
            return None
        image_path = self.find_image(xml_path, root)
        if image_path is None:
            self.warn(xml_path, "missing_image", "image not found; annotation skipped")
            return None
        size = self.image_size(xml_path, image_path)
        if size is None:
            return None
        self.check_size(xml_path, root, size)
        boxes, names = self.parse_objects(xml_path, root, size)
        return _Parsed(xml_path.stem, image_path, size[0], size[1], boxes, names)

    def load_xml(self, xml_path: Path) -> ET.Element | None:
        """Read and parse with the size and entity guards described in the module docstring."""
        try:
            if xml_path.stat().st_size > MAX_XML_BYTES:
                self.warn(xml_path, "xml_too_large", f"over {MAX_XML_BYTES} bytes; skipped")
                return None
            data = xml_path.read_bytes()
        except OSError as error:
            self.warn(xml_path, "malformed_xml", f"cannot read file ({error}); skipped")
            return None
        if any(marker in data for marker in _ENTITY_MARKERS):
            self.warn(xml_path, "malformed_xml", "declares XML entities (not allowed); skipped")
            return None
        try:
            root = ET.fromstring(data)
        except ET.ParseError as error:
            self.warn(xml_path, "malformed_xml", f"not well-formed XML ({error}); skipped")
            return None
        if root.tag != "annotation":
            self.warn(xml_path, "malformed_xml", f"root is <{root.tag}>, not <annotation>")
            return None
        return root

    def find_image(self, xml_path: Path, root: ET.Element) -> Path | None:
        """Look for the image inside the folder by ``<filename>``, ``<path>``, then the stem."""
        names: list[str] = []
        for tag in ("filename", "path"):
            text = (root.findtext(tag) or "").strip()
            if text:
                # Base name only (Windows or POSIX separators): never leave the folder.
                names.append(PureWindowsPath(PurePath(text).name).name)
        stems = [PurePath(n).stem for n in names] + [xml_path.stem]
        names += [stem + suffix for stem in stems for suffix in IMAGE_SUFFIXES]
        names += [stem + suffix.upper() for stem in stems for suffix in IMAGE_SUFFIXES]
        folders = [self.root / d for d in IMAGE_DIRS] + [xml_path.parent, self.root]
        for folder in folders:
            for name in names:
                candidate = folder / name
                if name and candidate.is_file():
                    return candidate
        return None

    def image_size(self, xml_path: Path, image_path: Path) -> tuple[int, int] | None:
        """Decode the image to prove it is readable; return ``(width, height)`` in pixels."""
        try:
            return image_size(image_path)
        except UNREADABLE_ERRORS as error:
            self.warn(xml_path, "unreadable_image", f"image {image_path.name} unreadable ({error})")
            return None

    def check_size(self, xml_path: Path, root: ET.Element, size: tuple[int, int]) -> None:
        """Warn when ``<size>`` disagrees with the image; the image's size is what is used."""
        width, height = _number(root.findtext("size/width")), _number(root.findtext("size/height"))
        if not width or not height:
            return  # absent or 0 (some tools write 0 for "unknown"): nothing to disagree with
        if (width, height) != (float(size[0]), float(size[1])):
            self.warn(
                xml_path,
                "size_mismatch",
                f"XML size {fmt_number(width)}x{fmt_number(height)} differs from the image's "
                f"{size[0]}x{size[1]}; using the image's",
            )

    def parse_objects(
        self, xml_path: Path, root: ET.Element, size: tuple[int, int]
    ) -> tuple[list[Box], list[str]]:
        """Every ``<object>``'s box and name, after fixing or skipping bad ones."""
        boxes: list[Box] = []
        names: list[str] = []
        unknown: dict[str, int] = {}
        for index, obj in enumerate(root.iter("object")):
            name = self.class_name(xml_path, obj.findtext("name"))
            if name is None:
                continue
            if self.known is not None and name not in self.known:
                unknown[name] = unknown.get(name, 0) + 1
                continue
            box = self.parse_box(xml_path, obj, index, size)
            if box is not None:
                boxes.append(box)
                names.append(name)
        for name, count in unknown.items():
            self.warn(xml_path, "unknown_class", f"{count} box(es) of unknown class {name!r}")
        return boxes, names

    def class_name(self, xml_path: Path, raw: str | None) -> str | None:
        """Strip whitespace (warned once per distinct raw name); ``None`` if empty."""
        name = (raw or "").strip()
        if not name:
            self.warn(xml_path, "empty_class", "object without a class name; skipped")
            return None
        if name != raw and raw not in self.whitespace_warned:
            self.whitespace_warned.add(raw or "")
            self.warn(
                xml_path,
                "whitespace_class",
                f"class name {raw!r} has stray whitespace; using {name!r}",
            )
        return name

    def parse_box(
        self, xml_path: Path, obj: ET.Element, index: int, size: tuple[int, int]
    ) -> Box | None:
        """One ``<bndbox>`` as xyxy pixels, clipped to the image; ``None`` if unusable."""
        raw = [_number(obj.findtext(f"bndbox/{tag}")) for tag in ("xmin", "ymin", "xmax", "ymax")]
        where = f"object {index} {[fmt_number(c) for c in raw]}"
        coords = [c for c in raw if c is not None and np.isfinite(c)]
        if len(coords) != 4:
            self.warn(xml_path, "invalid_box", f"{where}: missing or non-numeric bndbox; skipped")
            return None
        box, code, reason = check_box(coords[0], coords[1], coords[2], coords[3], *size)
        if code:
            self.warn(xml_path, code, f"{where}: {reason}")
        return box

    def read_splits(self, stems: set[str]) -> dict[str, list[str]]:
        """The authors' split lists, keeping only stems that produced a record."""
        splits: dict[str, list[str]] = {}
        for split in SPLIT_NAMES:
            path = self.root / "ImageSets" / "Main" / f"{split}.txt"
            if not path.is_file():
                continue
            listed = [line.strip() for line in path.read_text(errors="replace").splitlines()]
            listed = [stem for stem in listed if stem]
            splits[split] = [stem for stem in listed if stem in stems]
            missing = len(listed) - len(splits[split])
            if missing:
                self.warn(path, "split_missing", f"{missing} listed image(s) have no record")
        return splits


def _number(text: str | None) -> float | None:
    """A float from an XML text, ``None`` if absent or not a number."""
    try:
        return float((text or "").strip())
    except ValueError:
        return None


def _declared_classes(root: Path) -> list[str]:
    """Classes a VOC folder lists beside its files: ``classes.txt`` (one a line, as our
    export writes it) or CVAT's ``labelmap.txt`` (``name:colour:parts:actions``)."""
    names: list[str] = []
    for file, cvat in (("classes.txt", False), ("labelmap.txt", True)):
        path = root / file
        if not path.is_file() or path.stat().st_size > MAX_XML_BYTES:
            continue
        for line in path.read_text(errors="replace").splitlines():
            name = (line.split(":", 1)[0] if cvat else line).strip()
            if name and not line.lstrip().startswith("#") and not (cvat and name == "background"):
                names.append(name)
    return names


def _to_record(parsed: _Parsed, index: dict[str, int]) -> Record:
    """Freeze a parsed file into arrays once the class index is known."""
    size = (parsed.width, parsed.height)
    return make_record(parsed.stem, parsed.image_path, size, parsed.boxes, parsed.names, index)


def read_voc(root: Path, *, class_names: Sequence[str] | None = None) -> RecordSet:
    """Read a Pascal VOC folder: annotations, images, classes, the authors' splits, warnings.

    Annotations are the ``*.xml`` in ``Annotations/`` or ``annotations/``, or if neither
    exists, anywhere under ``root`` (beside the images). Each image is looked for in
    ``JPEGImages/``, ``images/``, beside its XML, or in ``root``, by the ``<filename>`` or
    ``<path>`` base name or the XML's stem with a common image extension.

    What is done with each defect (each is also a :class:`FormatWarning`):

    - zero-area or inverted box, non-numeric box, empty class name: box skipped;
    - box partly outside the image: clipped; entirely outside: skipped;
    - class name with stray whitespace: stripped (warned once per distinct name);
    - unknown class (only when ``class_names`` is given): box skipped;
    - ``<size>`` disagreeing with the image: the image's size is used;
    - image missing or unreadable: record skipped;
    - malformed, oversized or entity-declaring XML: file skipped.

    Args:
        root: the folder.
        class_names: the classes to keep, in label order; by default every name found,
            with those ``classes.txt`` or CVAT's ``labelmap.txt`` declare, sorted.

    Returns:
        A :class:`RecordSet`; records sorted by stem, labels indexing ``class_names``.
    """
    root = Path(root)
    reader = _Reader(root, class_names)
    parsed: list[_Parsed] = []
    for xml_path in reader.annotation_files():
        item = reader.parse_file(xml_path)
        if item is not None:
            parsed.append(item)
    if class_names is None:
        declared = _declared_classes(root)
        names = sorted({name for item in parsed for name in item.names} | set(declared))
    else:
        names = list(dict.fromkeys(name.strip() for name in class_names))
    index = {name: i for i, name in enumerate(names)}
    records = [_to_record(item, index) for item in parsed]
    splits = reader.read_splits({record.stem for record in records})
    return RecordSet(root, records, names, splits, reader.warnings.items)


# ----------------------------------------------------------------------------- writer


def voc_xml(record: Record, filename: str) -> bytes:
    """One ``Annotations/<stem>.xml`` in the layout LabelImg, CVAT and torchvision read.

    Coordinates are the house xyxy pixels as written (at most two decimals, no 1-based
    shift: :func:`read_voc` reads them back unchanged).
    """
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = filename
    size = ET.SubElement(root, "size")
    for tag, pixels in (("width", record.width), ("height", record.height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(pixels)
    ET.SubElement(root, "segmented").text = "0"
    for box, name in zip(record.boxes.tolist(), record.class_names, strict=True):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = name
        for tag, text in (("pose", "Unspecified"), ("truncated", "0"), ("difficult", "0")):
            ET.SubElement(obj, tag).text = text
        bndbox = ET.SubElement(obj, "bndbox")
        for tag, coord in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True):
            ET.SubElement(bndbox, tag).text = number_text(coord)
    ET.indent(root)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True)) + b"\n"


def voc_files(
    records: Sequence[Record],
    splits: Mapping[str, Sequence[str]] | None = None,
    class_names: Sequence[str] = (),
) -> Iterator[ExportFile]:
    """The files of a Pascal VOC folder holding ``records``.

    ``JPEGImages/<stem><ext>`` (the image as it is), ``Annotations/<stem>.xml``, with
    ``splits`` VOC's own split lists ``ImageSets/Main/<split>.txt`` (one stem a line), and
    with ``class_names`` a ``classes.txt`` (VOC has no class list: without it a class no
    box uses would be lost).

    Args:
        records: stems must be unique and safe as file names.
        splits: split name -> stems, e.g. ``{"train": [...], "val": [...]}``.
        class_names: every class, in label order.
    """
    if class_names:
        yield "classes.txt", "".join(f"{name}\n" for name in class_names).encode()
    for record in records:
        filename = f"{record.stem}{record.image_path.suffix.lower()}"
        yield f"JPEGImages/{filename}", record.image_path
        yield f"Annotations/{record.stem}.xml", voc_xml(record, filename)
    for split, stems in (splits or {}).items():
        yield f"ImageSets/Main/{split}.txt", "".join(f"{stem}\n" for stem in stems).encode()


__all__ = [
    "FormatWarning",
    "Record",
    "RecordSet",
    "VocDataset",
    "VocRecord",
    "VocWarning",
    "read_voc",
    "rename_classes",
    "voc_files",
    "voc_xml",
]
