"""Each tag's share of the errors and the ceiling it implies, against hand computation."""

from __future__ import annotations

import pytest

from tests.analysis.conftest import add_case
from training.models import ModelKind, ModelVersion
from webapp.analysis import sheet
from webapp.analysis.models import INCORRECTLY_LABELED, ErrorCaseTag, ErrorTag

pytestmark = pytest.mark.django_db


def tick(case, tag, user=None):
    ErrorCaseTag.objects.create(case=case, tag=tag, user=user)


def by_name(summary):
    return {t.name: t for t in summary.tags}


def test_shares_and_ceilings_match_the_hand_computation(sheet_case):
    evaluation, cases = sheet_case["evaluation"], sheet_case["cases"]
    blurry, dark = sheet_case["blurry"], sheet_case["dark"]
    for case in cases[:4]:
        tick(case, blurry)
    for case in cases[3:6]:  # case 3 is both blurry and dark
        tick(case, dark)
    summary = sheet.totals(evaluation, "all")
    rows = by_name(summary)
    assert summary.errors == 10 and summary.all_errors == 10
    # 4 of 10 blurry: share 0.4, ceiling 10% x (1 - 0.4) = 6%
    assert rows["blurry"].count == 4
    assert rows["blurry"].share == pytest.approx(0.4)
    assert rows["blurry"].ceiling == pytest.approx(0.06)
    # 3 of 10 dark: 10% x 0.7 = 7%
    assert (rows["dark"].count, rows["dark"].share) == (3, pytest.approx(0.3))
    assert rows["dark"].ceiling == pytest.approx(0.07)
    assert rows[INCORRECTLY_LABELED].count == 0
    assert rows[INCORRECTLY_LABELED].ceiling == pytest.approx(0.10)
    # overlapping tags: cases 0-5 have a tag, 6-9 none
    assert summary.untagged == 4
    assert rows["blurry"].sentence == (
        "Fixing every “blurry” error would lower validation error from 10.0% to at most 6.0%."
    )
    assert summary.measure == "1 − F1 at the working threshold"


def test_the_notes_example_great_cats(make_evaluation, make_image, dataset):
    """The notes: validation error 10%, 43 of 100 errors are great cats → at most 5.7%."""
    evaluation = make_evaluation(error_rate=0.10)
    image = make_image(1)
    cats = ErrorTag.objects.create(dataset=dataset, name="great cats")
    for i in range(100):
        case = add_case(evaluation, image, key=i / 100)
        if i < 43:
            tick(case, cats)
    row = by_name(sheet.totals(evaluation))["great cats"]
    assert row.share == pytest.approx(0.43)
    assert row.ceiling == pytest.approx(0.057)
    assert "from 10.0% to at most 5.7%" in row.sentence


def test_the_sample_scope_counts_the_100_lowest_keys_only(make_evaluation, make_image, dataset):
    evaluation = make_evaluation(split="test", error_rate=0.2)
    image = make_image(1, split="test")
    blurry = ErrorTag.objects.create(dataset=dataset, name="blurry")
    cases = [add_case(evaluation, image, key=(i * 37 % 150) / 150) for i in range(150)]
    by_key = sorted(cases, key=lambda c: c.sample_key)
    for case in by_key[:25]:  # in the sample
        tick(case, blurry)
    for case in by_key[120:150]:  # outside the sample
        tick(case, blurry)
    sample = sheet.totals(evaluation, "sample")
    everything = sheet.totals(evaluation, "all")
    assert (sample.errors, sample.all_errors) == (100, 150)
    assert by_name(sample)["blurry"].count == 25
    assert by_name(sample)["blurry"].share == pytest.approx(0.25)
    assert by_name(sample)["blurry"].ceiling == pytest.approx(0.2 * 0.75)
    assert by_name(sample)["blurry"].sentence.startswith(
        "Fixing every “blurry” error would lower test error from 20.0% to at most 15.0%"
    )
    assert everything.errors == 150
    assert by_name(everything)["blurry"].count == 55
    assert by_name(everything)["blurry"].share == pytest.approx(55 / 150)
    assert set(sheet.sample_ids(evaluation)) == {c.pk for c in by_key[:100]}


def test_no_error_rate_or_no_errors_gives_no_ceiling(make_evaluation, make_image, dataset):
    evaluation = make_evaluation(error_rate=None)
    row = by_name(sheet.totals(evaluation))[INCORRECTLY_LABELED]
    assert (row.count, row.share, row.ceiling) == (0, None, None)
    add_case(evaluation, make_image(1), key=0.5)
    row = by_name(sheet.totals(evaluation))[INCORRECTLY_LABELED]
    assert row.share == 0.0 and row.ceiling is None
    assert "no error rate" in row.sentence


def test_a_verifier_s_error_is_named_as_such(make_evaluation, dataset):
    verifier = ModelVersion.objects.create(
        kind=ModelKind.VERIFIER, name="v", file="models/v.safetensors", sha256="v" * 64
    )
    evaluation = make_evaluation(model_version=verifier, error_rate=0.05)
    assert sheet.totals(evaluation).measure == "the error rate at the verifier's threshold"


def test_the_totals_endpoint_answers_the_same_numbers(sheet_case, viewer_api):
    evaluation, cases, blurry = sheet_case["evaluation"], sheet_case["cases"], sheet_case["blurry"]
    for case in cases[:3]:
        tick(case, blurry)
    body = viewer_api.get(f"/api/v1/evaluations/{evaluation.pk}/totals/?scope=all").json()
    assert (body["errors"], body["untagged"], body["split"]) == (10, 7, "val")
    assert body["split_error"] == "validation error" and body["error_rate"] == pytest.approx(0.1)
    row = next(t for t in body["tags"] if t["name"] == "blurry")
    assert row["count"] == 3
    assert row["share"] == pytest.approx(0.3)
    assert row["ceiling"] == pytest.approx(0.07)
    assert [t["name"] for t in body["tags"]] == [INCORRECTLY_LABELED, "blurry", "dark"]
    bad = viewer_api.get(f"/api/v1/evaluations/{evaluation.pk}/totals/?scope=some")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid"
    assert viewer_api.get("/api/v1/evaluations/999999/totals/").status_code == 404


def test_the_incorrectly_labeled_column_exists_from_the_start(make_evaluation, dataset):
    assert not ErrorTag.objects.filter(dataset=dataset).exists()
    evaluation = make_evaluation()
    names = [t.name for t in sheet.totals(evaluation).tags]
    assert names == [INCORRECTLY_LABELED]
