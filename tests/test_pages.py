"""Server-rendered pages: gallery filters and pagination, detail pages, role checks."""

from __future__ import annotations

import pytest

from tests.images import jpeg_bytes
from webapp.images.ingest import ingest_image
from webapp.images.models import Dataset
from webapp.images.views import GALLERY_PAGE_SIZE
from webapp.jobs.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def many_images(labeler):
    app = Dataset.objects.create(name="app-set")
    web = Dataset.objects.create(name="web-set")
    for seed in range(GALLERY_PAGE_SIZE + 2):
        ingest_image(
            jpeg_bytes(8, 8, seed=seed),
            dataset=app if seed % 2 else web,
            user=labeler,
            source="app" if seed % 2 else "web",
        )
    return app, web


def tile_ids(response):
    return [image.pk for image in response.context["page"].object_list]


def test_gallery_paginates_and_filters(client, labeler, many_images):
    app, _ = many_images
    client.force_login(labeler)
    first = client.get("/")
    assert len(tile_ids(first)) == GALLERY_PAGE_SIZE
    second = client.get("/?page=2")
    assert len(tile_ids(second)) == 2
    assert not set(tile_ids(first)) & set(tile_ids(second))
    only_app = client.get(f"/?dataset={app.pk}&source=app")
    assert only_app.context["page"].paginator.count == (GALLERY_PAGE_SIZE + 2) // 2
    assert {i.source for i in only_app.context["page"].object_list} == {"app"}
    assert client.get("/?status=reviewed").context["page"].paginator.count == 0


def test_detail_pages_render(client, viewer, many_images):
    app, _ = many_images
    client.force_login(viewer)
    image = app.images.first()
    detail = client.get(f"/images/{image.pk}/")
    assert detail.status_code == 200 and detail.context["can_edit"] is False
    assert b"Run detection" not in detail.content
    assert client.get(f"/datasets/{app.pk}/").status_code == 200
    assert client.get("/datasets/").status_code == 200
    assert client.get("/images/999999/").status_code == 404


def test_viewer_cannot_start_jobs_from_pages(client, viewer, many_images):
    app, _ = many_images
    client.force_login(viewer)
    response = client.post(f"/datasets/{app.pk}/stats/", follow=True)
    assert b"cannot start jobs" in response.content
    response = client.post(f"/images/{app.images.first().pk}/detect/", follow=True)
    assert b"cannot start jobs" in response.content
    assert Job.objects.count() == 0


def test_jobs_pages_show_own_jobs(client, labeler, viewer):
    mine = Job.objects.create(kind="image_stats", user=labeler)
    theirs = Job.objects.create(kind="image_stats", user=viewer)
    client.force_login(labeler)
    listed = [j.pk for j in client.get("/jobs/").context["page"].object_list]
    assert listed == [mine.pk]
    assert client.get(f"/jobs/{theirs.pk}/").status_code == 404
    assert client.get(f"/jobs/{mine.pk}/").status_code == 200
