"""A dataset's label classes, and the one colour each class name has everywhere.

A class keeps its colour across datasets ("RBC" is the same red in every dataset that has
it), so a labeler moving between datasets never relearns the colours. A name seen for the
first time takes the palette colour least used in its dataset (ties broken by the name's
hash, so the choice does not depend on the order classes were created in).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable

from django.db import transaction

from webapp.images.models import Dataset, LabelClass

# Distinct on white and on photos (Sasha Trubetskoy's list, the first 14).
PALETTE = (
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#42d4f4",
    "#f032e6",
    "#bfef45",
    "#fabed4",
    "#469990",
    "#dcbeff",
    "#9a6324",
    "#800000",
    "#aaffc3",
)


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def color_for(dataset: Dataset, name: str) -> str:
    """The colour for a new class ``name`` in ``dataset``."""
    key = _name_key(name)
    for other, color in LabelClass.objects.values_list("name", "color").order_by("pk"):
        if _name_key(other) == key:
            return str(color)
    used = Counter(dataset.classes.values_list("color", flat=True))
    start = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % len(PALETTE)
    ordered = PALETTE[start:] + PALETTE[:start]
    return min(ordered, key=lambda color: used[color])


def ensure_classes(dataset: Dataset, names: Iterable[str]) -> dict[str, LabelClass]:
    """``{name: LabelClass}`` for every class of ``dataset``, creating the missing ``names``."""
    with transaction.atomic():
        existing = {c.name: c for c in dataset.classes.all()}
        for name in names:
            if name not in existing:
                existing[name], _ = LabelClass.objects.get_or_create(
                    dataset=dataset, name=name, defaults={"color": color_for(dataset, name)}
                )
    return existing
