"""Pure readers and writers of the annotation formats users bring (no Django).

Inside, boxes are ``xyxy`` float pixels; the readers return them so and the writers convert
them through ``inference.boxes``:

- :mod:`training.formats.voc`: Pascal VOC folders (reader);
- :mod:`training.formats.folders`: identity folders ``root/<person>/<image>`` (reader);
- :mod:`training.formats.yolo`: the YOLO txt layout (writer).
"""

from training.formats.voc import VocDataset, VocRecord, VocWarning, read_voc

__all__ = ["VocDataset", "VocRecord", "VocWarning", "read_voc"]
