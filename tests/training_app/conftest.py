"""A small real detection dataset (the BCCD demo sample, with its splits) for training runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from webapp.images.importers import import_voc

DEMO = Path(__file__).resolve().parents[2] / "demo" / "bccd"


@pytest.fixture
def cells(db: None) -> Any:
    """24 BCCD photos with their boxes, split 60/20/20 by the importer."""
    return import_voc(DEMO, name="cells").dataset


def run_jobs() -> None:
    """Carry out every queued train job here, as workers would, until none is left."""
    from webapp.jobs.models import Job
    from webapp.jobs.runner import execute_job

    while True:
        queued = list(Job.objects.filter(kind="train", status="queued").order_by("pk"))
        if not queued:
            return
        for job in queued:
            execute_job(job.pk)
