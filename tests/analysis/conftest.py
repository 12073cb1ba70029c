"""Fixtures for the error sheet: evaluations with error cases made directly (no evaluate
job), their images, classes and split assignments."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from tests.conftest import _user
from tests.images import jpeg_bytes
from training.splits import SPLIT_SCHEME
from webapp.accounts.models import Role
from webapp.analysis.models import ErrorCase, ErrorKind, ErrorTag, Evaluation
from webapp.images.ingest import ingest_image
from webapp.images.models import LabelClass, SplitAssignment

RED = "#e6194b"
GREEN = "#3cb44b"


@pytest.fixture
def reviewer(db: None) -> Any:
    return _user(Role.REVIEWER, username="rev")


@pytest.fixture
def second_labeler(db: None) -> Any:
    return _user(Role.LABELER, username="lab2")


@pytest.fixture
def detector(db: None) -> Any:
    """A detector version row (no file: the sheet only reads its evaluations)."""
    from training.models import ModelKind, ModelVersion

    return ModelVersion.objects.create(
        kind=ModelKind.DETECTOR, name="det", file="models/det.safetensors", sha256="d" * 64
    )


@pytest.fixture
def classes(dataset: Any) -> dict[str, LabelClass]:
    return {
        name: LabelClass.objects.create(dataset=dataset, name=name, color=color)
        for name, color in (("RBC", RED), ("WBC", GREEN))
    }


@pytest.fixture
def make_image(dataset: Any, labeler: Any) -> Any:
    """``make_image(seed, split="val")``: a distinct 200x150 image assigned to ``split``."""

    def make(seed: int, split: str = "val", width: int = 200, height: int = 150) -> Any:
        image = ingest_image(
            jpeg_bytes(width, height, seed=300 + seed),
            dataset=dataset,
            user=labeler,
            original_name=f"img-{seed}.jpg",
        )
        SplitAssignment.objects.create(image=image, scheme=SPLIT_SCHEME, split=split)
        return image

    return make


@pytest.fixture
def make_evaluation(dataset: Any, detector: Any) -> Any:
    """``make_evaluation(split="val", error_rate=0.1, ago=0, **fields)``."""

    def make(
        split: str = "val",
        error_rate: float | None = 0.1,
        ago: float = 0,
        model_version: Any = None,
        **fields: Any,
    ) -> Evaluation:
        return Evaluation.objects.create(
            model_version=model_version or detector,
            dataset=dataset,
            split=split,
            error_rate=error_rate,
            created_at=timezone.now() - timedelta(hours=ago),
            **fields,
        )

    return make


def add_case(evaluation: Evaluation, image: Any, key: float, **fields: Any) -> ErrorCase:
    """One error case; by default a missed RBC with its true box."""
    values: dict[str, Any] = {
        "kind": ErrorKind.MISSED,
        "label_class": "RBC",
        "true_box": [60, 40, 100, 80],
        "sample_key": key,
    }
    values.update(fields)
    return ErrorCase.objects.create(evaluation=evaluation, image=image, **values)


@pytest.fixture
def sheet_case(make_evaluation: Any, make_image: Any, classes: Any) -> Any:
    """An evaluation on val (error 10%) with 10 cases on two images, and two tags."""
    evaluation = make_evaluation(metrics={"f1": 0.9, "map50": 0.8})
    first, second = make_image(1), make_image(2)
    cases = []
    for i in range(10):
        image = first if i % 2 == 0 else second
        if i < 4:
            cases.append(add_case(evaluation, image, key=i / 10))
        elif i < 7:
            cases.append(
                add_case(
                    evaluation,
                    image,
                    key=i / 10,
                    kind=ErrorKind.WRONG_CLASS,
                    label_class="RBC",
                    predicted_class="WBC",
                    score=0.8 - i / 100,
                    iou=0.7,
                    predicted_box=[62, 42, 102, 84],
                )
            )
        else:
            cases.append(
                add_case(
                    evaluation,
                    image,
                    key=i / 10,
                    kind=ErrorKind.FALSE_POSITIVE,
                    label_class="",
                    predicted_class="WBC",
                    score=0.5,
                    true_box=None,
                    predicted_box=[10, 10, 50, 40],
                )
            )
    blurry = ErrorTag.objects.create(dataset=evaluation.dataset, name="blurry")
    dark = ErrorTag.objects.create(dataset=evaluation.dataset, name="dark")
    return {"evaluation": evaluation, "cases": cases, "blurry": blurry, "dark": dark}
