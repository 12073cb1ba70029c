"""The registry: promote a version for a dataset, roll back, what serves; roles."""

from __future__ import annotations

import pytest

from training import registry
from training.models import ModelVersion, Promotion
from webapp.images.models import Dataset

pytestmark = pytest.mark.django_db


def copy_of(version, **fields):
    return ModelVersion.objects.create(
        kind=version.kind,
        name=fields.pop("name", "copy"),
        file=version.file.name,
        sha256=version.sha256,
        config=version.config,
        class_names=version.class_names,
        **fields,
    )


def test_promote_then_roll_back(tiny_detector, dataset, admin_user):
    new = copy_of(tiny_detector, dataset=dataset)
    assert registry.serving(dataset) == tiny_detector  # nothing promoted: the active one
    registry.promote(new, dataset, user=admin_user)
    assert registry.serving(dataset) == new
    other = Dataset.objects.create(name="other")
    assert registry.serving(other) == tiny_detector  # promotion is per dataset
    registry.promote(tiny_detector, dataset, user=admin_user)
    registry.rollback(dataset, "detector", user=admin_user)
    assert registry.serving(dataset) == new
    assert Promotion.objects.filter(dataset=dataset).count() == 3  # the history is kept


def test_nothing_to_roll_back_and_wrong_kind(tiny_detector, tiny_verifier, dataset, admin_user):
    with pytest.raises(registry.RegistryError) as caught:
        registry.rollback(dataset, "detector", user=admin_user)
    assert caught.value.status == 409
    with pytest.raises(registry.RegistryError, match="cannot serve"):
        registry.promote(tiny_verifier, dataset, user=admin_user)
