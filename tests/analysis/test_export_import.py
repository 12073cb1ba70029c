"""CSV import: tags and comments made offline come back, with a report of what did not."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.analysis.conftest import add_case
from webapp.analysis.models import ErrorCase, ErrorCaseTag, ErrorTag

pytestmark = pytest.mark.django_db


def export_csv(client, evaluation):
    answer = client.get(f"/api/v1/evaluations/{evaluation.pk}/export/?format=csv&scope=all")
    assert answer.status_code == 200
    reader = csv.DictReader(io.StringIO(answer.content.decode()))
    return list(reader.fieldnames or []), list(reader)


def to_csv(header, rows):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header)
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return out.getvalue().encode("utf-8-sig")  # as Excel saves "CSV UTF-8"


def upload(client, evaluation, data, **extra):
    return client.post(
        f"/api/v1/evaluations/{evaluation.pk}/import/",
        {"file": SimpleUploadedFile("sheet.csv", data, content_type="text/csv"), **extra},
        format="multipart",
    )


def ticks(evaluation):
    rows = ErrorCaseTag.objects.filter(case__evaluation=evaluation)
    return set(rows.values_list("case_id", "tag__name"))


def test_round_trip_applies_offline_ticks_and_comments(sheet_case, labeler_api, labeler):
    evaluation, cases = sheet_case["evaluation"], sheet_case["cases"]
    ErrorCaseTag.objects.create(case=cases[2], tag=sheet_case["dark"])
    header, rows = export_csv(labeler_api, evaluation)
    unchanged = upload(labeler_api, evaluation, to_csv(header, rows))
    assert unchanged.status_code == 200
    report = unchanged.json()
    assert (report["rows"], report["matched"]) == (10, 10)
    assert (report["ticks_added"], report["ticks_removed"], report["comments_changed"]) == (0, 0, 0)
    assert report["unmatched"] == [] and report["conflicts"] == []

    by_id = {int(r["case"]): r for r in rows}
    by_id[cases[0].pk]["tag:blurry"] = "1"
    by_id[cases[1].pk]["tag:blurry"] = "x"
    by_id[cases[1].pk]["tag:incorrectly labeled"] = "yes"
    by_id[cases[2].pk]["tag:dark"] = "0"  # untick
    by_id[cases[3].pk]["comment"] = "Pitbull, blurry"
    by_id[cases[4].pk]["comment"] = "'=SUM(A1)"  # the export's formula guard, undone
    answer = upload(labeler_api, evaluation, to_csv(header, rows))
    assert answer.status_code == 200
    report = answer.json()
    assert (report["ticks_added"], report["ticks_removed"], report["comments_changed"]) == (3, 1, 2)
    assert ticks(evaluation) == {
        (cases[0].pk, "blurry"),
        (cases[1].pk, "blurry"),
        (cases[1].pk, "incorrectly labeled"),
    }
    fixed = ErrorCase.objects.get(pk=cases[3].pk)
    assert (fixed.comment, fixed.comment_version, fixed.updated_by) == (
        "Pitbull, blurry",
        1,
        labeler,
    )
    assert ErrorCase.objects.get(pk=cases[4].pk).comment == "=SUM(A1)"
    # Exported again, the file says what the sheet says.
    _, again = export_csv(labeler_api, evaluation)
    again_by_id = {int(r["case"]): r for r in again}
    assert again_by_id[cases[1].pk]["tag:incorrectly labeled"] == "1"
    assert again_by_id[cases[3].pk]["comment"] == "Pitbull, blurry"


def test_the_report_lists_rows_it_could_not_match(sheet_case, labeler_api, make_evaluation):
    evaluation, cases = sheet_case["evaluation"], sheet_case["cases"]
    other = make_evaluation(split="test")
    stranger = add_case(other, cases[0].image, key=0.5)
    header = ["case", "tag:blurry", "comment"]
    rows = [
        {"case": cases[0].pk, "tag:blurry": "1", "comment": ""},
        {"case": "abc", "tag:blurry": "1", "comment": ""},
        {"case": 987654, "tag:blurry": "1", "comment": ""},
        {"case": stranger.pk, "tag:blurry": "1", "comment": ""},
        {"case": cases[0].pk, "tag:blurry": "0", "comment": ""},
    ]
    report = upload(labeler_api, evaluation, to_csv(header, rows)).json()
    assert (report["rows"], report["matched"]) == (5, 1)
    assert [(u["row"], u["reason"]) for u in report["unmatched"]] == [
        (3, "not a case id"),
        (4, "no such error case"),
        (5, f"a case of evaluation {other.pk}, not of this one"),
        (6, "the same case as row 2"),
    ]
    assert ticks(evaluation) == {(cases[0].pk, "blurry")}
    assert not ErrorCaseTag.objects.filter(case=stranger).exists()


def test_an_unknown_tag_column_is_refused_or_created(sheet_case, labeler_api):
    evaluation, cases = sheet_case["evaluation"], sheet_case["cases"]
    data = to_csv(
        ["case", "tag:blurry", "tag:great cats"],
        [{"case": cases[0].pk, "tag:blurry": "1", "tag:great cats": "1"}],
    )
    refused = upload(labeler_api, evaluation, data)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "unknown_tag" and error["details"]["tags"] == ["great cats"]
    assert ticks(evaluation) == set()  # nothing written, not even the known column
    created = upload(labeler_api, evaluation, data, create_tags="1")
    assert created.status_code == 200 and created.json()["created_tags"] == ["great cats"]
    assert ErrorTag.objects.filter(dataset=evaluation.dataset, name="great cats").exists()
    assert ticks(evaluation) == {(cases[0].pk, "blurry"), (cases[0].pk, "great cats")}


def test_a_bad_file_is_refused_whole(sheet_case, labeler_api):
    evaluation, cases = sheet_case["evaluation"], sheet_case["cases"]
    good = {"case": cases[0].pk, "tag:blurry": "1"}
    bad = {"case": cases[1].pk, "tag:blurry": "maybe"}
    answer = upload(labeler_api, evaluation, to_csv(["case", "tag:blurry"], [good, bad]))
    assert answer.status_code == 400
    assert "Row 3" in answer.json()["error"]["message"]
    assert "maybe" in answer.json()["error"]["message"]
    assert ticks(evaluation) == set()  # the good row before it was not written either
    no_case = upload(labeler_api, evaluation, b"image,comment\n1,x\n")
    assert no_case.status_code == 400 and "case" in no_case.json()["error"]["message"]
    binary = upload(labeler_api, evaluation, b"\xff\xfe\x00bad")
    assert binary.status_code == 400
    missing = labeler_api.post(
        f"/api/v1/evaluations/{evaluation.pk}/import/", {}, format="multipart"
    )
    assert missing.status_code == 400


def test_a_comment_changed_on_the_sheet_since_the_export_is_not_overwritten(
    sheet_case, labeler_api, second_labeler
):
    from tests.conftest import token_client

    evaluation, case = sheet_case["evaluation"], sheet_case["cases"][0]
    header, rows = export_csv(labeler_api, evaluation)  # comment_version 0 in the file
    online = token_client(second_labeler).patch(
        f"/api/v1/error-cases/{case.pk}/",
        {"comment": "online", "comment_version": 0},
        format="json",
    )
    assert online.status_code == 200
    for row in rows:
        if int(row["case"]) == case.pk:
            row["comment"] = "offline"
            row["tag:dark"] = "1"
    report = upload(labeler_api, evaluation, to_csv(header, rows)).json()
    assert report["comments_changed"] == 0 and report["ticks_added"] == 1
    assert report["conflicts"] == [
        {
            "row": 2 + [int(r["case"]) for r in rows].index(case.pk),
            "case": case.pk,
            "reason": "the comment was changed on the sheet after the export",
            "their_comment": "online",
            "your_comment": "offline",
        }
    ]
    case.refresh_from_db()
    assert case.comment == "online"


def test_viewers_cannot_import(sheet_case, viewer_api):
    evaluation, case = sheet_case["evaluation"], sheet_case["cases"][0]
    data = to_csv(["case", "tag:blurry"], [{"case": case.pk, "tag:blurry": "1"}])
    answer = upload(viewer_api, evaluation, data)
    assert answer.status_code == 403
    assert ticks(evaluation) == set()


def test_the_page_form_imports_and_shows_the_report(sheet_case, client, labeler):
    evaluation, case = sheet_case["evaluation"], sheet_case["cases"][0]
    client.force_login(labeler)
    data = to_csv(
        ["case", "tag:dog"], [{"case": case.pk, "tag:dog": "1"}, {"case": 987654, "tag:dog": "1"}]
    )
    answer = client.post(
        f"/analysis/evaluations/{evaluation.pk}/sheet/import/",
        {"file": SimpleUploadedFile("offline.csv", data), "create_tags": "1"},
    )
    assert answer.status_code == 200
    page = answer.content.decode()
    assert "Imported offline.csv" in page and "1 of 2 rows matched" in page
    assert "no such error case" in page and "new column: dog" in page
    assert ticks(evaluation) == {(case.pk, "dog")}
