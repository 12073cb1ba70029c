"""The labeling API: boxes, one box, classes, review, queue; roles; 409 on stale versions."""

from __future__ import annotations

import pytest

from tests.conftest import token_client
from webapp.images.models import Box, Image, LabelChange, LabelClass

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(labeler):
    return token_client(labeler)


def box(cls, x1=10, y1=10, x2=50, y2=40, **extra):
    return {"label_class": cls.pk, "x1": x1, "y1": y1, "x2": x2, "y2": y2, **extra}


def test_put_replaces_all_human_boxes_with_the_version(api, image, classes):
    url = f"/api/v1/images/{image.pk}/boxes/"
    response = api.put(url, {"version": 0, "boxes": [box(classes["RBC"])]}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["version"] == 1 and [b["label"] for b in body["boxes"]] == ["RBC"]
    assert body["boxes"][0]["x2"] == 50.0 and body["boxes"][0]["origin"] == "human"
    stale = api.put(url, {"version": 0, "boxes": []}, format="json")
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "stale_labels"
    assert "Reload" in stale.json()["error"]["message"]
    assert Box.objects.filter(image=image).count() == 1
    assert api.get(url).json()["version"] == 1


def test_put_needs_a_version_and_names_a_bad_box(api, image, classes):
    url = f"/api/v1/images/{image.pk}/boxes/"
    missing = api.put(url, {"boxes": []}, format="json")
    assert (
        missing.status_code == 400 and "version is required" in missing.json()["error"]["message"]
    )
    bad = api.put(
        url,
        {"version": 0, "boxes": [box(classes["RBC"]), box(classes["RBC"], x2=500)]},
        format="json",
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["message"].startswith("Box 1:")
    assert bad.json()["error"]["details"]["index"] == 1
    assert not Box.objects.exists() and not LabelChange.objects.exists()


def test_malformed_json_and_wrong_types_are_400(api, image):
    url = f"/api/v1/images/{image.pk}/boxes/"
    broken = api.generic("PUT", url, "{not json", content_type="application/json")
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "parse_error"
    listed = api.put(url, [1, 2], format="json")
    assert listed.status_code == 400 and "JSON object" in listed.json()["error"]["message"]
    nested = api.put(url, {"version": 0, "boxes": {"x1": 1}}, format="json")
    assert nested.status_code == 400 and "boxes must be a list" in nested.json()["error"]["message"]


def test_accepting_a_suggestion_keeps_its_model_and_score(api, image, classes, tiny_detector):
    suggestion = Box.objects.create(
        image=image, label_class=classes["WBC"], x1=20, y1=30, x2=60, y2=70,
        origin="model", model_version=tiny_detector, score=0.83,
    )  # fmt: skip
    url = f"/api/v1/images/{image.pk}/boxes/"
    loaded = api.get(f"{url}?model_version={tiny_detector.pk}").json()
    [shown] = loaded["suggestions"]
    assert shown["id"] == suggestion.pk and shown["score"] == pytest.approx(0.83)
    accepted = {
        **box(classes["WBC"], 20, 30, 60, 70),
        "suggested_by": tiny_detector.pk,
        "suggested_score": 0.83,
    }
    response = api.put(
        url,
        {"version": 0, "boxes": [accepted], "resolved_suggestions": [suggestion.pk]},
        format="json",
    )
    assert response.status_code == 200, response.json()
    [label] = response.json()["boxes"]
    assert label["suggested_by"] == tiny_detector.pk and label["suggested_score"] == 0.83
    assert response.json()["suggestions"] == []
    assert not Box.objects.filter(pk=suggestion.pk).exists()


def test_post_patch_delete_one_box(api, image, classes):
    url = f"/api/v1/images/{image.pk}/boxes/"
    created = api.post(url, box(classes["RBC"]), format="json")
    assert created.status_code == 201 and created.json()["version"] == 1
    pk = created.json()["box"]["id"]
    moved = api.patch(
        f"/api/v1/boxes/{pk}/", {"x1": 12.5, "label": "WBC", "version": 1}, format="json"
    )
    assert moved.status_code == 200, moved.json()
    assert (moved.json()["box"]["x1"], moved.json()["box"]["label"]) == (12.5, "WBC")
    assert moved.json()["version"] == 2
    stale = api.patch(f"/api/v1/boxes/{pk}/", {"x1": 1, "version": 1}, format="json")
    assert stale.status_code == 409
    assert api.delete(f"/api/v1/boxes/{pk}/?version=2").status_code == 204
    assert not Box.objects.exists() and Image.objects.get(pk=image.pk).labels_version == 3
    assert api.delete(f"/api/v1/boxes/{pk}/").status_code == 404


def test_a_prediction_cannot_be_patched_but_deleting_it_rejects_it(
    api, image, classes, tiny_detector
):
    suggestion = Box.objects.create(
        image=image, label_class=classes["RBC"], x1=1, y1=1, x2=9, y2=9,
        origin="model", model_version=tiny_detector, score=0.5,
    )  # fmt: skip
    patched = api.patch(f"/api/v1/boxes/{suggestion.pk}/", {"x1": 2}, format="json")
    assert patched.status_code == 409 and patched.json()["error"]["code"] == "not_a_label"
    assert api.delete(f"/api/v1/boxes/{suggestion.pk}/").status_code == 204
    assert LabelChange.objects.get(image=image).action == "reject"


def test_viewers_read_but_never_write(viewer_api, image, classes):
    url = f"/api/v1/images/{image.pk}/boxes/"
    assert viewer_api.get(url).status_code == 200
    assert viewer_api.put(url, {"version": 0, "boxes": []}, format="json").status_code == 403
    assert viewer_api.post(url, box(classes["RBC"]), format="json").status_code == 403
    review = viewer_api.post(f"/api/v1/images/{image.pk}/review/", {"action": "done"})
    assert review.status_code == 403
    assert not LabelChange.objects.exists()


def test_anonymous_is_401(client, image):
    assert client.get(f"/api/v1/images/{image.pk}/boxes/").status_code in (401, 403)


def test_unknown_ids_are_404(api):
    assert api.get("/api/v1/images/999999/boxes/").status_code == 404
    assert api.patch("/api/v1/boxes/999999/", {}, format="json").status_code == 404
    assert api.get("/api/v1/datasets/999999/queue/").status_code == 404


def test_review_workflow_over_the_api(api, image, reviewer):
    review = f"/api/v1/images/{image.pk}/review/"
    done = api.post(review, {"action": "done"}, format="json")
    assert done.status_code == 200 and done.json()["status"] == "labeled"
    assert done.json()["labeled_by"] == "lab"
    approve = api.post(review, {"action": "approve"}, format="json")
    assert approve.status_code == 403  # a labeler does not review
    boss = token_client(reviewer)
    sent_back = boss.post(
        review, {"action": "needs_fix", "comment": "Missed a cell"}, format="json"
    )
    assert sent_back.json()["status"] == "needs_fix"
    assert sent_back.json()["review_comment"] == "Missed a cell"
    assert boss.post(review, {"action": "frobnicate"}, format="json").status_code == 400


def test_the_queue_serves_the_next_image(api, image, dataset):
    queue = api.get(f"/api/v1/datasets/{dataset.pk}/queue/?mode=label").json()
    assert queue["next"] == image.pk and queue["counts"]["new"] == 1
    after = api.get(f"/api/v1/datasets/{dataset.pk}/queue/?mode=label&after={image.pk}").json()
    assert after["next"] is None  # the only image is the one just served
    assert api.get(f"/api/v1/datasets/{dataset.pk}/queue/?mode=x").status_code == 400


def test_classes_list_create_rename_merge(api, image, dataset, classes):
    url = f"/api/v1/datasets/{dataset.pk}/classes/"
    assert [c["name"] for c in api.get(url).json()] == ["RBC", "WBC"]
    created = api.post(url, {"name": "  Platelets "}, format="json")
    assert created.status_code == 201 and created.json()["name"] == "Platelets"
    assert api.post(url, {"name": "RBC"}, format="json").status_code == 409
    pk = created.json()["id"]
    renamed = api.patch(f"/api/v1/classes/{pk}/", {"name": "PLT"}, format="json")
    assert renamed.json()["name"] == "PLT"
    clash = api.patch(f"/api/v1/classes/{pk}/", {"name": "WBC"}, format="json")
    assert clash.status_code == 409 and "merge" in clash.json()["error"]["message"]
    api.put(
        f"/api/v1/images/{image.pk}/boxes/",
        {"version": 0, "boxes": [box(LabelClass.objects.get(pk=pk))]},
        format="json",
    )
    merged = api.post(f"/api/v1/classes/{pk}/merge/", {"into": classes["RBC"].pk}, format="json")
    assert merged.status_code == 200 and merged.json()["boxes_moved"] == 1
    assert not LabelClass.objects.filter(pk=pk).exists()
    assert Box.objects.get(image=image).label_class == classes["RBC"]
    assert Image.objects.get(pk=image.pk).labels_version == 2  # an open editor gets a 409
