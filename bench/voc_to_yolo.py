"""Turn a Pascal VOC folder into the YOLO txt layout Ultralytics reads (bench glue and CLI).

The app exports no YOLO layout; this exists so the Ultralytics baseline trains on exactly
the records our reader produces (same defects dropped, same class order), split either as
the authors split the folder (``ImageSets/Main``) or, for a folder without one, as the app's
VOC importer splits it (``training.splits.deterministic_split`` with an explicit seed), and
optionally with classes merged (face_mask's three mask classes -> ``face``). The files are
written by ``training.formats.yolo.write_yolo_layout``.

Layout written under ``out``::

    images/{train,val,test}/<stem>.jpg   symlinks to the original images
    labels/{train,val,test}/<stem>.txt   one "class cx cy w h" line per box, relative to the image
    data.yaml                            absolute path, split folders, names in read_voc's order

Usage::

    .venv/bin/python -m bench.voc_to_yolo ../shared/data/bccd /tmp/bccd_yolo
    .venv/bin/python -m bench.voc_to_yolo ../shared/data/face_mask /tmp/faces_yolo \
        --split-seed 0 --merge with_mask=face --merge without_mask=face \
        --merge mask_weared_incorrect=face --drop-duplicates
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from training.formats.voc import VocDataset, read_voc, rename_classes
from training.formats.yolo import write_yolo_layout
from training.splits import SPLIT_NAMES, deterministic_split

__all__ = ["YoloLayout", "convert"]

SPLITS = SPLIT_NAMES


@dataclass(frozen=True)
class YoloLayout:
    """What :func:`convert` wrote.

    Attributes:
        root: the output folder.
        data_yaml: the dataset file to pass to Ultralytics (``data=``).
        class_names: label order, the one of ``read_voc`` (after any merge: sorted names).
        split_stems: split -> stems, in the authors' order (or the records' order for a
            deterministic split).
        dataset: the VOC read (classes merged), so callers reuse its records as ground truth.
        duplicates: stems left out because an earlier record has the same image bytes.
    """

    root: Path
    data_yaml: Path
    class_names: list[str]
    split_stems: dict[str, list[str]]
    dataset: VocDataset
    duplicates: list[str] = field(default_factory=list)


def drop_duplicate_images(dataset: VocDataset) -> tuple[VocDataset, list[str]]:
    """Keep the first record of each distinct image file (same bytes), in read order.

    The app's importer does the same (``ingest_image`` refuses bytes a dataset already has),
    so the boxes and split of a repeated photo are those of its first record; without this
    one photo could sit in train and test at once.

    Returns:
        The dataset without the repeats, and the stems left out.
    """
    seen: set[str] = set()
    kept, dropped = [], []
    for record in dataset.records:
        digest = hashlib.sha256(record.image_path.read_bytes()).hexdigest()
        if digest in seen:
            dropped.append(record.stem)
        else:
            seen.add(digest)
            kept.append(record)
    gone = set(dropped)
    splits = {k: [s for s in v if s not in gone] for k, v in dataset.splits.items()}
    return dataclasses.replace(dataset, records=kept, splits=splits), dropped


def _splits(dataset: VocDataset, voc_root: Path, split_seed: int | None) -> dict[str, list[str]]:
    if split_seed is not None:
        # The importer's call (webapp.images.importers.import_voc): a stem's split depends on
        # the stem and seed alone, so our test split is the app's test split.
        return deterministic_split([r.stem for r in dataset.records], seed=split_seed)
    missing = [s for s in SPLITS if not dataset.splits.get(s)]
    if missing:
        raise ValueError(
            f"{voc_root}: no authors' split(s) {missing} in ImageSets/Main "
            "(pass split_seed for the importer's deterministic split)"
        )
    return {s: list(dataset.splits[s]) for s in SPLITS}


def convert(
    voc_root: Path,
    out: Path,
    *,
    class_map: Mapping[str, str] | None = None,
    split_seed: int | None = None,
    drop_duplicates: bool = False,
) -> YoloLayout:
    """Write the YOLO layout of ``voc_root`` under ``out``.

    Args:
        voc_root: a VOC folder ``read_voc`` reads.
        out: where to write (created; stale label caches removed).
        class_map: old class name -> new name, e.g. ``{"with_mask": "face", ...}``; names it
            leaves out keep their name.
        split_seed: None for the authors' ``ImageSets/Main`` split; a seed for
            ``training.splits.deterministic_split`` with its default 60/20/20 fractions,
            the split the app's importer gives a folder without one (seed 0).
        drop_duplicates: leave out records whose image bytes repeat an earlier record's, as
            the app's importer does (:func:`drop_duplicate_images`).

    Raises:
        ValueError: no authors' split (and no ``split_seed``), or an unknown class to merge.
    """
    dataset = read_voc(voc_root)
    if class_map:
        dataset = rename_classes(dataset, class_map)
    duplicates: list[str] = []
    if drop_duplicates:
        dataset, duplicates = drop_duplicate_images(dataset)
    splits = _splits(dataset, voc_root, split_seed)
    by_stem = {r.stem: r for r in dataset.records}
    records = {split: [by_stem[stem] for stem in splits[split]] for split in SPLITS}
    data_yaml = write_yolo_layout(out, records, dataset.class_names)
    return YoloLayout(out, data_yaml, list(dataset.class_names), splits, dataset, duplicates)


def _class_map(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            raise SystemExit(f"--merge takes OLD=NEW, got {pair!r}")
        out[old] = new
    return out


def main() -> None:
    """CLI: ``python -m bench.voc_to_yolo VOC_ROOT OUT [--split-seed N] [--merge OLD=NEW]``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("voc_root", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--split-seed", type=int, help="importer split seed (default: authors)")
    parser.add_argument("--merge", action="append", default=[], help="OLD=NEW class rename")
    parser.add_argument("--drop-duplicates", action="store_true", help="as the importer does")
    args = parser.parse_args()
    layout = convert(
        args.voc_root,
        args.out,
        class_map=_class_map(args.merge),
        split_seed=args.split_seed,
        drop_duplicates=args.drop_duplicates,
    )
    counts = {s: len(v) for s, v in layout.split_stems.items()}
    print(f"wrote {layout.data_yaml} (classes {layout.class_names}, images {counts})")
    if layout.duplicates:
        print(f"left out repeated images: {layout.duplicates}")


if __name__ == "__main__":
    main()
