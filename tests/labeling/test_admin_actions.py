"""The image list's bulk actions, each on real rows: what changed and what it reported."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from training.models import ModelKind, ModelVersion
from webapp.images.models import Box, Image, LabelChange, SplitAssignment

pytestmark = pytest.mark.django_db

LIST = "/admin/images/image/"


def run(client, action, images, url=LIST, **values):
    """Post the action's second step (its parameters page) for ``images``."""
    data = {"action": action, "_selected_action": [i.pk for i in images], "apply": "1", **values}
    return client.post(url, data)


def said(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def three(make_image):
    return [make_image(i) for i in range(3)]


def test_an_action_first_asks_for_its_parameter(client, reviewer, three):
    client.force_login(reviewer)
    page = client.post(
        LIST, {"action": "set_source", "_selected_action": [three[0].pk], "index": 0}
    )
    assert page.status_code == 200
    assert page.templates[0].name == "admin/labeling/action_parameters.html"
    body = page.content.decode()
    assert 'name="source"' in body and "1 image selected." in body
    assert Image.objects.get(pk=three[0].pk).source == "upload"  # nothing done yet


def test_set_source(client, labeler, three):
    client.force_login(labeler)
    response = run(client, "set_source", three[:2], source="app")
    assert response.status_code == 302
    assert sorted(Image.objects.values_list("source", flat=True)) == ["app", "app", "upload"]
    assert said(response) == ["2 images now have source app."]
    again = run(client, "set_source", three[:1], source="Not A Slug!")
    assert again.status_code == 200 and b"lowercase letters" in again.content
    assert Image.objects.get(pk=three[0].pk).source == "app"


def test_set_status_records_the_review_step(client, reviewer, three):
    client.force_login(reviewer)
    response = run(client, "set_status_action", three[:2], status="reviewed", comment="")
    assert said(response) == ["2 images set to Reviewed."]
    done = Image.objects.filter(status="reviewed")
    assert done.count() == 2 and all(i.reviewed_by == reviewer and i.reviewed_at for i in done)
    missing = run(client, "set_status_action", three[2:], status="needs_fix", comment=" ")
    assert missing.status_code == 200 and b"a comment is required" in missing.content
    run(client, "set_status_action", three[2:], status="needs_fix", comment="RBC at left missed")
    sent_back = Image.objects.get(pk=three[2].pk)
    assert (sent_back.status, sent_back.review_comment) == ("needs_fix", "RBC at left missed")
    run(client, "set_status_action", three[:1], status="new", comment="")
    assert Image.objects.get(pk=three[0].pk).status == "new"


def test_a_labeler_may_mark_labeled_but_not_approve(client, labeler, three):
    client.force_login(labeler)
    refused = run(client, "set_status_action", three, status="reviewed", comment="")
    assert refused.status_code == 200 and b"Only reviewers and admins" in refused.content
    assert not Image.objects.filter(status="reviewed").exists()
    run(client, "set_status_action", three[:1], status="labeled", comment="")
    image = Image.objects.get(pk=three[0].pk)
    assert (image.status, image.labeled_by) == ("labeled", labeler)


def test_assign_to_a_split_creates_and_moves_assignments(client, reviewer, three):
    SplitAssignment.objects.create(image=three[0], split="train")
    client.force_login(reviewer)
    response = run(client, "assign_split_action", three[:2], split="val")
    assert said(response) == ["2 images moved to val."]
    assert dict(SplitAssignment.objects.values_list("image_id", "split")) == {
        three[0].pk: "val",
        three[1].pk: "val",
    }
    run(client, "assign_split_action", three, split="train_val")
    assert set(SplitAssignment.objects.values_list("split", flat=True)) == {"train_val"}
    assert SplitAssignment.objects.count() == 3
    assert set(SplitAssignment.objects.values_list("scheme", flat=True)) == {"default"}


def test_assigning_off_target_images_to_test_warns(client, reviewer, dataset, make_image):
    dataset.target_source = "app"
    dataset.save()
    web, app = make_image(1, source="web"), make_image(2, source="app")
    client.force_login(reviewer)
    response = run(client, "assign_split_action", [web, app], split="test")
    messages = said(response)
    assert messages[0] == "2 images moved to test."
    assert messages[1].startswith("1 image of them are not from their dataset's target source")


def test_labelers_cannot_assign_splits(client, labeler, three):
    client.force_login(labeler)
    page = client.get(LIST)
    choices = [c[0] for c in page.context["action_form"].fields["action"].choices]
    assert "assign_split_action" not in choices and "set_source" in choices
    run(client, "assign_split_action", three, split="test")
    assert SplitAssignment.objects.count() == 0


def test_accept_predictions_above_a_score(client, labeler, three, classes, predict):
    rbc, wbc = classes["RBC"], classes["WBC"]
    other = ModelVersion.objects.create(
        kind=ModelKind.DETECTOR, name="det-b", file="models/b.safetensors", sha256="b" * 64
    )
    a, b, c = three
    high = predict(a, rbc, 0.9, 10, 10, 50, 40)
    predict(a, wbc, 0.3)  # below the score: stays a prediction
    predict(b, wbc, 0.75, 100, 20, 150, 90)
    predict(c, rbc, 0.95, version=other)  # another version: untouched
    version = high.model_version
    client.force_login(labeler)
    response = run(
        client, "accept_predictions_action", three, model_version=version.pk, min_score=0.5
    )
    assert said(response) == [f"Accepted 2 predictions on 2 images (score ≥ 0.5, {version})."]
    labels = Box.objects.filter(origin="human").order_by("image_id")
    assert [(x.image_id, x.label_class.name, x.xyxy) for x in labels] == [
        (a.pk, "RBC", [10.0, 10.0, 50.0, 40.0]),
        (b.pk, "WBC", [100.0, 20.0, 150.0, 90.0]),
    ]
    assert all(x.suggested_by == version and x.created_by == labeler for x in labels)
    assert [x.suggested_score for x in labels] == [0.9, 0.75]
    # The accepted predictions are resolved (gone); the others stay.
    left = Box.objects.filter(origin="model")
    assert sorted((x.image_id, x.score) for x in left) == [(a.pk, 0.3), (c.pk, 0.95)]
    history = LabelChange.objects.filter(action="accept_predictions").order_by("image_id")
    assert [(h.image_id, h.version, h.user) for h in history] == [
        (a.pk, 1, labeler),
        (b.pk, 1, labeler),
    ]
    assert history[0].after == [
        {"label": "RBC", "box": [10.0, 10.0, 50.0, 40.0], "suggested_by": version.pk}
    ]
    versions = dict(Image.objects.values_list("pk", "labels_version"))
    assert versions == {a.pk: 1, b.pk: 1, c.pk: 0}


def test_the_version_choice_lists_only_versions_with_predictions_here(
    client, labeler, three, classes, predict
):
    other = ModelVersion.objects.create(
        kind=ModelKind.DETECTOR, name="det-b", file="models/b.safetensors", sha256="b" * 64
    )
    first = predict(three[0], classes["RBC"], 0.9).model_version
    predict(three[0], classes["RBC"], 0.8, 20, 20, 70, 70)
    predict(three[1], classes["RBC"], 0.9, version=other)
    client.force_login(labeler)
    page = client.post(
        LIST,
        {"action": "accept_predictions_action", "_selected_action": [three[0].pk], "index": 0},
    )
    field = page.context["form"].fields["model_version"]
    assert [(v.pk, v.n_predictions) for v in field.queryset] == [(first.pk, 2)]
    refused = run(
        client, "accept_predictions_action", three[:1], model_version=other.pk, min_score=0
    )
    assert refused.status_code == 200 and not Box.objects.filter(origin="human").exists()


def test_delete_a_versions_predictions(client, labeler, three, classes, predict):
    other = ModelVersion.objects.create(
        kind=ModelKind.DETECTOR, name="det-b", file="models/b.safetensors", sha256="b" * 64
    )
    a, b, c = three
    version = predict(a, classes["RBC"], 0.9).model_version
    predict(a, classes["WBC"], 0.2)
    predict(b, classes["RBC"], 0.5)
    predict(c, classes["RBC"], 0.5)  # not selected
    keep = predict(a, classes["RBC"], 0.7, version=other)
    Box.objects.create(image=a, label_class=classes["RBC"], x1=0, y1=0, x2=5, y2=5)
    client.force_login(labeler)
    response = run(client, "delete_predictions_action", [a, b], model_version=version.pk)
    assert said(response) == [f"Deleted 3 predictions of {version} on 2 images."]
    remaining = Box.objects.order_by("pk")
    assert [(x.image_id, x.origin, x.model_version_id) for x in remaining] == [
        (c.pk, "model", version.pk),
        (a.pk, "model", other.pk),
        (a.pk, "human", None),
    ]
    assert keep.pk in {x.pk for x in remaining}


def test_select_all_applies_to_the_filtered_list(client, labeler, make_image):
    web = [make_image(i, source="web") for i in range(3)]
    app = make_image(9, source="app")
    client.force_login(labeler)
    data = {
        "action": "set_source",
        "_selected_action": [web[0].pk],
        "select_across": "1",
        "apply": "1",
        "source": "phone",
    }
    response = client.post(f"{LIST}?source=web", data)
    assert said(response) == ["3 images now have source phone."]
    assert Image.objects.get(pk=app.pk).source == "app"
    assert Image.objects.filter(source="phone").count() == 3
