"""The sheet's API: ticks and comments on a case, tag columns, roles, people at once."""

from __future__ import annotations

import pytest

from tests.conftest import token_client
from webapp.analysis.models import INCORRECTLY_LABELED, ErrorCase, ErrorCaseTag, ErrorTag
from webapp.analysis.sheet import ensure_incorrectly_labeled
from webapp.images.models import Dataset

pytestmark = pytest.mark.django_db


def url(case):
    return f"/api/v1/error-cases/{case.pk}/"


def ticks(case):
    return set(ErrorCaseTag.objects.filter(case=case).values_list("tag__name", flat=True))


def test_a_labeler_ticks_and_unticks_tags(sheet_case, labeler_api, labeler):
    case, blurry, dark = sheet_case["cases"][0], sheet_case["blurry"], sheet_case["dark"]
    answer = labeler_api.patch(url(case), {"add_tags": [blurry.pk, dark.pk]}, format="json")
    assert answer.status_code == 200
    assert answer.json()["tags"] == sorted([blurry.pk, dark.pk])
    assert ticks(case) == {"blurry", "dark"}
    assert ErrorCaseTag.objects.get(case=case, tag=blurry).user == labeler
    again = labeler_api.patch(url(case), {"add_tags": [blurry.pk]}, format="json")
    assert again.status_code == 200 and ticks(case) == {"blurry", "dark"}  # idempotent
    labeler_api.patch(url(case), {"remove_tags": [dark.pk]}, format="json")
    assert ticks(case) == {"blurry"}
    case.refresh_from_db()
    assert case.updated_by == labeler and case.updated_at is not None


def test_two_people_ticking_the_same_case_keep_both_ticks(sheet_case, labeler, second_labeler):
    case, blurry, dark = sheet_case["cases"][0], sheet_case["blurry"], sheet_case["dark"]
    first, second = token_client(labeler), token_client(second_labeler)
    # Both loaded the row with no ticks; each adds their own.
    assert first.patch(url(case), {"add_tags": [blurry.pk]}, format="json").status_code == 200
    answer = second.patch(url(case), {"add_tags": [dark.pk]}, format="json")
    assert answer.status_code == 200
    assert set(answer.json()["tags"]) == {blurry.pk, dark.pk}  # the second sees the first's
    # Both tick the same tag: one tick; one unticks: gone for both (a tick is a row).
    assert second.patch(url(case), {"add_tags": [blurry.pk]}, format="json").status_code == 200
    assert ErrorCaseTag.objects.filter(case=case, tag=blurry).count() == 1
    users = dict(ErrorCaseTag.objects.filter(case=case).values_list("tag__name", "user__username"))
    assert users == {"blurry": "lab", "dark": "lab2"}


def test_a_stale_comment_is_refused_with_the_other_person_s_text(
    sheet_case, labeler, second_labeler
):
    case, blurry = sheet_case["cases"][1], sheet_case["blurry"]
    first, second = token_client(labeler), token_client(second_labeler)
    saved = first.patch(url(case), {"comment": "Pitbull", "comment_version": 0}, format="json")
    assert saved.status_code == 200
    assert (saved.json()["comment"], saved.json()["comment_version"]) == ("Pitbull", 1)
    stale = second.patch(
        url(case),
        {"comment": "Lion", "comment_version": 0, "add_tags": [blurry.pk]},
        format="json",
    )
    assert stale.status_code == 409
    error = stale.json()["error"]
    assert error["code"] == "stale_comment"
    assert error["details"]["comment"] == "Pitbull"
    assert error["details"]["comment_version"] == 1
    assert error["details"]["updated_by"] == "lab"
    assert "Pitbull" in error["message"] and "lab" in error["message"]
    case.refresh_from_db()
    assert (case.comment, case.comment_version) == ("Pitbull", 1)
    assert ticks(case) == set()  # nothing of the refused request was written
    fresh = second.patch(url(case), {"comment": "Lion", "comment_version": 1}, format="json")
    assert fresh.status_code == 200 and fresh.json()["comment_version"] == 2


def test_bad_bodies_are_clear_400s_and_write_nothing(sheet_case, labeler_api):
    case, blurry = sheet_case["cases"][0], sheet_case["blurry"]
    other = Dataset.objects.create(name="elsewhere")
    foreign = ErrorTag.objects.create(dataset=other, name="blurry")
    for body, words in [
        ({"comment": "no version"}, "comment_version"),
        ({"add_tags": [foreign.pk]}, "not columns of this dataset"),
        ({"add_tags": "1"}, "list of tag ids"),
        ({"add_tags": [blurry.pk], "remove_tags": [blurry.pk]}, "added and removed"),
        ({"colour": "red"}, "Unknown field"),
        ({"comment": "x" * 5001, "comment_version": 0}, "at most 5000"),
    ]:
        answer = labeler_api.patch(url(case), body, format="json")
        assert answer.status_code == 400, body
        assert words in answer.json()["error"]["message"]
    assert ticks(case) == set()
    assert labeler_api.patch("/api/v1/error-cases/999999/", {}, format="json").status_code == 404


def test_viewers_read_but_do_not_tag(sheet_case, viewer_api):
    case, blurry = sheet_case["cases"][0], sheet_case["blurry"]
    read = viewer_api.get(url(case))
    assert read.status_code == 200 and read.json()["kind"] == "missed"
    assert viewer_api.patch(url(case), {"add_tags": [blurry.pk]}, format="json").status_code == 403
    tags = f"/api/v1/datasets/{case.evaluation.dataset_id}/error-tags/"
    assert viewer_api.post(tags, {"name": "dog"}, format="json").status_code == 403
    assert viewer_api.delete(f"/api/v1/error-tags/{blurry.pk}/").status_code == 403
    assert ticks(case) == set() and ErrorTag.objects.filter(pk=blurry.pk).exists()


def test_tag_columns_crud(sheet_case, labeler_api):
    dataset = sheet_case["evaluation"].dataset
    listing = labeler_api.get(f"/api/v1/datasets/{dataset.pk}/error-tags/").json()
    assert [t["name"] for t in listing["results"]] == [INCORRECTLY_LABELED, "blurry", "dark"]
    assert listing["results"][0]["protected"] is True
    made = labeler_api.post(
        f"/api/v1/datasets/{dataset.pk}/error-tags/",
        {"name": "  great   cats ", "action": "collect_more", "note": "lions"},
        format="json",
    )
    assert made.status_code == 201
    tag = made.json()
    assert (tag["name"], tag["action"], tag["note"]) == ("great cats", "collect_more", "lions")
    clash = labeler_api.post(
        f"/api/v1/datasets/{dataset.pk}/error-tags/", {"name": "Great Cats"}, format="json"
    )
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "duplicate_tag"
    bad = labeler_api.post(
        f"/api/v1/datasets/{dataset.pk}/error-tags/", {"name": "x", "action": "fly"}, format="json"
    )
    assert bad.status_code == 400
    renamed = labeler_api.patch(
        f"/api/v1/error-tags/{tag['id']}/",
        {"name": "big cats", "action": "augment_blur"},
        format="json",
    )
    assert renamed.status_code == 200
    assert (renamed.json()["name"], renamed.json()["action"]) == ("big cats", "augment_blur")
    ErrorCaseTag.objects.create(case=sheet_case["cases"][0], tag_id=tag["id"])
    assert labeler_api.delete(f"/api/v1/error-tags/{tag['id']}/").status_code == 204
    assert not ErrorCaseTag.objects.filter(tag_id=tag["id"]).exists()


def test_incorrectly_labeled_cannot_be_deleted_or_renamed(sheet_case, labeler_api):
    protected = ensure_incorrectly_labeled(sheet_case["evaluation"].dataset)
    gone = labeler_api.delete(f"/api/v1/error-tags/{protected.pk}/")
    assert gone.status_code == 409 and gone.json()["error"]["code"] == "protected_tag"
    renamed = labeler_api.patch(
        f"/api/v1/error-tags/{protected.pk}/", {"name": "wrong"}, format="json"
    )
    assert renamed.status_code == 409
    noted = labeler_api.patch(
        f"/api/v1/error-tags/{protected.pk}/", {"action": "review_queue"}, format="json"
    )
    assert noted.status_code == 200 and noted.json()["action"] == "review_queue"
    assert ErrorTag.objects.filter(pk=protected.pk, name=INCORRECTLY_LABELED).exists()


def test_the_schema_lists_the_sheet_endpoints(labeler_api):
    import yaml

    paths = set(yaml.safe_load(labeler_api.get("/api/v1/schema/").content)["paths"])
    assert {
        "/api/v1/error-cases/{id}/",
        "/api/v1/datasets/{id}/error-tags/",
        "/api/v1/error-tags/{id}/",
        "/api/v1/evaluations/{id}/totals/",
        "/api/v1/evaluations/{id}/export/",
        "/api/v1/evaluations/{id}/import/",
    } <= paths


def test_an_unknown_case_or_tag_is_a_404_error_body(labeler_api):
    for path in ("/api/v1/error-cases/424242/", "/api/v1/error-tags/424242/"):
        answer = labeler_api.get(path)
        assert answer.status_code == 404
        assert set(answer.json()["error"]) == {"code", "message", "details"}
    assert ErrorCase.objects.count() == 0
