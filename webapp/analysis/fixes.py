"""Fixes that flow back from an evaluation, and what changed when it is run again.

A *fix* is a change of an image's human labels (a :class:`LabelChange`, which the labeling
app records for every change) on an image of the evaluation, made after the evaluation
was created. The notes ("Cleaning up incorrectly labeled data") ask for the same cleaning
on validation and test, so they keep coming from one distribution: the sheet shows how
many fixes touched each split of the dataset (under the one split scheme) and offers the
other split's images for the same review (:func:`split_review`).

Re-evaluating after fixes: :func:`previous_evaluation` finds the last evaluation of the
same model version on the same dataset and split, and :func:`compare` puts their numbers
side by side.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Max, OuterRef, Q, QuerySet, Subquery

from training.splits import SPLIT_SCHEME
from webapp.analysis.models import ErrorCase, Evaluation
from webapp.images.models import Image, LabelChange, Split, SplitAssignment

MAX_LISTED_FIXES = 200


def _split_of(image_ref: str = "image") -> Subquery:
    """The image's split under the scheme, as a subquery on ``image_ref``."""
    rows = SplitAssignment.objects.filter(image=OuterRef(image_ref), scheme=SPLIT_SCHEME)
    return Subquery(rows.values("split")[:1])


def evaluation_images(evaluation: Evaluation) -> QuerySet[Image]:
    """The images an evaluation covered: its split's images, and those of its cases."""
    in_split = Q(splits__scheme=SPLIT_SCHEME, splits__split=evaluation.split)
    of_cases = Q(error_cases__evaluation=evaluation)
    pairs = ErrorCase.objects.filter(evaluation=evaluation, other_image__isnull=False)
    other = Q(pk__in=pairs.values("other_image"))
    return Image.objects.filter(
        Q(dataset_id=evaluation.dataset_id) & (in_split | of_cases | other)
    ).distinct()


def fixes(evaluation: Evaluation) -> QuerySet[LabelChange]:
    """The label changes made on the evaluation's images since it was created, newest
    first."""
    ids = evaluation_images(evaluation).values("pk")
    return (
        LabelChange.objects.filter(image_id__in=ids, created_at__gt=evaluation.created_at)
        .select_related("image", "user")
        .order_by("-created_at", "-pk")
    )


def summarize_boxes(boxes: Any) -> str:
    """A snapshot of boxes in words: "3 boxes: RBC ×2, WBC"."""
    if not isinstance(boxes, list) or not boxes:
        return "no boxes"
    names = Counter(str(b.get("label", "?")) if isinstance(b, dict) else "?" for b in boxes)
    parts = [name if n == 1 else f"{name} ×{n}" for name, n in sorted(names.items())]
    return f"{len(boxes)} box{'es' if len(boxes) != 1 else ''}: {', '.join(parts)}"


@dataclass(frozen=True)
class Fix:
    change: LabelChange
    before: str
    after: str


def listed_fixes(evaluation: Evaluation, limit: int = MAX_LISTED_FIXES) -> list[Fix]:
    """The newest fixes with their boxes before and after in words."""
    return [
        Fix(c, summarize_boxes(c.before), summarize_boxes(c.after))
        for c in fixes(evaluation)[:limit]
    ]


@dataclass(frozen=True)
class SplitFixes:
    split: str
    label: str
    images: int  # images of the dataset in the split
    fixes: int  # label changes since the evaluation
    images_fixed: int


def fixes_per_split(evaluation: Evaluation) -> list[SplitFixes]:
    """For every split of the dataset: how many label changes since the evaluation, on how
    many of its images."""
    changes = (
        LabelChange.objects.filter(
            image__dataset_id=evaluation.dataset_id, created_at__gt=evaluation.created_at
        )
        .annotate(split=_split_of())
        .values("split")
        .annotate(n=Count("id"), images=Count("image", distinct=True))
    )
    by_split = {row["split"]: row for row in changes}
    sizes = dict(
        SplitAssignment.objects.filter(image__dataset_id=evaluation.dataset_id, scheme=SPLIT_SCHEME)
        .values("split")
        .annotate(n=Count("id"))
        .values_list("split", "n")
    )
    rows = []
    for value, label in Split.choices:
        found = by_split.get(value, {})
        rows.append(
            SplitFixes(
                split=value,
                label=str(label),
                images=sizes.get(value, 0),
                fixes=found.get("n", 0),
                images_fixed=found.get("images", 0),
            )
        )
    return rows


def other_splits(split: str) -> list[str]:
    """Where the same cleaning must happen too: validation ↔ test (the notes); from a
    training split, both."""
    if split == Split.VAL:
        return [Split.TEST.value]
    if split == Split.TEST:
        return [Split.VAL.value]
    return [Split.VAL.value, Split.TEST.value]


def latest_evaluation_on(evaluation: Evaluation, split: str) -> Evaluation | None:
    """The newest evaluation of the same model version and dataset on ``split``."""
    return (
        Evaluation.objects.filter(
            model_version_id=evaluation.model_version_id,
            dataset_id=evaluation.dataset_id,
            split=split,
        )
        .order_by("-created_at", "-pk")
        .first()
    )


def images_fixed(evaluation: Evaluation, split: str) -> int:
    """How many of ``split``'s images had their labels changed since ``evaluation``."""
    changed = LabelChange.objects.filter(
        image__dataset_id=evaluation.dataset_id,
        image__splits__scheme=SPLIT_SCHEME,
        image__splits__split=split,
        created_at__gt=evaluation.created_at,
    )
    return changed.values("image").distinct().count()


def split_review(evaluation: Evaluation, split: str) -> tuple[QuerySet[Image], Evaluation | None]:
    """The images of ``split`` to review the same way, most suspect first.

    Each image carries ``fixes`` (label changes since ``evaluation``) and ``suspicion`` (its
    highest label-error score in the newest evaluation of the same model on that split, if
    there is one). Images not yet fixed come before fixed ones.
    """
    there = latest_evaluation_on(evaluation, split)
    images = Image.objects.filter(
        dataset_id=evaluation.dataset_id, splits__scheme=SPLIT_SCHEME, splits__split=split
    )
    fixed = Count("label_changes", filter=Q(label_changes__created_at__gt=evaluation.created_at))
    images = images.annotate(fixes=fixed)
    if there is not None:
        cases = ErrorCase.objects.filter(evaluation=there, image=OuterRef("pk"))
        worst = cases.values("image").annotate(m=Max("label_error_score")).values("m")
        images = images.annotate(suspicion=Subquery(worst[:1]))
        return images.order_by("fixes", "-suspicion", "pk"), there
    return images.order_by("fixes", "pk"), None


# ---------------------------------------------------------------------------- re-evaluation


def previous_evaluation(evaluation: Evaluation) -> Evaluation | None:
    """The last evaluation before this one of the same model version, dataset and split."""
    earlier = Evaluation.objects.filter(
        model_version_id=evaluation.model_version_id,
        dataset_id=evaluation.dataset_id,
        split=evaluation.split,
    ).filter(
        Q(created_at__lt=evaluation.created_at)
        | Q(created_at=evaluation.created_at, pk__lt=evaluation.pk)
    )
    return earlier.order_by("-created_at", "-pk").first()


def next_evaluation(evaluation: Evaluation) -> Evaluation | None:
    """The first evaluation after this one of the same model version, dataset and split."""
    later = Evaluation.objects.filter(
        model_version_id=evaluation.model_version_id,
        dataset_id=evaluation.dataset_id,
        split=evaluation.split,
    ).filter(
        Q(created_at__gt=evaluation.created_at)
        | Q(created_at=evaluation.created_at, pk__gt=evaluation.pk)
    )
    return later.order_by("created_at", "pk").first()


# Names of numbers where less is better; every other metric is better higher.
LOWER_IS_BETTER = ("error", "false", "eer", "far", "frr", "loss", "errors", "missed")


@dataclass(frozen=True)
class MetricRow:
    name: str
    old: float | None
    new: float | None

    @property
    def delta(self) -> float | None:
        return None if self.old is None or self.new is None else self.new - self.old

    @property
    def better(self) -> bool | None:
        """Whether the new number is an improvement (None: unchanged or not comparable)."""
        delta = self.delta
        if delta is None or abs(delta) < 1e-12:
            return None
        lower = any(word in self.name.lower() for word in LOWER_IS_BETTER)
        return delta < 0 if lower else delta > 0


def _numbers(evaluation: Evaluation) -> dict[str, float]:
    """The evaluation's scalar numbers: error rate, errors, and the top-level metrics."""
    found: dict[str, float] = {}
    if evaluation.error_rate is not None:
        found["error rate"] = float(evaluation.error_rate)
    found["errors"] = float(evaluation.cases.count())
    metrics = evaluation.metrics if isinstance(evaluation.metrics, dict) else {}
    for key, value in metrics.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            found[str(key)] = float(value)
    return found


def compare(old: Evaluation, new: Evaluation) -> list[MetricRow]:
    """The two evaluations' numbers side by side (every scalar either one has)."""
    before, after = _numbers(old), _numbers(new)
    names = list(dict.fromkeys([*after, *before]))
    return [MetricRow(n, before.get(n), after.get(n)) for n in names]
