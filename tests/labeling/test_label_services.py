"""Changing human labels: versions, validation before any write, history, review, queue."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from webapp.images.models import Box, Image, ImageStatus, LabelChange
from webapp.labeling import services
from webapp.labeling.services import LabelError, StaleLabels

pytestmark = pytest.mark.django_db


def box(cls, x1=10, y1=10, x2=50, y2=40, **extra):
    return {"label_class": cls.pk, "x1": x1, "y1": y1, "x2": x2, "y2": y2, **extra}


def test_replacing_boxes_bumps_the_version_and_records_before_and_after(image, classes, labeler):
    rbc, wbc = classes["RBC"], classes["WBC"]
    image, boxes = services.replace_boxes(
        image, [box(rbc), box(wbc, 60, 20, 90, 70)], user=labeler, version=0
    )
    assert image.labels_version == 1
    assert [(b.label_class.name, b.xyxy) for b in boxes] == [
        ("RBC", [10.0, 10.0, 50.0, 40.0]),
        ("WBC", [60.0, 20.0, 90.0, 70.0]),
    ]
    assert all(b.origin == "human" and b.created_by == labeler for b in boxes)
    image, boxes = services.replace_boxes(
        image, [box(wbc, 0, 0, 200, 150)], user=labeler, version=1
    )
    assert image.labels_version == 2 and len(boxes) == 1
    change = LabelChange.objects.get(image=image, version=2)
    assert change.user == labeler and change.action == "edit"
    assert change.before == [
        {"label": "RBC", "box": [10.0, 10.0, 50.0, 40.0]},
        {"label": "WBC", "box": [60.0, 20.0, 90.0, 70.0]},
    ]
    assert change.after == [{"label": "WBC", "box": [0.0, 0.0, 200.0, 150.0]}]


def test_a_stale_version_is_refused_and_writes_nothing(image, classes, labeler, reviewer):
    services.replace_boxes(image, [box(classes["RBC"])], user=reviewer, version=0)
    with pytest.raises(StaleLabels) as caught:
        services.replace_boxes(image, [], user=labeler, version=0)
    assert caught.value.status == 409 and caught.value.details == {"version": 1, "expected": 0}
    assert "by rev" in caught.value.message and "Reload" in caught.value.message
    assert Box.objects.filter(image=image).count() == 1
    assert Image.objects.get(pk=image.pk).labels_version == 1


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ({"x1": 60, "x2": 50}, "x1 < x2"),
        ({"y2": 151}, "not inside the 200×150 image"),
        ({"x1": -1}, "not inside"),
        ({"x1": float("nan")}, "finite"),
        ({"x2": float("inf")}, "finite"),
        ({"y1": "ten"}, "must be a number"),
        ({"y1": True}, "must be a number"),
        ({"label_class": 999999}, "one of the dataset's classes"),
    ],
)
def test_a_bad_box_is_named_by_its_index_and_nothing_is_saved(image, classes, labeler, bad, why):
    good = box(classes["RBC"])
    with pytest.raises(LabelError) as caught:
        services.replace_boxes(image, [good, {**good, **bad}], user=labeler, version=0)
    assert caught.value.status == 400
    assert caught.value.message.startswith("Box 1:") and why in caught.value.message
    assert not Box.objects.filter(image=image).exists() and not LabelChange.objects.exists()


def test_a_class_of_another_dataset_is_refused(image, classes, labeler):
    from webapp.images.models import Dataset, LabelClass

    other = LabelClass.objects.create(dataset=Dataset.objects.create(name="other"), name="RBC")
    with pytest.raises(LabelError, match="Box 0: label_class"):
        services.replace_boxes(image, [box(other)], user=labeler, version=0)


def test_accepted_suggestions_remember_their_model_and_leave_the_suggestions(
    image, classes, labeler, tiny_detector
):
    rbc = classes["RBC"]
    _accepted, low = (
        Box.objects.create(
            image=image, label_class=rbc, x1=5, y1=5, x2=25, y2=25,
            origin="model", model_version=tiny_detector, score=score,
        )
        for score in (0.9, 0.2)
    )  # fmt: skip
    assert services.accept_predictions(image, tiny_detector, 0.5, user=labeler) == 1
    human = Box.objects.get(image=image, origin="human")
    assert human.suggested_by == tiny_detector and human.xyxy == [5.0, 5.0, 25.0, 25.0]
    assert human.suggested_score == pytest.approx(0.9)
    assert list(Box.objects.filter(origin="model").values_list("pk", flat=True)) == [low.pk]
    assert Image.objects.get(pk=image.pk).labels_version == 1
    assert LabelChange.objects.get(image=image).action == "accept_predictions"
    tiny_detector.delete()  # the human box stays, without its origin
    human.refresh_from_db()
    assert human.suggested_by is None and human.suggested_score == pytest.approx(0.9)


def test_resolving_touches_only_this_images_suggestions(
    image, classes, labeler, dataset, tiny_detector
):
    from tests.images import jpeg_bytes
    from webapp.images.ingest import ingest_image

    other = ingest_image(jpeg_bytes(30, 30, seed=8), dataset=dataset, user=labeler)
    theirs = Box.objects.create(
        image=other, label_class=classes["RBC"], x1=1, y1=1, x2=5, y2=5,
        origin="model", model_version=tiny_detector, score=0.5,
    )  # fmt: skip
    services.replace_boxes(image, [], user=labeler, version=0, resolve=[theirs.pk, 987654])
    assert Box.objects.filter(pk=theirs.pk).exists()
    with pytest.raises(LabelError, match="list of box ids"):
        services.replace_boxes(image, [], user=labeler, version=1, resolve=["1"])


def test_review_moves_the_state_and_records_who(image, labeler, reviewer):
    image = services.review(image, "done", user=labeler)
    assert (image.status, image.labeled_by) == (ImageStatus.LABELED, labeler)
    with pytest.raises(LabelError) as caught:
        services.review(image, "approve", user=labeler)
    assert caught.value.status == 403
    with pytest.raises(LabelError, match="comment is required"):
        services.review(image, "needs_fix", user=reviewer, comment="  ")
    image = services.review(image, "needs_fix", user=reviewer, comment="The WBC is cut off")
    assert (image.status, image.review_comment, image.reviewed_by) == (
        ImageStatus.NEEDS_FIX, "The WBC is cut off", reviewer
    )  # fmt: skip
    image = services.review(services.review(image, "done", user=labeler), "approve", user=reviewer)
    assert image.status == ImageStatus.REVIEWED and image.reviewed_at is not None


def test_the_label_queue_serves_needs_fix_first_and_moves_on(dataset, labeler, reviewer):
    from tests.images import jpeg_bytes
    from webapp.images.ingest import ingest_image

    a, b, c = (
        ingest_image(jpeg_bytes(20, 20, seed=s), dataset=dataset, user=labeler) for s in (1, 2, 3)
    )
    Image.objects.filter(pk=c.pk).update(status=ImageStatus.NEEDS_FIX)
    assert services.next_in_queue(dataset.pk, "label").pk == c.pk
    assert services.next_in_queue(dataset.pk, "label", current=c.pk).pk == a.pk
    assert services.next_in_queue(dataset.pk, "label", current=a.pk).pk == b.pk
    assert services.next_in_queue(dataset.pk, "label", current=b.pk).pk == c.pk  # wraps
    assert services.next_in_queue(dataset.pk, "review") is None
    services.review(Image.objects.get(pk=b.pk), "done", user=labeler)
    services.review(Image.objects.get(pk=a.pk), "done", user=labeler)
    assert services.next_in_queue(dataset.pk, "review").pk == b.pk  # labeled first
    assert services.queue_counts(dataset.pk)["labeled"] == 2


@pytest.mark.django_db(transaction=True)
def test_two_writers_of_one_version_one_wins_the_other_gets_409(image, classes, labeler):
    results: list[str] = []
    barrier = threading.Barrier(2)

    def save(x1: int) -> None:
        try:
            barrier.wait()
            services.replace_boxes(image, [box(classes["RBC"], x1=x1)], user=labeler, version=0)
            results.append("saved")
        except StaleLabels:
            results.append("stale")
        finally:
            connection.close()

    threads = [threading.Thread(target=save, args=(x,)) for x in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["saved", "stale"]
    assert Image.objects.get(pk=image.pk).labels_version == 1
    assert Box.objects.filter(image=image).count() == 1
