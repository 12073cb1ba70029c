"""Pure readers and writers of the annotation formats users bring (no Django).

Inside, boxes are ``xyxy`` float pixels; the readers return them so and the writers convert
them through ``inference.boxes``. Every reader returns one :class:`RecordSet` (records,
classes, the folder's own split, a :class:`FormatWarning` per problem); every writer yields
``(path in the export, content)`` pairs that :func:`training.formats.archive.write_zip` packs:

- :mod:`training.formats.coco`: COCO JSON (reader, writer);
- :mod:`training.formats.yolo`: YOLO txt, Ultralytics/Roboflow/flat layouts (reader, writer);
- :mod:`training.formats.voc`: Pascal VOC folders (reader, writer);
- :mod:`training.formats.folders`: identity folders ``root/<person>/<image>`` (reader, writer);
- :mod:`training.formats.archive`: safe zip extraction for uploads, zip writing for exports.
"""

from collections.abc import Callable
from pathlib import Path

from training.formats.coco import read_coco
from training.formats.records import FormatWarning, Record, RecordSet, rename_classes
from training.formats.voc import VocDataset, VocRecord, VocWarning, read_voc
from training.formats.yolo import read_yolo

# The box formats a folder can be imported from, by the name commands and the API use.
READERS: dict[str, Callable[[Path], RecordSet]] = {
    "coco": read_coco,
    "voc": read_voc,
    "yolo": read_yolo,
}

__all__ = [
    "READERS",
    "FormatWarning",
    "Record",
    "RecordSet",
    "VocDataset",
    "VocRecord",
    "VocWarning",
    "read_coco",
    "read_voc",
    "read_yolo",
    "rename_classes",
]
