"""Build and report a dataset's data-mismatch splits (the Django side of :mod:`training.splits`).

:func:`build_splits` reads the dataset's images, their stored splits, their people (faces
datasets) and their perceptual hashes, asks :func:`training.splits.assign_splits` where each
goes, and writes the answer in one transaction with the dataset row locked, so two builds
never assign the same new image twice. Everything is checked before the first write.

Perceptual hashes are cached per image content in the file storage,
``phash/<PHASH_VERSION>/<sha[:2]>/<sha256>.txt`` (16 hex digits), beside the
content-addressed images and thumbnails: the hash is a function of the bytes, so the cache
never goes stale, and a new algorithm gets a new folder. They are computed from the
stored thumbnail (320 px, about 1 ms each) when there is one, else from the image.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from inference.phash import PHASH_VERSION, phash_bytes
from training.splits import (
    ALL_SPLITS,
    SPLIT_SCHEME,
    DuplicateGroup,
    Problem,
    SizeRequest,
    SplitError,
    SplitItem,
    SplitResult,
    assign_splits,
    audit_splits,
)
from webapp.faces.models import Face
from webapp.images.models import Box, BoxOrigin, Dataset, Image, SplitAssignment, Task
from webapp.jobs.errors import JobError

logger = logging.getLogger(__name__)

BACKGROUND = "background"  # the class of an image without human boxes
# Long id lists in a report are cut here; their "count" says how many there are.
LIST_LIMIT = 500


@dataclass(frozen=True)
class SplitRequest:
    """What ``POST /api/v1/datasets/{id}/splits/`` asks for ("" = the dataset's target)."""

    target_source: str = ""
    sizes: SizeRequest = field(default_factory=SizeRequest)
    keep_existing: bool = True


# ------------------------------------------------------------------ perceptual hashes


def _cache_path(sha256: str) -> str:
    return f"phash/{PHASH_VERSION}/{sha256[:2]}/{sha256}.txt"


def _cached(sha256: str) -> int | None:
    try:
        with default_storage.open(_cache_path(sha256)) as handle:
            return int(handle.read().decode().strip(), 16)
    except (OSError, ValueError):
        return None


def _compute(image: Image) -> int | None:
    """The hash of the thumbnail (or the image); None when neither can be read."""
    for stored in (image.thumbnail, image.file):
        if not stored:
            continue
        try:
            with default_storage.open(stored.name) as handle:
                return phash_bytes(handle.read())
        except (OSError, ValueError) as exc:
            logger.warning("image %s: no perceptual hash from %s: %s", image.pk, stored.name, exc)
    return None


def image_phash(image: Image) -> int | None:
    """The image's perceptual hash, from the cache or computed (then cached)."""
    found = _cached(image.sha256)
    if found is not None:
        return found
    value = _compute(image)
    path = _cache_path(image.sha256)
    if value is not None and not default_storage.exists(path):
        # Two builds racing write the same 16 digits; storage renames the loser's copy.
        default_storage.save(path, ContentFile(f"{value:016x}".encode()))
    return value


def image_phashes(images: Iterable[Image]) -> dict[int, int | None]:
    """``{image id: hash or None}``."""
    return {image.pk: image_phash(image) for image in images}


# ---------------------------------------------------------------------- the items


def _images(dataset: Dataset) -> list[Image]:
    fields = ("id", "sha256", "source", "file", "thumbnail", "original_name")
    return list(Image.objects.filter(dataset=dataset).only(*fields).order_by("pk"))


def _stored_splits(dataset: Dataset) -> dict[int, str]:
    rows = SplitAssignment.objects.filter(image__dataset=dataset, scheme=SPLIT_SCHEME)
    return dict(rows.values_list("image_id", "split"))


def _people(dataset: Dataset) -> dict[int, tuple[str, ...]]:
    """Faces datasets: each image's people, so no person straddles two splits.

    A photo of several people gets all of them: it ties them together into one split.
    """
    if dataset.task != Task.FACES:
        return {}
    found: dict[int, set[int]] = defaultdict(set)
    rows = Face.objects.filter(image__dataset=dataset, subject__isnull=False)
    for image_id, subject_id in rows.values_list("image_id", "subject_id"):
        found[image_id].add(subject_id)
    return {i: tuple(f"subject:{s}" for s in sorted(people)) for i, people in found.items()}


def _items(
    images: list[Image],
    phashes: dict[int, int | None],
    stored: dict[int, str],
    people: dict[int, tuple[str, ...]],
) -> list[SplitItem]:
    return [
        SplitItem(
            key=str(image.pk),
            content_hash=image.sha256,
            source=image.source,
            groups=people.get(image.pk, ()),
            phash=phashes.get(image.pk),
            existing=stored.get(image.pk),
        )
        for image in images
    ]


# ---------------------------------------------------------------------- building


def _target(dataset: Dataset, images: list[Image], request: SplitRequest) -> str:
    """The target source, checked against the sources the images have."""
    sources = sorted({image.source for image in images})
    if not images:
        raise JobError("The dataset has no images to split.", code="empty_dataset", status=400)
    target = request.target_source or dataset.target_source
    if not target:
        raise JobError(
            "Say which source is the target (target_source): validation and test are "
            "drawn from it.",
            code="target_source_required",
            status=400,
            details={"sources": sources},
        )
    if target not in sources:
        raise JobError(
            f"No image of this dataset has the source {target!r}.",
            code="unknown_source",
            status=400,
            details={"sources": sources},
        )
    return target


def _assign(items: list[SplitItem], target: str, request: SplitRequest) -> SplitResult:
    try:
        return assign_splits(
            items, target, sizes=request.sizes, keep_existing=request.keep_existing
        )
    except SplitError as exc:
        raise JobError(exc.message, code=exc.code, status=400, details=exc.details) from exc


def _write(dataset: Dataset, result: SplitResult, stored: dict[int, str], target: str) -> None:
    """The new assignments, the moves and the target source (inside the transaction)."""
    new = [
        SplitAssignment(image_id=int(key), scheme=SPLIT_SCHEME, split=split)
        for key, split in result.splits.items()
        if int(key) not in stored
    ]
    # ignore_conflicts: an importer may have given an image its folder's split meanwhile;
    # that one stands (the next build reports it if it breaks a rule).
    SplitAssignment.objects.bulk_create(new, batch_size=5000, ignore_conflicts=True)
    moved: dict[str, list[int]] = defaultdict(list)
    for move in result.moved:
        moved[move.to_split].append(int(move.key))
    for split, ids in moved.items():
        rows = SplitAssignment.objects.filter(scheme=SPLIT_SCHEME, image_id__in=ids)
        rows.update(split=split)
    if dataset.target_source != target:
        Dataset.objects.filter(pk=dataset.pk).update(target_source=target)
        dataset.target_source = target


def build_splits(dataset: Dataset, request: SplitRequest) -> dict[str, Any]:
    """Build or extend the dataset's splits; the report of :func:`split_report` plus what
    this build did (``result``).

    Raises:
        JobError: 400 with a code (``empty_dataset``, ``target_source_required``,
            ``unknown_source``, ``invalid_sizes``, ``sizes_too_large``) before any write.
    """
    images = _images(dataset)
    _target(dataset, images, request)  # refuse early, before hashing anything
    phashes = image_phashes(images)  # slow I/O: outside the lock
    with transaction.atomic():
        dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
        images = _images(dataset)  # again, under the lock: uploads may have come meanwhile
        target = _target(dataset, images, request)
        phashes.update(image_phashes(i for i in images if i.pk not in phashes))
        stored = _stored_splits(dataset)
        result = _assign(_items(images, phashes, stored, _people(dataset)), target, request)
        _write(dataset, result, stored, target)
    report = split_report(dataset, phashes=phashes)
    report["result"] = _result_json(result, names={i.pk: i.original_name for i in images})
    return report


# ---------------------------------------------------------------------- reporting


def _limited(ids: list[int]) -> dict[str, Any]:
    return {"count": len(ids), "images": ids[:LIST_LIMIT]}


def _problem_json(problem: Problem) -> dict[str, Any]:
    ids = [int(k) for k in problem.keys]
    return {
        "code": problem.code,
        "message": problem.message,
        "splits": list(problem.splits),
        **_limited(ids),
    }


def _result_json(result: SplitResult, names: dict[int, str]) -> dict[str, Any]:
    moves = [
        {
            "image": int(m.key),
            "name": names.get(int(m.key), ""),
            "from": m.from_split,
            "to": m.to_split,
        }
        for m in result.moved
    ]
    return {
        "sizes": {
            "val": result.sizes.val,
            "test": result.sizes.test,
            "train_val": result.sizes.train_val,
            "target_images": result.sizes.target_items,
            "all_images": result.sizes.all_items,
            "rule": result.sizes.rule,
        },
        "added": result.added,
        "moved": {"count": len(moves), "images": moves[:LIST_LIMIT]},
        "left_out": [_problem_json(p) for p in result.left_out],
    }


def _group_json(group: DuplicateGroup, images: dict[int, Image]) -> dict[str, Any]:
    members = [images[int(k)] for k in group.keys]
    return {
        "kind": group.kind,
        "max_distance": group.max_distance,
        "splits": list(group.splits),
        "images": [{"id": i.pk, "name": i.original_name, "source": i.source} for i in members],
    }


def _class_counts(dataset: Dataset) -> dict[int, Counter[str]]:
    """Per image: its human boxes per class name."""
    boxes: dict[int, Counter[str]] = defaultdict(Counter)
    rows = Box.objects.filter(image__dataset=dataset, origin=BoxOrigin.HUMAN)
    for image_id, name in rows.values_list("image_id", "label_class__name"):
        boxes[image_id][name] += 1
    return boxes


def _counts(
    dataset: Dataset, images: list[Image], stored: dict[int, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(splits, unassigned)``: images, per-class images and boxes, and people, per split
    and source."""
    boxes = _class_counts(dataset)
    people = _people(dataset)
    table: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in ALL_SPLITS}
    unassigned: Counter[str] = Counter()
    seen_people: dict[tuple[str, str], set[str]] = defaultdict(set)
    for image in images:
        split = stored.get(image.pk)
        if split is None:
            unassigned[image.source] += 1
            continue
        cell = table[split].setdefault(image.source, {"images": 0, "classes": {}})
        cell["images"] += 1
        for name, count in (boxes.get(image.pk) or Counter({BACKGROUND: 0})).items():
            row = cell["classes"].setdefault(name, {"images": 0, "boxes": 0})
            row["images"] += 1
            row["boxes"] += count
        seen_people[(split, image.source)].update(people.get(image.pk, ()))
    splits: dict[str, Any] = {}
    for split, sources in table.items():
        if dataset.task == Task.FACES:
            for source, cell in sources.items():
                cell["people"] = len(seen_people[(split, source)])
        total = sum(cell["images"] for cell in sources.values())
        splits[split] = {"images": total, "sources": dict(sorted(sources.items()))}
    return splits, {"images": sum(unassigned.values()), "sources": dict(sorted(unassigned.items()))}


def split_report(dataset: Dataset, phashes: dict[int, int | None] | None = None) -> dict[str, Any]:
    """The dataset's stored splits: counts per split × source × class, the duplicate
    groups, and what breaks the rules under its target source.

    Counts per class are images with at least one human box of it (and their boxes);
    images without human boxes count as ``background``. Faces datasets also count people.
    Perceptual hashes come from the cache (missing ones are computed, see the module).
    """
    images = _images(dataset)
    stored = _stored_splits(dataset)
    phashes = phashes if phashes is not None else image_phashes(images)
    items = _items(images, phashes, stored, _people(dataset))
    audit = audit_splits(items, dataset.target_source) if items else None
    by_id = {image.pk: image for image in images}
    splits, unassigned = _counts(dataset, images, stored)
    return {
        "dataset": dataset.pk,
        "scheme": SPLIT_SCHEME,
        "target_source": dataset.target_source,
        "sources": sorted({image.source for image in images}),
        "splits": splits,
        "unassigned": unassigned,
        "duplicate_groups": [_group_json(g, by_id) for g in audit.duplicate_groups]
        if audit
        else [],
        "violations": [_problem_json(p) for p in audit.violations] if audit else [],
        "unhashed": _limited([pk for pk, value in phashes.items() if value is None]),
    }
