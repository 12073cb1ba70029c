"""Readers for annotation formats users bring; each returns boxes as xyxy float pixels."""

from training.formats.voc import (
    VocDataset,
    VocRecord,
    VocWarning,
    deterministic_split,
    read_voc,
)

__all__ = ["VocDataset", "VocRecord", "VocWarning", "deterministic_split", "read_voc"]
