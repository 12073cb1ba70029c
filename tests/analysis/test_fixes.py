"""Fixes that flow back: label changes after an evaluation, per split, the same review on
the other split, tags as actions, and old and new metrics side by side."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.analysis.conftest import add_case
from training.run_config import RunConfig
from training.trials import augment_config
from webapp.analysis import fixes
from webapp.analysis.actions import training_augmentations
from webapp.analysis.models import INCORRECTLY_LABELED, ErrorCaseTag, ErrorTag, TagAction
from webapp.analysis.sheet import ensure_incorrectly_labeled
from webapp.images.models import Dataset, ImageStatus, LabelChange
from webapp.labeling.services import replace_boxes

pytestmark = pytest.mark.django_db


def relabel(image, user, boxes):
    image.refresh_from_db()
    replace_boxes(image, boxes, user=user, version=image.labels_version)


def rbc(classes, x=10):
    return {"label_class": classes["RBC"].pk, "x1": x, "y1": 10, "x2": x + 30, "y2": 40}


@pytest.fixture
def evaluated(make_evaluation, make_image, classes):
    evaluation = make_evaluation(ago=1)
    val, test = make_image(1, "val"), make_image(2, "test")
    case = add_case(evaluation, val, key=0.1)
    return {"evaluation": evaluation, "val": val, "test": test, "case": case}


def test_a_fix_is_a_label_change_after_the_evaluation_with_who_when_before_after(
    evaluated, labeler, classes, client
):
    evaluation, val = evaluated["evaluation"], evaluated["val"]
    LabelChange.objects.create(  # before the evaluation: not a fix
        image=val, version=99, user=labeler, action="edit",
        created_at=evaluation.created_at - timedelta(minutes=5),
    )  # fmt: skip
    relabel(val, labeler, [rbc(classes)])
    relabel(val, labeler, [rbc(classes), rbc(classes, 60)])
    listed = fixes.listed_fixes(evaluation)
    assert [f.change.user for f in listed] == [labeler, labeler]
    assert (listed[0].before, listed[0].after) == ("1 box: RBC", "2 boxes: RBC ×2")
    assert (listed[1].before, listed[1].after) == ("no boxes", "1 box: RBC")
    client.force_login(labeler)
    page = client.get(f"/analysis/evaluations/{evaluation.pk}/sheet/").content.decode()
    assert "2 changes of labels on its images" in page
    assert "1 box: RBC" in page and "2 boxes: RBC ×2" in page and ">lab<" in page


def test_fixes_are_counted_per_split_and_the_other_split_is_offered(
    evaluated, labeler, classes, client
):
    evaluation, val, test = evaluated["evaluation"], evaluated["val"], evaluated["test"]
    relabel(val, labeler, [rbc(classes)])
    relabel(test, labeler, [rbc(classes)])
    relabel(test, labeler, [rbc(classes, 50)])
    rows = {s.split: s for s in fixes.fixes_per_split(evaluation)}
    assert (rows["val"].images, rows["val"].fixes, rows["val"].images_fixed) == (1, 1, 1)
    assert (rows["test"].images, rows["test"].fixes, rows["test"].images_fixed) == (1, 2, 1)
    assert rows["train"].fixes == 0
    assert fixes.fixes(evaluation).count() == 1  # only the evaluation's own (val) images
    assert fixes.other_splits("val") == ["test"] and fixes.other_splits("test") == ["val"]
    client.force_login(labeler)
    page = client.get(f"/analysis/evaluations/{evaluation.pk}/sheet/").content.decode()
    assert f'href="/analysis/evaluations/{evaluation.pk}/sheet/splits/test/"' in page
    assert '<tr data-split="test"><td>Test</td><td>1</td><td class="fixes">2</td>' in page


def test_the_other_split_s_review_lists_unfixed_and_suspect_images_first(
    evaluated, make_evaluation, make_image, labeler, classes, client
):
    evaluation, test = evaluated["evaluation"], evaluated["test"]
    suspect, plain = make_image(3, "test"), make_image(4, "test")
    on_test = make_evaluation(split="test", ago=0.5)
    add_case(on_test, suspect, key=0.2, label_error_score=0.9, label_error_kind="missing_label")
    add_case(on_test, plain, key=0.3, label_error_score=0.1)
    relabel(test, labeler, [rbc(classes)])
    images, there = fixes.split_review(evaluation, "test")
    assert there == on_test
    assert [i.pk for i in images] == [suspect.pk, plain.pk, test.pk]
    client.force_login(labeler)
    page = client.get(f"/analysis/evaluations/{evaluation.pk}/sheet/splits/test/").content.decode()
    assert "1 of 3 test images had their labels changed" in page
    assert f'href="/label/images/{suspect.pk}/"' in page
    assert f'href="/analysis/evaluations/{on_test.pk}/sheet/"' in page
    assert (
        client.get(f"/analysis/evaluations/{evaluation.pk}/sheet/splits/moon/").status_code == 404
    )


def test_re_evaluating_shows_old_and_new_metrics_side_by_side(
    make_evaluation, make_image, detector, client, labeler
):
    old = make_evaluation(ago=2, error_rate=0.25, metrics={"f1": 0.75, "map50": 0.70})
    new = make_evaluation(ago=0, error_rate=0.20, metrics={"f1": 0.80, "map50": 0.68})
    make_evaluation(split="test", ago=1)  # another split: not compared
    image = make_image(1)
    for key in (0.1, 0.2, 0.3):
        add_case(old, image, key=key)
    add_case(new, image, key=0.1)
    assert fixes.previous_evaluation(new) == old and fixes.next_evaluation(old) == new
    assert fixes.previous_evaluation(old) is None
    rows = {r.name: r for r in fixes.compare(old, new)}
    assert (rows["error rate"].old, rows["error rate"].new) == (0.25, 0.20)
    assert rows["error rate"].delta == pytest.approx(-0.05) and rows["error rate"].better is True
    assert (rows["errors"].old, rows["errors"].new, rows["errors"].better) == (3, 1, True)
    assert rows["f1"].better is True and rows["map50"].better is False
    client.force_login(labeler)
    page = client.get(f"/analysis/evaluations/{new.pk}/sheet/").content.decode()
    assert "Against the previous evaluation" in page
    assert '<tr data-metric="f1"><td>f1</td><td>0.7500</td><td>0.8000</td>' in page
    older = client.get(f"/analysis/evaluations/{old.pk}/sheet/").content.decode()
    assert f'href="/analysis/evaluations/{new.pk}/sheet/"' in older


def test_tags_switch_on_augmentations_for_the_next_training_run(dataset):
    assert training_augmentations(dataset) == set()
    ErrorTag.objects.create(dataset=dataset, name="blurry", action=TagAction.AUGMENT_BLUR)
    ErrorTag.objects.create(dataset=dataset, name="tilted", action=TagAction.AUGMENT_ROTATE)
    ErrorTag.objects.create(dataset=dataset, name="dusk", action=TagAction.AUGMENT_COLOR)
    ErrorTag.objects.create(dataset=dataset, name="also blurry", action=TagAction.AUGMENT_BLUR)
    ErrorTag.objects.create(dataset=dataset, name="hidden", action=TagAction.AUGMENT_OCCLUDE)
    ErrorTag.objects.create(dataset=dataset, name="dogs", action=TagAction.COLLECT_MORE)
    other = Dataset.objects.create(name="other")
    ErrorTag.objects.create(dataset=other, name="x", action=TagAction.AUGMENT_BLUR)
    assert training_augmentations(dataset) == {"blur", "rotate", "color", "occlude"}
    assert training_augmentations(dataset.pk) == {"blur", "rotate", "color", "occlude"}
    # ... and the next run's augmentation has them on.
    chosen = augment_config(RunConfig(), training_augmentations(dataset))
    assert chosen.blur_p > 0 and chosen.rotate_p > 0 and chosen.occlude_p > 0
    ErrorTag.objects.filter(dataset=other).update(action=TagAction.NONE)
    assert training_augmentations(other) == set()


def test_incorrectly_labeled_rows_link_to_the_labeling_page(evaluated, client, labeler):
    evaluation, case = evaluated["evaluation"], evaluated["case"]
    ErrorCaseTag.objects.create(case=case, tag=ensure_incorrectly_labeled(evaluation.dataset))
    client.force_login(labeler)
    page = client.get(f"/analysis/evaluations/{evaluation.pk}/sheet/").content.decode()
    row = page.split(f'<tr data-case="{case.pk}"')[1].split("</tr>")[0]
    assert 'class="mislabeled"' in row
    assert f'href="/label/images/{case.image_id}/"' in row and "fix labels" in row


def test_a_tag_s_review_queue_and_sending_its_images_back(
    evaluated, make_image, client, labeler, reviewer
):
    evaluation, val, case = evaluated["evaluation"], evaluated["val"], evaluated["case"]
    other = make_image(5, "val")
    waiting = make_image(6, "val")
    waiting.status, waiting.review_comment = ImageStatus.NEEDS_FIX, "earlier note"
    waiting.save()
    tag = ensure_incorrectly_labeled(evaluation.dataset)
    case.comment = "cell at the border has no box"
    case.save()
    for c in (case, add_case(evaluation, other, key=0.2), add_case(evaluation, waiting, key=0.3)):
        ErrorCaseTag.objects.create(case=c, tag=tag)
    add_case(evaluation, make_image(7, "val"), key=0.4)  # untagged: not listed
    tag_page = f"/analysis/evaluations/{evaluation.pk}/sheet/tags/{tag.pk}/"
    client.force_login(labeler)
    page = client.get(tag_page).content.decode()
    assert page.count('<tr data-image="') == 3 and f'href="/label/images/{val.pk}/"' in page
    assert 'id="send-back"' not in page  # labelers do not send back
    refused = client.post(tag_page + "send-back/", follow=True)
    assert "Only reviewers" in refused.content.decode()
    val.refresh_from_db()
    assert val.status != ImageStatus.NEEDS_FIX
    client.force_login(reviewer)
    done = client.post(tag_page + "send-back/", follow=True).content.decode()
    assert "Sent 2 images" in done and "1 already waiting" in done
    val.refresh_from_db()
    waiting.refresh_from_db()
    assert val.status == ImageStatus.NEEDS_FIX
    assert f"tagged “{INCORRECTLY_LABELED}”" in val.review_comment
    assert "cell at the border has no box" in val.review_comment
    assert waiting.review_comment == "earlier note"


def test_the_dataset_page_shows_the_sheets_and_the_collect_more_notes(
    evaluated, client, viewer, dataset
):
    ErrorTag.objects.create(
        dataset=dataset, name="great cats", action=TagAction.COLLECT_MORE, note="lions, tigers"
    )
    ErrorTag.objects.create(dataset=dataset, name="blurry", action=TagAction.AUGMENT_BLUR)
    client.force_login(viewer)
    page = client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert f'href="/analysis/evaluations/{evaluated["evaluation"].pk}/sheet/"' in page
    assert "Collect more data like the “great cats” errors: lions, tigers" in page
    assert "Blur augmentation in the next training run, for the “blurry” errors" in page


def test_an_evaluation_made_in_the_same_instant_still_orders(make_evaluation):
    now = timezone.now()
    first = make_evaluation()
    second = make_evaluation()
    first.created_at = second.created_at = now
    first.save()
    second.save()
    assert fixes.previous_evaluation(second) == first
    assert fixes.next_evaluation(first) == second
