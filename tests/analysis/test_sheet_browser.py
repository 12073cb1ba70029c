"""The error sheet in Chromium: tag errors from the keyboard, reload, see the totals."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.analysis.conftest import add_case
from tests.browser_fixtures import log_in
from webapp.analysis.models import INCORRECTLY_LABELED, ErrorCase, ErrorCaseTag, ErrorKind, ErrorTag
from webapp.analysis.sheet import ensure_incorrectly_labeled

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


@pytest.fixture
def three_errors(make_evaluation, make_image, classes, dataset):
    evaluation = make_evaluation(error_rate=0.10)
    first, second = make_image(1), make_image(2)
    cases = [
        add_case(evaluation, first, key=0.1),
        add_case(evaluation, second, key=0.2, kind=ErrorKind.WRONG_CLASS, predicted_class="WBC",
                 score=0.8, iou=0.7, predicted_box=[64, 44, 104, 84]),
        add_case(evaluation, first, key=0.3, kind=ErrorKind.FALSE_POSITIVE, label_class="",
                 predicted_class="WBC", score=0.6, true_box=None, predicted_box=[10, 10, 40, 40]),
    ]  # fmt: skip
    blurry = ErrorTag.objects.create(dataset=dataset, name="blurry")
    return evaluation, cases, blurry


def cell(page, row, tag):
    return page.locator(f'#sheet tbody tr:nth-child({row}) td.tick[data-tag="{tag.pk}"] input')


def test_tag_errors_from_the_keyboard_reload_and_see_the_totals(
    page, live_server, labeler, three_errors
):
    evaluation, cases, blurry = three_errors
    wrong = ensure_incorrectly_labeled(evaluation.dataset)
    log_in(page, live_server.url, labeler.username)
    page.goto(f"{live_server.url}/analysis/evaluations/{evaluation.pk}/sheet/")
    expect(page.locator("#sheet tbody tr")).to_have_count(3)
    page.locator("#sheet").focus()  # the first cell: row 1, "incorrectly labeled"
    page.keyboard.press("Space")  # row 1: incorrectly labeled
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Space")  # row 1: blurry
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Space")  # row 2: blurry
    page.keyboard.press("ArrowRight")  # row 2: the comment
    page.keyboard.type("Pitbull")  # typing starts editing
    page.keyboard.press("Enter")  # saves, moves to row 3's comment
    page.keyboard.type("draft")
    page.keyboard.press("Escape")  # leaves without saving
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Space")  # row 3: blurry
    page.keyboard.press("Space")  # and off again
    expect(page.locator('#sheet[data-pending="0"]')).to_have_count(1)  # all saved
    total = page.locator(f'#totals-row td.total[data-tag="{blurry.pk}"]')
    expect(total.locator(".count")).to_have_text("2")  # recomputed live
    expect(total.locator(".ceiling")).to_have_text("≤ 3.3%")
    expect(page.locator("#sheet-status")).to_have_text("Saved · case " + str(cases[2].pk))
    expect(page.locator("#sheet tbody tr:nth-child(1)")).to_have_class("mislabeled")
    page.screenshot(path="/tmp/workbench-screenshots/error-sheet.png", full_page=True)

    page.reload()
    expect(cell(page, 1, wrong)).to_be_checked()
    expect(cell(page, 1, blurry)).to_be_checked()
    expect(cell(page, 2, blurry)).to_be_checked()
    expect(cell(page, 2, wrong)).not_to_be_checked()
    expect(cell(page, 3, blurry)).not_to_be_checked()
    expect(page.locator("#sheet tbody tr:nth-child(2) .comment-text")).to_have_text("Pitbull")
    expect(page.locator("#sheet tbody tr:nth-child(3) .comment-text")).to_have_text("")
    # 2 of 3 blurry: 66.7%, ceiling 10% x (1 - 2/3) = 3.3%; 1 of 3 incorrectly labeled.
    expect(total.locator(".count")).to_have_text("2")
    expect(total.locator(".share")).to_have_text("66.7%")
    expect(total.locator(".ceiling")).to_have_text("≤ 3.3%")
    expect(page.locator(f'#ceilings li[data-tag="{blurry.pk}"] .sentence')).to_have_text(
        "Fixing every “blurry” error would lower validation error from 10.0% to at most 3.3%."
    )
    expect(page.locator(f'#totals-row td.total[data-tag="{wrong.pk}"] .share')).to_have_text(
        "33.3%"
    )
    expect(page.locator("#totals-untagged")).to_have_text("1")
    ticks = set(ErrorCaseTag.objects.values_list("case_id", "tag__name"))
    assert ticks == {
        (cases[0].pk, INCORRECTLY_LABELED),
        (cases[0].pk, "blurry"),
        (cases[1].pk, "blurry"),
    }
    assert ErrorCase.objects.get(pk=cases[1].pk).comment == "Pitbull"
    assert ErrorCase.objects.get(pk=cases[2].pk).comment == ""


def test_a_comment_someone_else_saved_meanwhile_is_shown_not_overwritten(
    page, live_server, labeler, second_labeler, three_errors
):
    evaluation, cases, _ = three_errors
    log_in(page, live_server.url, labeler.username)
    page.goto(f"{live_server.url}/analysis/evaluations/{evaluation.pk}/sheet/")
    ErrorCase.objects.filter(pk=cases[0].pk).update(  # another person, after the page loaded
        comment="Lion", comment_version=1, updated_by=second_labeler
    )
    comment = page.locator("#sheet tbody tr:nth-child(1) td.comment")
    comment.click()
    page.keyboard.press("Enter")
    page.keyboard.type("Tiger")
    page.keyboard.press("Enter")
    expect(page.locator("#sheet-conflict")).to_be_visible()
    expect(page.locator("#sheet-conflict")).to_contain_text("lab2 changed this comment")
    expect(page.locator("#sheet-conflict")).to_contain_text("“Lion”")
    expect(page.locator("#sheet-conflict")).to_contain_text("Your text was: “Tiger”")
    expect(comment.locator(".comment-text")).to_have_text("Lion")
    assert ErrorCase.objects.get(pk=cases[0].pk).comment == "Lion"
    comment.click()  # now on the current version, it saves
    page.keyboard.press("Enter")
    page.keyboard.press("End")
    page.keyboard.type(" or tiger")
    page.keyboard.press("Enter")
    expect(page.locator("#sheet-status")).to_have_text("Saved · case " + str(cases[0].pk))
    assert ErrorCase.objects.get(pk=cases[0].pk).comment == "Lion or tiger"


def test_a_viewer_moves_but_cannot_tick(page, live_server, viewer, three_errors):
    evaluation, _, blurry = three_errors
    log_in(page, live_server.url, viewer.username)
    page.goto(f"{live_server.url}/analysis/evaluations/{evaluation.pk}/sheet/")
    page.locator("#sheet").focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Space")
    expect(cell(page, 1, blurry)).not_to_be_checked()
    expect(cell(page, 1, blurry)).to_be_disabled()
    assert not ErrorCaseTag.objects.exists()
