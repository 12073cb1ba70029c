"""The image admin: thumbnails with boxes (escaped), filters, search, and box editing that
goes through the labeling services (validated, versioned, with history)."""

from __future__ import annotations

import re

import pytest
from django.contrib.messages import get_messages

from webapp.images.models import Box, Dataset, Image, LabelChange, LabelClass, SplitAssignment
from webapp.labeling.admin import boxes_svg

pytestmark = pytest.mark.django_db

LIST = "/admin/images/image/"


def listed(client, query: str = "") -> list[str]:
    response = client.get(f"{LIST}{query}")
    assert response.status_code == 200
    return sorted(i.original_name for i in response.context["cl"].result_list)


def test_the_list_draws_labels_solid_and_predictions_dashed_with_score(
    client, labeler, image, classes, predict
):
    Box.objects.create(image=image, label_class=classes["RBC"], x1=10, y1=20, x2=60, y2=80)
    predict(image, classes["WBC"], 0.87, 100, 30, 150, 90)
    client.force_login(labeler)
    body = client.get(LIST).content.decode()
    svg = re.search(r'<svg class="wb-boxes".*?</svg>', body, re.S)
    assert svg is not None
    drawn = svg.group(0)
    assert f'href="/media/{image.thumbnail.name}"' in drawn
    human = re.search(r'<g class="box human" data-label="RBC">.*?</g>', drawn, re.S)
    model = re.search(r'<g class="box model" data-label="WBC">.*?</g>', drawn, re.S)
    assert human and model
    assert 'x="10.0" y="20.0" width="50.0" height="60.0"' in human.group(0)
    assert 'stroke="#e6194b"' in human.group(0) and 'stroke-dasharray="none"' in human.group(0)
    assert 'stroke="#3cb44b"' in model.group(0) and 'stroke-dasharray="none"' not in model.group(0)
    assert ">0.87</text>" in model.group(0)
    assert "1 labels, 1 predictions" in drawn


def test_hostile_class_and_file_names_are_escaped(client, labeler, dataset, make_image):
    evil = make_image(1, name='"><img src=x onerror=alert(1)>.jpg')
    cls = LabelClass.objects.create(
        dataset=dataset, name="<script>alert('class')</script>", color='#"><svg'
    )
    Box.objects.create(image=evil, label_class=cls, x1=1, y1=1, x2=20, y2=20)
    client.force_login(labeler)
    for url in (LIST, f"{LIST}{evil.pk}/change/"):
        body = client.get(url).content.decode()
        assert "<script>alert(" not in body and "<img src=x" not in body, url
        assert "&lt;script&gt;alert(&#x27;class&#x27;)&lt;/script&gt;" in body
        assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;.jpg" in body
        assert '#"><svg' not in body
    svg = str(boxes_svg(evil, list(evil.boxes.all()), size=100))
    assert 'stroke="#888888"' in svg  # a colour that is not one is not used


def test_the_change_page_draws_the_full_image_with_class_names(client, labeler, image, classes):
    Box.objects.create(image=image, label_class=classes["RBC"], x1=10, y1=20, x2=60, y2=80)
    client.force_login(labeler)
    body = client.get(f"{LIST}{image.pk}/change/").content.decode()
    assert f'href="/media/{image.file.name}"' in body
    assert re.search(r'<g class="box human" data-label="RBC">.*?>RBC</text>', body, re.S)


def test_filters_by_dataset_source_status_split_and_class(
    client, labeler, dataset, classes, make_image, predict
):
    from tests.images import jpeg_bytes
    from webapp.images.ingest import ingest_image

    a = make_image(1, name="a.jpg", source="web")
    b = make_image(2, name="b.jpg", source="app")
    c = make_image(3, name="c.jpg", source="app")
    other = Dataset.objects.create(name="other")
    d = ingest_image(
        jpeg_bytes(20, 20, seed=77), dataset=other, user=labeler, original_name="d.jpg"
    )
    Image.objects.filter(pk=b.pk).update(status="labeled")
    SplitAssignment.objects.create(image=a, split="train")
    SplitAssignment.objects.create(image=b, split="val")
    SplitAssignment.objects.create(image=c, split="val", scheme="experiment")  # other scheme
    Box.objects.create(image=a, label_class=classes["RBC"], x1=1, y1=1, x2=9, y2=9)
    Box.objects.create(image=a, label_class=classes["RBC"], x1=2, y1=2, x2=9, y2=9)
    predict(c, classes["WBC"], 0.4)
    client.force_login(labeler)
    assert listed(client, f"?dataset__id__exact={dataset.pk}") == ["a.jpg", "b.jpg", "c.jpg"]
    assert listed(client, f"?dataset__id__exact={other.pk}") == ["d.jpg"]
    assert listed(client, "?source=app") == ["b.jpg", "c.jpg"]
    assert listed(client, "?status__exact=labeled") == ["b.jpg"]
    assert listed(client, "?split=val") == ["b.jpg"]
    assert listed(client, "?split=train") == ["a.jpg"]
    assert listed(client, "?split=none") == ["c.jpg", "d.jpg"]
    rbc, wbc = classes["RBC"].pk, classes["WBC"].pk
    assert listed(client, f"?label_class={rbc}") == ["a.jpg"]  # once, though it has two
    assert listed(client, f"?label_class={wbc}") == ["c.jpg"]  # a prediction counts
    assert listed(client, f"?label_class={wbc}&source=web") == []
    assert d.pk  # (d only appears through the dataset filter)


def test_class_filter_offers_the_chosen_datasets_classes(client, labeler, dataset, classes):
    other = Dataset.objects.create(name="other")
    LabelClass.objects.create(dataset=other, name="cat")
    client.force_login(labeler)
    response = client.get(f"{LIST}?dataset__id__exact={dataset.pk}")
    specs = response.context["cl"].filter_specs
    spec = next(f for f in specs if getattr(f, "parameter_name", "") == "label_class")
    assert [title for _, title in spec.lookup_choices] == [
        f"{dataset.name}/RBC",
        f"{dataset.name}/WBC",
    ]


def test_search_by_file_name(client, labeler, make_image):
    make_image(1, name="blood_001.jpg")
    make_image(2, name="blood_002.jpg")
    make_image(3, name="cells.png")
    client.force_login(labeler)
    assert listed(client, "?q=BLOOD") == ["blood_001.jpg", "blood_002.jpg"]
    assert listed(client, "?q=cells") == ["cells.png"]


# ---------------------------------------------------------------------------- editing


def form_data(client, url: str) -> dict:
    """The change page's own values, as the browser would post them back."""
    response = client.get(url)
    data: dict = {}
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is not None and value is not False:
                data[form.add_prefix(name)] = value
    return data


def add_row(data: dict, prefix: str, **values) -> None:
    index = int(data[f"{prefix}-TOTAL_FORMS"])
    data[f"{prefix}-TOTAL_FORMS"] = index + 1
    for key, value in values.items():
        data[f"{prefix}-{index}-{key}"] = value


def test_inline_edits_go_through_the_services(client, labeler, image, classes, predict):
    rbc, wbc = classes["RBC"], classes["WBC"]
    first = Box.objects.create(image=image, label_class=rbc, x1=10, y1=10, x2=50, y2=40)
    gone = Box.objects.create(image=image, label_class=rbc, x1=60, y1=60, x2=90, y2=90)
    prediction = predict(image, wbc, 0.8)
    url = f"{LIST}{image.pk}/change/"
    client.force_login(labeler)
    data = form_data(client, url)
    data["boxes-0-label_class"] = wbc.pk
    data["boxes-0-x2"] = 55
    data["boxes-1-DELETE"] = "on"
    add_row(data, "boxes", label_class=rbc.pk, x1=100, y1=20, x2=140, y2=70)
    response = client.post(url, data)
    assert response.status_code == 302, response.context and response.context["errors"]
    humans = Box.objects.filter(image=image, origin="human").order_by("pk")
    assert [(b.label_class.name, b.xyxy) for b in humans] == [
        ("WBC", [10.0, 10.0, 55.0, 40.0]),
        ("RBC", [100.0, 20.0, 140.0, 70.0]),
    ]
    assert not Box.objects.filter(pk=gone.pk).exists() and first.pk == humans[0].pk
    assert humans[1].created_by == labeler
    assert Box.objects.filter(pk=prediction.pk, origin="model").exists()  # untouched
    image.refresh_from_db()
    assert image.labels_version == 1
    change = LabelChange.objects.get(image=image)
    assert (change.version, change.action, change.user) == (1, "admin_edit", labeler)
    assert change.before == [
        {"label": "RBC", "box": [10.0, 10.0, 50.0, 40.0]},
        {"label": "RBC", "box": [60.0, 60.0, 90.0, 90.0]},
    ]
    assert change.after == [
        {"label": "WBC", "box": [10.0, 10.0, 55.0, 40.0]},
        {"label": "RBC", "box": [100.0, 20.0, 140.0, 70.0]},
    ]


def test_saving_only_the_source_leaves_labels_alone(client, labeler, image, classes):
    Box.objects.create(image=image, label_class=classes["RBC"], x1=10, y1=10, x2=50, y2=40)
    url = f"{LIST}{image.pk}/change/"
    client.force_login(labeler)
    data = form_data(client, url)
    data["source"] = "app"
    assert client.post(url, data).status_code == 302
    image.refresh_from_db()
    assert (image.source, image.labels_version) == ("app", 0)
    assert not LabelChange.objects.exists()


@pytest.mark.parametrize(
    ("values", "why"),
    [
        ({"x1": 150, "x2": 210}, "is not inside the 200×150 image"),
        ({"x1": 50, "x2": 40}, "needs x1 &lt; x2 and y1 &lt; y2"),
        ({"y1": "nan"}, "Enter a number."),
    ],
)
def test_a_bad_box_is_refused_with_a_clear_message(client, labeler, image, classes, values, why):
    url = f"{LIST}{image.pk}/change/"
    client.force_login(labeler)
    data = form_data(client, url)
    box = {"label_class": classes["RBC"].pk, "x1": 10, "y1": 10, "x2": 50, "y2": 40, **values}
    add_row(data, "boxes", **box)
    response = client.post(url, data)
    assert response.status_code == 200
    assert why in response.content.decode()
    assert "box_has_area" not in response.content.decode()
    assert not Box.objects.exists() and Image.objects.get(pk=image.pk).labels_version == 0


def test_a_class_of_another_dataset_is_refused(client, labeler, image):
    foreign = LabelClass.objects.create(dataset=Dataset.objects.create(name="x"), name="cat")
    url = f"{LIST}{image.pk}/change/"
    client.force_login(labeler)
    data = form_data(client, url)
    add_row(data, "boxes", label_class=foreign.pk, x1=1, y1=1, x2=9, y2=9)
    response = client.post(url, data)
    assert response.status_code == 200 and b"Select a valid choice" in response.content
    assert not Box.objects.exists()


def test_a_stale_page_cannot_overwrite_someone_elses_labels(
    client, labeler, reviewer, image, classes
):
    from webapp.labeling import services

    url = f"{LIST}{image.pk}/change/"
    client.force_login(labeler)
    data = form_data(client, url)  # loaded at version 0
    services.replace_boxes(
        image,
        [{"label_class": classes["WBC"].pk, "x1": 1, "y1": 1, "x2": 9, "y2": 9}],
        user=reviewer,
        version=0,
    )
    add_row(data, "boxes", label_class=classes["RBC"].pk, x1=10, y1=10, x2=50, y2=40)
    response = client.post(url, data)
    assert response.status_code == 200
    assert "Someone else changed these labels (version 1 by rev" in response.content.decode()
    assert [b.label_class.name for b in Box.objects.filter(image=image)] == ["WBC"]


def test_predictions_are_read_only_inline_and_on_their_page(
    client, labeler, image, classes, predict
):
    prediction = predict(image, classes["WBC"], 0.8)
    client.force_login(labeler)
    page = client.get(f"{LIST}{image.pk}/change/")
    model_inline = page.context["inline_admin_formsets"][1]
    assert not model_inline.has_change_permission and not model_inline.has_add_permission
    box_url = f"/admin/images/box/{prediction.pk}/change/"
    assert client.get(box_url).status_code == 200
    assert client.post(box_url, {"label_class": classes["RBC"].pk, "x1": 0}).status_code == 403
    assert Box.objects.get(pk=prediction.pk).label_class == classes["WBC"]


def test_box_page_edits_and_deletes_record_history(client, labeler, image, classes):
    box = Box.objects.create(image=image, label_class=classes["RBC"], x1=10, y1=10, x2=50, y2=40)
    url = f"/admin/images/box/{box.pk}/change/"
    client.force_login(labeler)
    data = {"label_class": classes["WBC"].pk, "x1": 12, "y1": 10, "x2": 50, "y2": 40}
    assert client.post(url, data).status_code == 302
    box.refresh_from_db()
    assert (box.label_class.name, box.x1) == ("WBC", 12.0)
    bad = client.post(url, {**data, "y2": 400})
    assert bad.status_code == 200 and "not inside the 200×150 image" in bad.content.decode()
    client.post(f"/admin/images/box/{box.pk}/delete/", {"post": "yes"})
    assert not Box.objects.filter(pk=box.pk).exists()
    history = list(LabelChange.objects.filter(image=image).order_by("version"))
    assert [(h.version, h.action, len(h.after)) for h in history] == [
        (1, "admin_edit", 1),
        (2, "admin_edit", 0),
    ]
    assert Image.objects.get(pk=image.pk).labels_version == 2


def test_a_labeler_cannot_approve_on_the_change_page(client, labeler, reviewer, image):
    url = f"{LIST}{image.pk}/change/"
    client.force_login(labeler)
    data = form_data(client, url)
    data["status"] = "reviewed"
    response = client.post(url, data)
    assert response.status_code == 200 and b"Only reviewers and admins" in response.content
    assert Image.objects.get(pk=image.pk).status == "new"
    client.force_login(reviewer)
    data["status"] = "reviewed"
    assert client.post(url, data).status_code == 302
    image.refresh_from_db()
    assert (image.status, image.reviewed_by) == ("reviewed", reviewer)


def test_history_is_read_only_and_deleting_an_image_takes_it_along(
    client, reviewer, image, classes
):
    from webapp.labeling import services

    services.replace_boxes(
        image,
        [{"label_class": classes["RBC"].pk, "x1": 1, "y1": 1, "x2": 9, "y2": 9}],
        user=reviewer,
        version=0,
    )
    change = LabelChange.objects.get(image=image)
    client.force_login(reviewer)
    history = client.get(f"/admin/images/labelchange/?image={image.pk}")
    assert [c.pk for c in history.context["cl"].result_list] == [change.pk]
    page = client.get(f"/admin/images/labelchange/{change.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert client.post(f"/admin/images/labelchange/{change.pk}/delete/").status_code == 403
    confirm = client.get(f"{LIST}{image.pk}/delete/")
    assert confirm.status_code == 200 and not confirm.context["perms_lacking"]
    response = client.post(f"{LIST}{image.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Image.objects.filter(pk=image.pk).exists() and not LabelChange.objects.exists()
    said = [str(m) for m in get_messages(response.wsgi_request)]
    assert said == [f"The image “{image}” was deleted successfully."]


def test_classes_keep_one_colour_per_name_and_unique_names(client, labeler, dataset, classes):
    other = Dataset.objects.create(name="other")
    client.force_login(labeler)
    add = client.post(
        "/admin/images/labelclass/add/", {"dataset": other.pk, "name": "RBC", "color": ""}
    )
    assert add.status_code == 302
    assert LabelClass.objects.get(dataset=other, name="RBC").color == "#e6194b"  # the name's
    rbc = classes["RBC"]
    url = f"/admin/images/labelclass/{rbc.pk}/change/"
    assert client.post(url, {"name": "RBC", "color": "#123456"}).status_code == 302
    assert set(LabelClass.objects.filter(name="RBC").values_list("color", flat=True)) == {"#123456"}
    assert client.post(url, {"name": "RBC", "color": "red"}).status_code == 200
    taken = client.post(url, {"name": "WBC", "color": "#123456"})
    assert taken.status_code == 200 and b"already has a class called WBC" in taken.content
    assert LabelClass.objects.get(pk=rbc.pk).name == "RBC"
