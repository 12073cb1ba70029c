"""A job's page summarises its result: images, boxes per class, links to review pages."""

from __future__ import annotations

import re

import pytest

from tests.images import jpeg_bytes
from webapp.images.ingest import ingest_image
from webapp.jobs import summaries
from webapp.jobs.models import Job
from webapp.jobs.runner import execute_job

pytestmark = pytest.mark.django_db


def test_a_detect_job_page_lists_images_and_boxes_per_class(
    client, labeler, dataset, tiny_detector
):
    hostile = '<svg onload="alert(1)">.jpg'
    images = [
        ingest_image(jpeg_bytes(160, 120, seed=s), dataset=dataset, user=labeler, original_name=n)
        for s, n in ((1, "cells-1.jpg"), (2, hostile))
    ]
    job = Job.objects.create(
        kind="detect",
        user=labeler,
        dataset=dataset,
        params={"image_ids": [i.pk for i in images], "min_confidence": 0.0},
    )
    execute_job(job.pk)
    job.refresh_from_db()
    assert job.status == "done", job.error
    per_class: dict[str, int] = {}
    for row in job.result["images"]:
        for p in row["predictions"]:
            per_class[p["label"]] = per_class.get(p["label"], 0) + 1
    total = sum(per_class.values())
    assert total > 0

    client.force_login(labeler)
    html = client.get(f"/jobs/{job.pk}/").content.decode()
    counts = re.sub(r"\s+", " ", re.search(r'id="summary-counts">(.*?)</p>', html, re.S)[1])
    assert f"2 images, {total} box" in counts
    table = re.search(r'id="summary-classes">(.*?)</table>', html, re.S)[1]
    for label, n in per_class.items():
        assert re.search(rf"{label}</td><td>{n}</td>", table), (label, n)
    for image in images:
        assert f'href="/images/{image.pk}/"' in html
    assert "&lt;svg onload=&quot;alert(1)&quot;&gt;.jpg" in html and hostile not in html
    # The raw JSON is there for those who want it, folded away.
    assert '<details class="card" id="raw-result">' in html
    assert "<details open" not in html


def test_an_upload_detect_job_lists_its_predictions(client, labeler, tiny_detector):
    from webapp.images import uploads

    entry = uploads.stash(jpeg_bytes(), name="street.jpg", field="image")
    job = Job.objects.create(
        kind="detect", user=labeler, params={"uploads": [entry], "min_confidence": 0.0}
    )
    execute_job(job.pk)
    job.refresh_from_db()
    predictions = job.result["predictions"]
    assert predictions
    client.force_login(labeler)
    html = client.get(f"/jobs/{job.pk}/").content.decode()
    table = re.search(r'id="summary-predictions">(.*?)</table>', html, re.S)[1]
    rows = re.findall(r"<tr><td>(\w+)</td><td>([\d.]+)</td>", table)
    shown = predictions[: summaries.MAX_IMAGE_ROWS]
    # floatformat:3 rounds to the nearest thousandth.
    assert [label for label, _ in rows] == [p["label"] for p in shown]
    assert [float(c) for _, c in rows] == pytest.approx([p["confidence"] for p in shown], abs=1e-3)
    if len(predictions) > len(shown):
        assert f"… and {len(predictions) - len(shown)} more box" in html
