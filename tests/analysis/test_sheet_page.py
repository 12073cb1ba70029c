"""The sheet page: rows with thumbnails and links, the sample and "show all", filters and
sorting, the totals row, roles, and the thumbnails themselves."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from PIL import Image as PILImage

from tests.analysis.conftest import GREEN, RED, add_case
from webapp.analysis.crops import crop_region, render_detection
from webapp.analysis.models import INCORRECTLY_LABELED, ErrorCaseTag, ErrorKind, ErrorTag

pytestmark = pytest.mark.django_db


def open_sheet(client, user, evaluation, query=""):
    client.force_login(user)
    answer = client.get(f"/analysis/evaluations/{evaluation.pk}/sheet/{query}")
    assert answer.status_code == 200
    return answer.content.decode()


def row_ids(page):
    return [int(i) for i in re.findall(r'<tr data-case="(\d+)"', page)]


def test_the_sheet_lists_the_cases_with_thumbnails_links_tags_and_totals(
    sheet_case, client, labeler
):
    evaluation, cases = sheet_case["evaluation"], sheet_case["cases"]
    ErrorCaseTag.objects.create(case=cases[0], tag=sheet_case["blurry"])
    page = open_sheet(client, labeler, evaluation)
    assert row_ids(page) == [c.pk for c in cases]  # sample order: the random keys
    assert f'src="/analysis/error-cases/{cases[0].pk}/crop.jpg"' in page
    assert f'href="/label/images/{cases[0].image_id}/"' in page
    for name in (INCORRECTLY_LABELED, "blurry", "dark"):
        assert f">{name}</a></th>" in page
    table = page.split('id="sheet"')[1].split("</table>")[0]
    assert table.count('type="checkbox"') == 30
    assert "validation error from 10.0% to at most 9.0%" in page  # blurry: 1 of 10
    assert 'id="totals-untagged">9<' in page
    assert "/static/js/sheet.js" in page
    assert f"/api/v1/evaluations/{evaluation.pk}/export/?format=xlsx&amp;scope=sample" in page
    assert 'name="csrfmiddlewaretoken"' in page  # the import form
    assert "disabled" not in table


def test_viewers_see_the_sheet_read_only(sheet_case, client, viewer):
    page = open_sheet(client, viewer, sheet_case["evaluation"])
    table = page.split('id="sheet"')[1].split("</table>")[0]
    assert table.count(" disabled") == 30
    assert 'data-can-edit="0"' in page and 'id="import-form"' not in page


def test_the_page_creates_incorrectly_labeled_when_missing(make_evaluation, client, viewer):
    evaluation = make_evaluation()
    assert not ErrorTag.objects.filter(dataset=evaluation.dataset).exists()
    open_sheet(client, viewer, evaluation)
    assert ErrorTag.objects.filter(dataset=evaluation.dataset, name=INCORRECTLY_LABELED).exists()


def test_a_random_sample_of_100_by_default_and_show_all_paginates(
    make_evaluation, make_image, client, labeler
):
    evaluation = make_evaluation()
    image = make_image(1)
    cases = [add_case(evaluation, image, key=((i * 53) % 450) / 450) for i in range(450)]
    ordered = [c.pk for c in sorted(cases, key=lambda c: (c.sample_key, c.pk))]
    page = open_sheet(client, labeler, evaluation)
    assert row_ids(page) == ordered[:100]
    assert "random sample of <strong>100</strong> of the 450 errors" in page
    assert 'href="?all=1"' in page
    first = open_sheet(client, labeler, evaluation, "?all=1")
    assert row_ids(first) == ordered[:200] and "Page 1 of 3" in first
    last = open_sheet(client, labeler, evaluation, "?all=1&page=3")
    assert row_ids(last) == ordered[400:]
    assert "Shares of all <strong>450</strong> errors" in last


def test_filter_and_sort_by_kind_class_and_tag(sheet_case, client, labeler):
    evaluation, cases, dark = sheet_case["evaluation"], sheet_case["cases"], sheet_case["dark"]
    ErrorCaseTag.objects.create(case=cases[8], tag=dark)
    ErrorCaseTag.objects.create(case=cases[2], tag=dark)
    wrong = open_sheet(client, labeler, evaluation, f"?kind={ErrorKind.WRONG_CLASS}")
    assert row_ids(wrong) == [c.pk for c in cases[4:7]]
    wbc = open_sheet(client, labeler, evaluation, "?class=WBC")  # true or predicted
    assert row_ids(wbc) == [c.pk for c in cases[4:]]
    tagged = open_sheet(client, labeler, evaluation, f"?tag={dark.pk}")
    assert row_ids(tagged) == [cases[2].pk, cases[8].pk]
    untagged = open_sheet(client, labeler, evaluation, "?tag=none")
    assert len(row_ids(untagged)) == 8
    by_score = open_sheet(client, labeler, evaluation, "?kind=wrong_class&sort=score")
    assert row_ids(by_score) == [cases[4].pk, cases[5].pk, cases[6].pk]  # 0.76, 0.75, 0.74
    dark_first = open_sheet(client, labeler, evaluation, f"?sort=tag:{dark.pk}")
    assert row_ids(dark_first)[:2] == [cases[2].pk, cases[8].pk]
    # Totals stay over the whole sample whatever the filter shows.
    assert 'id="totals-errors">10<' in tagged
    nonsense = open_sheet(client, labeler, evaluation, "?kind=dance&sort=drop+table&tag=x")
    assert len(row_ids(nonsense)) == 10


def rgb(color):
    return tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))


def test_a_crop_draws_the_true_box_solid_and_the_prediction_dashed_in_their_colours():
    grey = np.full((150, 200, 3), 128, dtype=np.uint8)
    true_box, predicted = [60, 40, 100, 80], [62, 42, 102, 84]
    # Region: the union [60,40,102,84] padded by half its larger side (22), in the image.
    assert crop_region([true_box, predicted], 200, 150) == (38, 18, 124, 106)
    picture = render_detection(grey, [(true_box, RED, False), (predicted, GREEN, True)])
    assert picture.size == (round(86 * 160 / 88), 160)
    pixels = np.asarray(picture)
    scale = 160 / 88
    left = round((60 - 38) * scale)  # the true box's left edge, drawn inward
    top, bottom = round((45 - 18) * scale), round((75 - 18) * scale)
    assert {tuple(p) for p in pixels[top:bottom, left + 1]} == {rgb(RED)}
    right = (102 - 38) * scale  # the prediction's right edge, a dashed line on it
    band = pixels[top:bottom, int(right) - 1 : int(right) + 2].reshape(-1, 3)
    colours = [tuple(p) for p in band]
    assert colours.count(rgb(GREEN)) > len(colours) // 5
    assert any(c == (128, 128, 128) for c in colours)  # the gaps between dashes
    middle = pixels[round((60 - 18) * scale), round((80 - 38) * scale)]
    assert tuple(middle) == (128, 128, 128)  # the photo inside is untouched


def test_the_thumbnail_view_serves_and_keeps_a_jpeg(sheet_case, client, labeler):
    case = sheet_case["cases"][4]  # wrong class: true RBC and predicted WBC
    client.force_login(labeler)
    answer = client.get(f"/analysis/error-cases/{case.pk}/crop.jpg")
    assert answer.status_code == 200 and answer["Content-Type"] == "image/jpeg"
    assert "max-age" in answer["Cache-Control"]
    picture = PILImage.open(io.BytesIO(answer.content))
    assert picture.format == "JPEG" and picture.size == (round(86 * 160 / 88), 160)
    stored = list((Path(settings.MEDIA_ROOT) / "error-crops" / str(case.evaluation_id)).iterdir())
    assert len(stored) == 1 and stored[0].name.startswith(f"{case.pk}-")
    again = client.get(f"/analysis/error-cases/{case.pk}/crop.jpg")
    assert again.content == answer.content
    cached = client.get(
        f"/analysis/error-cases/{case.pk}/crop.jpg", HTTP_IF_NONE_MATCH=again["ETag"]
    )
    assert cached.status_code == 304
    assert client.get("/analysis/error-cases/999999/crop.jpg").status_code == 404


def test_a_verification_pair_shows_both_faces(make_evaluation, make_image, client, labeler):
    evaluation = make_evaluation()
    a, b = make_image(1, width=80, height=100), make_image(2, width=80, height=100)
    case = add_case(evaluation, a, key=0.1, kind=ErrorKind.FALSE_ACCEPT, other_image=b,
                    true_box=None, distance=0.3)  # fmt: skip
    client.force_login(labeler)
    answer = client.get(f"/analysis/error-cases/{case.pk}/crop.jpg")
    picture = PILImage.open(io.BytesIO(answer.content))
    assert picture.size == (2 * 64 + 2, 80)  # each 80x100 photo fitted into 80 px
    page = open_sheet(client, labeler, evaluation)
    assert f'href="/label/images/{b.pk}/"' in page


def test_pages_need_a_login(sheet_case, client):
    evaluation, case = sheet_case["evaluation"], sheet_case["cases"][0]
    for path in (
        f"/analysis/evaluations/{evaluation.pk}/sheet/",
        f"/analysis/error-cases/{case.pk}/crop.jpg",
    ):
        assert client.get(path).status_code == 302


def test_the_script_never_writes_markup():
    source = (Path(settings.BASE_DIR) / "static" / "js" / "sheet.js").read_text()
    assert "innerHTML" not in source and "insertAdjacentHTML" not in source
    assert "textContent" in source
