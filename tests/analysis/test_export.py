"""The sheet's export: XLSX read back with openpyxl gives the totals' numbers, as numbers."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from openpyxl import load_workbook

from webapp.analysis import sheet
from webapp.analysis.models import INCORRECTLY_LABELED, ErrorCaseTag
from webapp.analysis.sheet import ensure_incorrectly_labeled

pytestmark = pytest.mark.django_db


@pytest.fixture
def tagged(sheet_case):
    cases, blurry, dark = sheet_case["cases"], sheet_case["blurry"], sheet_case["dark"]
    wrong = ensure_incorrectly_labeled(sheet_case["evaluation"].dataset)
    for case in cases[:4]:
        ErrorCaseTag.objects.create(case=case, tag=blurry)
    for case in cases[3:6]:
        ErrorCaseTag.objects.create(case=case, tag=dark)
    ErrorCaseTag.objects.create(case=cases[9], tag=wrong)
    cases[4].comment = '=HYPERLINK("http://evil")'  # must stay text, never a formula
    cases[4].save()
    cases[5].comment = "Pitbull"
    cases[5].save()
    return sheet_case


def export(client, evaluation, fmt, scope="all"):
    answer = client.get(f"/api/v1/evaluations/{evaluation.pk}/export/?format={fmt}&scope={scope}")
    assert answer.status_code == 200, answer.content[:300]
    return answer


def test_xlsx_rows_and_totals_read_back_with_the_same_numbers(tagged, viewer_api):
    evaluation, cases = tagged["evaluation"], tagged["cases"]
    answer = export(viewer_api, evaluation, "xlsx")
    assert answer["Content-Type"].startswith("application/vnd.openxmlformats")
    assert "attachment" in answer["Content-Disposition"]
    book = load_workbook(io.BytesIO(answer.content))
    assert book.sheetnames == ["errors", "totals"]

    rows: list[Any] = list(book["errors"].iter_rows(values_only=True))
    header, body = list(rows[0]), rows[1:]
    assert header[:4] == ["case", "image", "image_name", "labeling_url"]
    assert header[-2:] == ["comment", "comment_version"]
    tag_cols = [h for h in header if h.startswith("tag:")]
    assert tag_cols == [f"tag:{INCORRECTLY_LABELED}", "tag:blurry", "tag:dark"]
    assert len(body) == 10
    col = {name: i for i, name in enumerate(header)}
    by_case = {row[col["case"]]: row for row in body}
    wrong_class = by_case[cases[4].pk]
    assert wrong_class[col["score"]] == pytest.approx(cases[4].score)
    assert isinstance(wrong_class[col["score"]], float)
    assert isinstance(wrong_class[col["iou"]], float) and wrong_class[col["iou"]] == 0.7
    assert wrong_class[col["tag:dark"]] == 1 and isinstance(wrong_class[col["tag:dark"]], int)
    assert wrong_class[col["tag:blurry"]] == 0
    assert wrong_class[col["comment"]] == '=HYPERLINK("http://evil")'
    evil_row = 2 + [r[col["case"]] for r in body].index(cases[4].pk)
    assert book["errors"].cell(row=evil_row, column=col["comment"] + 1).data_type != "f"
    assert sum(r[col["tag:blurry"]] for r in body) == 4
    assert sum(r[col["tag:dark"]] for r in body) == 3
    link_cell = book["errors"].cell(row=2, column=col["labeling_url"] + 1)
    first = body[0]
    assert first[col["labeling_url"]] == f"http://testserver/label/images/{first[col['image']]}/"
    assert (
        link_cell.hyperlink is not None and link_cell.hyperlink.target == first[col["labeling_url"]]
    )

    totals: list[Any] = list(book["totals"].iter_rows(values_only=True))
    assert list(totals[0][:4]) == ["tag", "count", "share", "ceiling"]
    numbers = {row[0]: row[1:4] for row in totals[1:] if row[0]}
    expected = sheet.totals(evaluation, "all")
    for t in expected.tags:
        count, share, cap = numbers[t.name]
        assert count == t.count and isinstance(count, int)
        assert share == pytest.approx(t.share) and isinstance(share, float)
        assert cap == pytest.approx(t.ceiling)
    # by hand: blurry 4/10 -> 0.4, ceiling 0.1 * 0.6
    assert numbers["blurry"] == (4, pytest.approx(0.4), pytest.approx(0.06))
    assert numbers["(no tag)"][0] == 3  # cases 6, 7, 8
    assert numbers["error rate"][0] == pytest.approx(0.1)
    assert numbers["errors in scope"][0] == 10
    assert book["totals"].cell(row=2, column=3).number_format == "0.0%"


def test_csv_has_the_rows_with_tags_as_1_and_0(tagged, viewer_api):
    evaluation, cases = tagged["evaluation"], tagged["cases"]
    text = export(viewer_api, evaluation, "csv").content.decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 10
    row = {int(r["case"]): r for r in rows}
    assert row[cases[0].pk]["tag:blurry"] == "1" and row[cases[0].pk]["tag:dark"] == "0"
    assert row[cases[5].pk]["comment"] == "Pitbull"
    # A comment a spreadsheet would run as a formula is quoted in CSV.
    assert row[cases[4].pk]["comment"] == '\'=HYPERLINK("http://evil")'
    assert row[cases[4].pk]["kind"] == "wrong_class"
    assert row[cases[4].pk]["predicted_class"] == "WBC"


def test_the_sample_scope_exports_the_sample(make_evaluation, make_image, viewer_api):
    from tests.analysis.conftest import add_case

    evaluation = make_evaluation()
    image = make_image(1)
    cases = [add_case(evaluation, image, key=(i * 7 % 120) / 120) for i in range(120)]
    text = export(viewer_api, evaluation, "csv", scope="sample").content.decode()
    ids = {int(r["case"]) for r in csv.DictReader(io.StringIO(text))}
    assert ids == {c.pk for c in sorted(cases, key=lambda c: c.sample_key)[:100]}
    everything = export(viewer_api, evaluation, "csv", scope="all").content.decode()
    assert len(list(csv.DictReader(io.StringIO(everything)))) == 120


def test_a_bad_format_is_a_clear_400(tagged, viewer_api):
    evaluation = tagged["evaluation"]
    answer = viewer_api.get(f"/api/v1/evaluations/{evaluation.pk}/export/?format=pdf")
    assert answer.status_code == 400
    assert "xlsx" in answer.json()["error"]["message"]
