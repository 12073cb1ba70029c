"""Evaluation pages and the detector's model page: who sees the form, starting from the
page, the numbers and charts shown, and data escaped on the way."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.images import jpeg_bytes
from training.splits import SPLIT_SCHEME
from webapp.analysis.evaluate import check_request, evaluate_now
from webapp.analysis.models import Evaluation
from webapp.images.ingest import ingest_image
from webapp.images.models import Box, BoxOrigin, Dataset, LabelClass, SplitAssignment

pytestmark = pytest.mark.django_db
CARD = Path(__file__).resolve().parents[2] / "demo" / "models" / "detector-bccd.json"


@pytest.fixture
def cells(labeler: Any) -> Dataset:
    """Three val images with a few labelled cells (the tiny detector's classes)."""
    dataset = Dataset.objects.create(name="cells-pages")
    classes = {n: LabelClass.objects.create(dataset=dataset, name=n) for n in ("RBC", "WBC")}
    for seed in range(3):
        image = ingest_image(jpeg_bytes(128, 96, seed=seed), dataset=dataset, user=labeler)
        SplitAssignment.objects.create(image=image, scheme=SPLIT_SCHEME, split="val")
        for i, name in enumerate(("RBC", "WBC")):
            Box.objects.create(
                image=image,
                label_class=classes[name],
                x1=10 + 40 * i,
                y1=10,
                x2=40 + 40 * i,
                y2=40,
                origin=BoxOrigin.HUMAN,
            )
    return dataset


def _evaluated(version: Any, dataset: Dataset) -> Evaluation:
    return evaluate_now(check_request(version.pk, dataset.pk, "val"))


def test_the_list_shows_the_form_to_editors_only(client, viewer, labeler, cells, tiny_detector):
    url = f"/analysis/datasets/{cells.pk}/evaluations/"
    client.force_login(viewer)
    page = client.get(url).content.decode()
    assert "no-evaluations" in page and "evaluate-form" not in page
    client.force_login(labeler)
    page = client.get(url).content.decode()
    assert 'id="evaluate-form"' in page and f'value="{tiny_detector.pk}"' in page
    assert re.search(r'<option value="test" disabled>Test \(0 images\)', page)


def test_starting_from_the_page(client, viewer, labeler, cells, tiny_detector):
    start = f"/analysis/datasets/{cells.pk}/evaluations/start/"
    client.force_login(viewer)
    assert (
        client.post(start, {"model_version": tiny_detector.pk, "split": "val"}).status_code == 403
    )
    client.force_login(labeler)
    refused = client.post(start, {"model_version": tiny_detector.pk, "split": "test"}, follow=True)
    assert "has no images" in refused.content.decode() and not Evaluation.objects.exists()
    response = client.post(start, {"model_version": tiny_detector.pk, "split": "val"})
    evaluation = Evaluation.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/analysis/evaluations/{evaluation.pk}/"
    assert evaluation.job is not None and evaluation.job.kind == "evaluate"
    page = client.get(response["Location"]).content.decode()
    assert 'id="pending"' in page and 'http-equiv="refresh"' in page


def test_a_finished_detector_evaluation_page(client, viewer, cells, tiny_detector):
    evaluation = _evaluated(tiny_detector, cells)
    metrics = evaluation.metrics
    client.force_login(viewer)
    page = client.get(f"/analysis/evaluations/{evaluation.pk}/").content.decode()
    assert f'<dd id="map50">{metrics["map50"]:.3f}</dd>' in page
    assert f'<dd id="f1">{metrics["f1"]:.3f}</dd>' in page
    assert f'href="/analysis/evaluations/{evaluation.pk}/sheet/"' in page
    assert 'id="confusion"' in page and 'id="kinds"' in page
    # The heat-map shows the stored counts, row by row.
    table = page[page.index('id="confusion"') :]
    for label, row in zip(
        metrics["confusion_matrix"]["labels"], metrics["confusion_matrix"]["matrix"], strict=True
    ):
        cells_html = re.search(rf'<tr data-true="{label}">(.*?)</tr>', table).group(1)
        counts = [int(c) for c in re.findall(r">(\d+)</td>", cells_html)]
        assert counts == [*row, sum(row)]
    assert "innerHTML" not in page


def test_pages_escape_names_from_the_data(client, viewer, cells, tiny_detector):
    evaluation = Evaluation.objects.create(
        model_version=tiny_detector,
        dataset=cells,
        split="val",
        metrics={
            "map50": 0.5,
            "class_names": ["<b>rbc</b>"],
            "per_class": {"<b>rbc</b>": {"precision": 0.5, "recall": 0.5, "f1": 0.5}},
            "pr_curves": {"<b>rbc</b>": {"recall": [0, 0.5], "precision": [1, 0.5]}},
            "confusion_matrix": {
                "labels": ["<b>rbc</b>", "background"],
                "matrix": [[1, 1], [2, 0]],
            },
        },
    )
    client.force_login(viewer)
    page = client.get(f"/analysis/evaluations/{evaluation.pk}/").content.decode()
    assert "<b>rbc</b>" not in page and "&lt;b&gt;rbc&lt;/b&gt;" in page
    assert 'id="pr-b-rbc--b"' in page


def test_the_detector_model_page_shows_its_calibration_and_evaluations(
    client, viewer, cells, tiny_detector
):
    card = json.loads(CARD.read_text())["metrics"]
    # Training's validation curve of class 1, as train_detector stores it (by class index).
    card["val"]["pr_curves"] = {
        "1": {"recall": [0.1 * i for i in range(500)], "precision": [1.0] * 500}
    }
    tiny_detector.metrics = card  # the shipped detector's threshold and calibration
    tiny_detector.save(update_fields=["metrics"])
    client.force_login(viewer)
    url = f"/faces/models/{tiny_detector.pk}/"
    page = client.get(url).content.decode()
    assert f"{card['threshold']:.3f}" in page and "(calibrated, max_f1)" in page
    assert f'<dd id="val-map50">{card["val"]["map50"]:.3f}</dd>' in page
    assert f'<dd id="test-f1">{card["test"]["f1"]:.3f}</dd>' in page
    curves = 1 + len(card["score_calibration"]["per_class"])
    assert page.count('class="curve" id="calibration-') == curves and 'id="threshold-line"' in page
    assert page.count("<tr data-class=") == 3  # the per-class thresholds
    assert 'id="no-evaluations"' in page and 'id="pr-chart"' in page  # training's val curves
    assert 'id="pr-rbc"' in page and 'id="confusion"' not in page
    thinned = int(re.search(r'id="pr-rbc" points="[^"]*" data-count="(\d+)"', page).group(1))
    assert 100 < thinned <= 201  # thinned to about 200 points for the chart

    evaluation = _evaluated(tiny_detector, cells)
    page = client.get(url).content.decode()
    assert f'<tr data-evaluation="{evaluation.pk}" class="active-version">' in page
    assert 'id="confusion"' in page and f"/analysis/evaluations/{evaluation.pk}/" in page
    listing = client.get("/faces/models/").content.decode()
    assert 'id="detectors"' in listing and f'data-version="{tiny_detector.pk}"' in listing
    row = re.search(rf'<tr data-version="{tiny_detector.pk}".*?</tr>', listing, re.S).group(0)
    assert f"{card['val']['map50']:.3f}" in row and "<td>1</td>" in row  # one evaluation
