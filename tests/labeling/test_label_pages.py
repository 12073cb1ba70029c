"""The labeling pages: the annotation page's data, the queues, links from other pages."""

from __future__ import annotations

import json
import re

import pytest

from tests.images import jpeg_bytes
from webapp.images.ingest import ingest_image
from webapp.images.models import Image, ImageStatus

pytestmark = pytest.mark.django_db


def page_data(response):
    found = re.search(
        r'<script id="annotate-data" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    return json.loads(found.group(1))


def test_the_annotation_page_carries_the_image_classes_labels_and_roles(
    client, labeler, image, classes, tiny_detector
):
    client.force_login(labeler)
    response = client.get(f"/label/images/{image.pk}/")
    assert response.status_code == 200
    data = page_data(response)
    assert data["image"]["width"] == 200 and data["image"]["height"] == 150
    assert [c["name"] for c in data["classes"]] == ["RBC", "WBC"]
    assert data["labels"] == {
        "image": image.pk, "version": 0, "status": "new", "boxes": [], "suggestions": []
    }  # fmt: skip
    assert data["can_edit"] is True and data["can_review"] is False
    assert data["detector"] == tiny_detector.pk and data["detectors"][0]["serving"] is True
    assert 0 < data["suggestion_score"] < 1


def test_hostile_names_reach_the_page_only_as_json_text(client, labeler, dataset, classes):
    from webapp.images.models import LabelClass

    LabelClass.objects.create(dataset=dataset, name="</script><script>alert(1)</script>")
    hostile = ingest_image(
        jpeg_bytes(30, 30, seed=3),
        dataset=dataset,
        user=labeler,
        original_name="<img src=x onerror=alert(1)>.jpg",
    )
    client.force_login(labeler)
    html = client.get(f"/label/images/{hostile.pk}/").content.decode()
    assert "</script><script>alert(1)" not in html and "<img src=x" not in html
    names = [c["name"] for c in page_data_html(html)["classes"]]
    assert "</script><script>alert(1)</script>" in names  # intact, as data


def page_data_html(html):
    found = re.search(
        r'<script id="annotate-data" type="application/json">(.*?)</script>', html, re.S
    )
    return json.loads(found.group(1))


def test_the_queue_page_counts_and_serves_the_next_image(client, labeler, reviewer, dataset):
    images = [
        ingest_image(jpeg_bytes(20, 20, seed=s), dataset=dataset, user=labeler) for s in range(3)
    ]
    Image.objects.filter(pk=images[2].pk).update(
        status=ImageStatus.NEEDS_FIX, review_comment="Missed one"
    )
    Image.objects.filter(pk=images[1].pk).update(status=ImageStatus.LABELED)
    client.force_login(labeler)
    html = client.get(f"/label/datasets/{dataset.pk}/queue/").content.decode()
    assert "Label next (2 waiting)" in html and "start-reviewing" not in html
    assert "Missed one" in html
    first = client.get(f"/label/datasets/{dataset.pk}/next/?mode=label")
    assert first.url == f"/label/images/{images[2].pk}/?queue=label"  # needs_fix first
    after = client.get(f"/label/datasets/{dataset.pk}/next/?mode=label&after={images[2].pk}")
    assert after.url == f"/label/images/{images[0].pk}/?queue=label"
    client.force_login(reviewer)
    review = client.get(f"/label/datasets/{dataset.pk}/next/?mode=review")
    assert review.url == f"/label/images/{images[1].pk}/?queue=review"
    Image.objects.update(status=ImageStatus.REVIEWED)
    done = client.get(f"/label/datasets/{dataset.pk}/next/?mode=review", follow=True)
    assert "Nothing left to review" in done.content.decode()


def test_gallery_review_page_and_dataset_page_link_to_labeling(client, viewer, image):
    client.force_login(viewer)
    assert f'href="/label/images/{image.pk}/"' in client.get("/").content.decode()
    assert "/label/images/" in client.get(f"/images/{image.pk}/").content.decode()
    dataset_page = client.get(f"/datasets/{image.dataset_id}/").content.decode()
    assert f'href="/label/datasets/{image.dataset_id}/queue/"' in dataset_page


def test_pages_need_a_login(client, image):
    response = client.get(f"/label/images/{image.pk}/")
    assert response.status_code == 302 and "/login/" in response.url
