"""Changing an image's human labels, and its review state: the one place both happen.

Every change of the human boxes (the API, the annotation page, the admin's bulk actions)
goes through :func:`apply_change`, which, in one transaction with the image row locked:

1. checks the caller's ``expected_version`` against ``Image.labels_version`` (a stale
   one is :class:`StaleLabels`, 409, and nothing is written: two people editing one image
   never silently overwrite each other),
2. validates every box before writing any (the error names the box by its index),
3. writes the boxes, deletes the model suggestions it resolved (accepted or rejected),
4. bumps ``labels_version`` and records a :class:`LabelChange` with the boxes before and
   after, who and when.

Review moves the image through new → labeled → reviewed, or back as needs_fix with a
comment the labeler sees (:func:`review`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Case, Count, QuerySet, Value, When
from django.utils import timezone

from training.models import ModelKind, ModelVersion
from webapp.accounts.models import Role, User
from webapp.images.models import (
    Box,
    BoxOrigin,
    Image,
    ImageStatus,
    LabelChange,
    LabelClass,
)
from webapp.jobs.errors import JobError

MAX_BOXES_PER_IMAGE = 5000


class LabelError(JobError):
    """A labeling request refused: 400 for bad boxes, 403 for roles, 404 for unknown ids."""

    def __init__(
        self, message: str, *, code: str = "invalid", status: int = 400, details: Any = None
    ) -> None:
        super().__init__(message, code=code, status=status, details=details)


class StaleLabels(LabelError):
    """The image's labels changed since the caller read them."""

    def __init__(self, image: Image, expected: int) -> None:
        last = image.label_changes.select_related("user").first()
        who = f" by {last.user}" if last and last.user else ""
        when = f" at {last.created_at:%H:%M:%S}" if last else ""
        super().__init__(
            f"Someone else changed these labels (version {image.labels_version}{who}{when}) "
            f"after you loaded version {expected}. Reload to see their changes; yours were "
            "not saved.",
            code="stale_labels",
            status=409,
            details={"version": image.labels_version, "expected": expected},
        )


@dataclass(frozen=True)
class BoxSpec:
    """A validated human box to write (xyxy pixels of the stored image)."""

    label_class: LabelClass
    x1: float
    y1: float
    x2: float
    y2: float
    suggested_by: ModelVersion | None = None
    suggested_score: float | None = None


def box_json(box: Box) -> dict[str, Any]:
    """A box as the API and the annotation page see it."""
    return {
        "id": box.pk,
        "label_class": box.label_class_id,
        "label": box.label_class.name,
        "color": box.label_class.color,
        "x1": round(box.x1, 2),
        "y1": round(box.y1, 2),
        "x2": round(box.x2, 2),
        "y2": round(box.y2, 2),
        "origin": box.origin,
        "score": None if box.score is None else round(box.score, 4),
        "model_version": box.model_version_id,
        "suggested_by": box.suggested_by_id,
        "suggested_score": None if box.suggested_score is None else round(box.suggested_score, 4),
    }


def _snapshot(image: Image) -> list[dict[str, Any]]:
    """The image's human boxes as compact JSON, for the change history."""
    rows = image.boxes.filter(origin=BoxOrigin.HUMAN).select_related("label_class").order_by("pk")
    return [
        {
            "label": b.label_class.name,
            "box": [round(b.x1, 2), round(b.y1, 2), round(b.x2, 2), round(b.y2, 2)],
            **({"suggested_by": b.suggested_by_id} if b.suggested_by_id else {}),
        }
        for b in rows
    ]


# ---------------------------------------------------------------------------- validation


def _number(raw: Any, index: int, name: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise LabelError(f"Box {index}: {name} must be a number.", details={"index": index})
    try:
        value = float(raw)
    except ValueError:
        raise LabelError(
            f"Box {index}: {name} must be a number, got {raw!r}.", details={"index": index}
        ) from None
    if not math.isfinite(value):
        raise LabelError(f"Box {index}: {name} must be finite.", details={"index": index})
    return value


def _label_class(classes: dict[int, LabelClass], raw: dict[str, Any], index: int) -> LabelClass:
    """The box's class by id (``label_class``) or by name (``label``), of the dataset."""
    wanted = raw.get("label_class")
    if wanted is None and isinstance(raw.get("label"), str):
        by_name = {c.name: c for c in classes.values()}
        if raw["label"] not in by_name:
            raise LabelError(
                f"Box {index}: the dataset has no class {raw['label']!r}.",
                details={"index": index, "classes": sorted(by_name)},
            )
        return by_name[raw["label"]]
    if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted not in classes:
        raise LabelError(
            f"Box {index}: label_class must be the id of one of the dataset's classes.",
            details={"index": index, "classes": sorted(classes)},
        )
    return classes[wanted]


def dataset_classes(image: Image) -> dict[int, LabelClass]:
    return {c.pk: c for c in image.dataset.classes.all()}


def _suggestion(raw: dict[str, Any], index: int) -> tuple[ModelVersion | None, float | None]:
    version_id = raw.get("suggested_by")
    if version_id is None:
        return None, None
    if isinstance(version_id, bool) or not isinstance(version_id, int):
        raise LabelError(f"Box {index}: suggested_by must be a model version id.")
    version = ModelVersion.objects.filter(pk=version_id, kind=ModelKind.DETECTOR).first()
    if version is None:
        raise LabelError(
            f"Box {index}: there is no detector version {version_id}.",
            details={"index": index},
        )
    score = raw.get("suggested_score")
    value = None if score is None else _number(score, index, "suggested_score")
    if value is not None and not 0.0 <= value <= 1.0:
        raise LabelError(f"Box {index}: suggested_score must be between 0 and 1.")
    return version, value


def validate_box(
    image: Image, raw: Any, index: int = 0, classes: dict[int, LabelClass] | None = None
) -> BoxSpec:
    """One box from a request: inside the image, x1 < x2, y1 < y2, finite, a known class.

    Raises:
        LabelError: naming the box by ``index`` and saying why.
    """
    if not isinstance(raw, dict):
        raise LabelError(f"Box {index}: expected an object with x1, y1, x2, y2 and a class.")
    x1, y1, x2, y2 = (_number(raw.get(k), index, k) for k in ("x1", "y1", "x2", "y2"))
    if not (x1 < x2 and y1 < y2):
        raise LabelError(
            f"Box {index}: needs x1 < x2 and y1 < y2 (got {x1:g}, {y1:g}, {x2:g}, {y2:g}).",
            details={"index": index},
        )
    if x1 < 0 or y1 < 0 or x2 > image.width or y2 > image.height:
        raise LabelError(
            f"Box {index}: ({x1:g}, {y1:g}, {x2:g}, {y2:g}) is not inside the "
            f"{image.width}×{image.height} image.",
            details={"index": index},
        )
    suggested_by, suggested_score = _suggestion(raw, index)
    label_class = _label_class(classes or dataset_classes(image), raw, index)
    return BoxSpec(label_class, x1, y1, x2, y2, suggested_by, suggested_score)


def validate_boxes(image: Image, raw: Any) -> list[BoxSpec]:
    """A list of boxes from a request, all validated before any is written."""
    if not isinstance(raw, list):
        raise LabelError("boxes must be a list.")
    if len(raw) > MAX_BOXES_PER_IMAGE:
        raise LabelError(f"At most {MAX_BOXES_PER_IMAGE} boxes per image.")
    classes = dataset_classes(image)
    return [validate_box(image, item, i, classes) for i, item in enumerate(raw)]


def parse_version(raw: Any, *, required: bool) -> int | None:
    """The labels version a request says it edited."""
    if raw is None:
        if required:
            raise LabelError(
                "version is required: send the labels version you loaded, so a change "
                "someone made meanwhile is not overwritten."
            )
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).isdigit():
        raise LabelError(f"version must be a whole number, got {raw!r}.")
    return int(raw)


# ---------------------------------------------------------------------------- changes


def _new_box(image: Image, spec: BoxSpec, user: User | None) -> Box:
    return Box(
        image=image,
        label_class=spec.label_class,
        x1=spec.x1,
        y1=spec.y1,
        x2=spec.x2,
        y2=spec.y2,
        origin=BoxOrigin.HUMAN,
        suggested_by=spec.suggested_by,
        suggested_score=spec.suggested_score,
        created_by=user,
    )


@dataclass(frozen=True)
class Change:
    """What one save does to an image's labels."""

    add: Sequence[BoxSpec] = ()
    update: dict[int, BoxSpec] | None = None  # human box id -> new values
    delete: Sequence[int] = ()  # human box ids
    replace_all: bool = False  # delete every human box first (PUT)
    resolve: Sequence[int] = ()  # model box ids accepted or rejected: deleted
    action: str = "edit"


def apply_change(
    image_id: int, change: Change, *, user: User | None, expected_version: int | None
) -> tuple[Image, list[Box]]:
    """Apply ``change`` atomically; returns the image (new version) and its human boxes.

    Raises:
        StaleLabels: ``expected_version`` is not the current one (nothing written).
        LabelError: a box id that is not one of the image's human boxes (404).
    """
    with transaction.atomic():
        image = Image.objects.select_for_update().select_related("dataset").get(pk=image_id)
        if expected_version is not None and expected_version != image.labels_version:
            raise StaleLabels(image, expected_version)
        before = _snapshot(image)
        humans = image.boxes.filter(origin=BoxOrigin.HUMAN)
        touched = set(change.delete) | set(change.update or {})
        missing = touched - set(humans.filter(pk__in=touched).values_list("pk", flat=True))
        if missing:
            raise LabelError(
                f"Image {image.pk} has no human box {min(missing)}.",
                code="unknown_box",
                status=404,
            )
        if change.replace_all:
            humans.delete()
        else:
            humans.filter(pk__in=change.delete).delete()
        for pk, spec in (change.update or {}).items():
            humans.filter(pk=pk).update(
                label_class=spec.label_class, x1=spec.x1, y1=spec.y1, x2=spec.x2, y2=spec.y2
            )
        Box.objects.bulk_create([_new_box(image, spec, user) for spec in change.add])
        image.boxes.filter(origin=BoxOrigin.MODEL, pk__in=change.resolve).delete()
        image.labels_version += 1
        Image.objects.filter(pk=image.pk).update(labels_version=image.labels_version)
        LabelChange.objects.create(
            image=image,
            version=image.labels_version,
            user=user,
            action=change.action,
            before=before,
            after=_snapshot(image),
        )
    boxes = list(
        image.boxes.filter(origin=BoxOrigin.HUMAN).select_related("label_class").order_by("pk")
    )
    return image, boxes


def replace_boxes(
    image: Image,
    raw_boxes: Any,
    *,
    user: User | None,
    version: int,
    resolve: Sequence[int] = (),
) -> tuple[Image, list[Box]]:
    """PUT: the image's human boxes become exactly ``raw_boxes`` (validated first)."""
    specs = validate_boxes(image, raw_boxes)
    ids = _model_box_ids(image, resolve)
    return apply_change(
        image.pk,
        Change(add=specs, replace_all=True, resolve=ids, action="edit"),
        user=user,
        expected_version=version,
    )


def _model_box_ids(image: Image, raw: Any) -> list[int]:
    """The image's suggestions (model boxes) among ``raw``. Ids already gone are skipped:
    a suggestion resolved by an earlier save (then undone and redone in the editor) is
    resolved already; ids of other images' boxes are never touched."""
    if not isinstance(raw, list | tuple) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in raw
    ):
        raise LabelError("resolved_suggestions must be a list of box ids.")
    found = image.boxes.filter(origin=BoxOrigin.MODEL, pk__in=raw).values_list("pk", flat=True)
    return sorted(found)


def accept_predictions(
    image: Image, version: ModelVersion, min_score: float, *, user: User | None
) -> int:
    """Turn ``version``'s predictions on ``image`` scoring at least ``min_score`` into human
    boxes that remember where they came from (the admin's bulk action); returns how many."""
    predictions = list(
        image.boxes.filter(origin=BoxOrigin.MODEL, model_version=version, score__gte=min_score)
        .select_related("label_class")
        .order_by("pk")
    )
    if not predictions:
        return 0
    specs = [BoxSpec(p.label_class, p.x1, p.y1, p.x2, p.y2, version, p.score) for p in predictions]
    apply_change(
        image.pk,
        Change(add=specs, resolve=[p.pk for p in predictions], action="accept_predictions"),
        user=user,
        expected_version=None,
    )
    return len(specs)


def merge_classes(source: LabelClass, target: LabelClass, *, user: User | None) -> int:
    """Move every box of ``source`` to ``target`` (same dataset) and delete ``source``.

    Each image whose labels change gets a new labels version and a history row, so an
    editor still showing the old class gets a 409 instead of writing it back. Returns the
    number of boxes moved.
    """
    with transaction.atomic():
        ids = list(
            Box.objects.filter(label_class=source, origin=BoxOrigin.HUMAN)
            .values_list("image_id", flat=True)
            .distinct()
        )
        images = {i.pk: i for i in Image.objects.select_for_update().filter(pk__in=ids)}
        before = {pk: _snapshot(image) for pk, image in images.items()}
        moved = Box.objects.filter(label_class=source).update(label_class=target)
        for pk, image in images.items():
            image.labels_version += 1
            Image.objects.filter(pk=pk).update(labels_version=image.labels_version)
            LabelChange.objects.create(
                image=image,
                version=image.labels_version,
                user=user,
                action="merge_classes",
                before=before[pk],
                after=_snapshot(image),
            )
        source.delete()
    return moved


# ---------------------------------------------------------------------------- review


REVIEW_ACTIONS = ("done", "approve", "needs_fix", "reopen")


def can_review(user: User | None) -> bool:
    return bool(user and user.effective_role in (Role.ADMIN, Role.REVIEWER))


def review(image: Image, action: str, *, user: User, comment: str = "") -> Image:
    """Move the image's review state.

    - ``done`` (a labeler finished it): labeled, with who and when;
    - ``approve`` (a reviewer): reviewed, with who and when;
    - ``needs_fix`` (a reviewer, with a comment the labeler sees): needs_fix;
    - ``reopen`` (a reviewer): back to labeled.

    Raises:
        LabelError: an unknown action, a reviewer action by someone who may not review
            (403), or needs_fix without a comment.
    """
    if action not in REVIEW_ACTIONS:
        raise LabelError(f"action must be one of {', '.join(REVIEW_ACTIONS)}, got {action!r}.")
    if action != "done" and not can_review(user):
        raise LabelError(
            "Only reviewers and admins may approve or send back labels.",
            code="permission_denied",
            status=403,
        )
    comment = comment.strip()
    if action == "needs_fix" and not comment:
        raise LabelError("Say what needs fixing: a comment is required with needs_fix.")
    now = timezone.now()
    fields: dict[str, Any]
    if action == "done":
        fields = {"status": ImageStatus.LABELED, "labeled_by": user, "labeled_at": now}
    elif action == "approve":
        fields = {"status": ImageStatus.REVIEWED, "reviewed_by": user, "reviewed_at": now}
        fields["review_comment"] = comment
    elif action == "needs_fix":
        fields = {"status": ImageStatus.NEEDS_FIX, "reviewed_by": user, "reviewed_at": now}
        fields["review_comment"] = comment
    else:
        fields = {"status": ImageStatus.LABELED, "review_comment": comment}
    Image.objects.filter(pk=image.pk).update(**fields)
    image.refresh_from_db()
    return image


# ---------------------------------------------------------------------------- queue


LABEL_QUEUE = (ImageStatus.NEEDS_FIX, ImageStatus.NEW, ImageStatus.PREDICTED)
QUEUE_MODES = ("label", "review")


def queue(dataset_id: int, mode: str) -> QuerySet[Image]:
    """The images waiting in ``mode``'s queue, in the order they are served.

    ``label``: needs_fix first (a reviewer is waiting for them), then new and predicted,
    oldest first. ``review``: labeled, the longest-waiting first.
    """
    images = Image.objects.filter(dataset_id=dataset_id)
    if mode == "review":
        return images.filter(status=ImageStatus.LABELED).order_by("labeled_at", "pk")
    first = Case(When(status=ImageStatus.NEEDS_FIX, then=Value(0)), default=Value(1))
    return images.filter(status__in=LABEL_QUEUE).order_by(first, "pk")


def next_in_queue(dataset_id: int, mode: str, *, current: int | None = None) -> Image | None:
    """The image to serve next: the queue's first, or the one after ``current`` in it (so
    skipping an image moves on, and finishing one, which leaves the queue, serves the next).
    """
    ids = list(queue(dataset_id, mode).values_list("pk", flat=True)[:QUEUE_SCAN])
    if current in ids:
        later = ids[ids.index(current) + 1 :] + ids[: ids.index(current)]
        ids = later
    elif current is not None:
        ids = [i for i in ids if i > current] + [i for i in ids if i <= current]
    return Image.objects.filter(pk=ids[0]).first() if ids else None


# A queue is scanned this far for the next image; a dataset with more waiting images
# serves them in later passes (each finished image leaves the queue).
QUEUE_SCAN = 20_000


def queue_counts(dataset_id: int) -> dict[str, int]:
    """How many images of ``dataset_id`` are in each review state."""
    counts = {status.value: 0 for status in ImageStatus}
    rows = Image.objects.filter(dataset_id=dataset_id).values("status").annotate(n=Count("id"))
    for row in rows:
        counts[row["status"]] = row["n"]
    return counts
