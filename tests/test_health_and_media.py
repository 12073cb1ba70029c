"""/healthz and /readyz for load balancers and docker-compose; what /media/ serves to whom."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from tests.worker import Worker

pytestmark = pytest.mark.django_db


def test_healthz_answers_anyone(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_names_what_is_missing_without_secrets(client, settings):
    response = client.get("/readyz")  # no worker runs here and no model is active
    assert response.status_code == 503
    failed = response.json()["failed"]
    assert set(failed) == {"workers", "models"}
    assert "no worker listens on" in failed["workers"] and "no active" in failed["models"]
    assert settings.REDIS_URL not in response.content.decode()


def test_readyz_without_redis(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    body = client.get("/readyz").json()
    assert "Redis does not answer" in body["failed"]["redis"] and "workers" not in body["checked"]


@pytest.fixture
def worker(tmp_path) -> Iterator[Worker]:
    running = Worker(tmp_path / "worker.log")
    yield running
    running.stop()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_readyz_is_ready_with_a_worker_and_every_model(
    client, worker, tiny_detector, tiny_verifier, tiny_face_detector
):
    # A worker answers the broadcast within the check's timeout, but a loaded machine may
    # miss one round: ask a few times, as a load balancer would.
    for _ in range(10):
        response = client.get("/readyz")
        if response.status_code == 200:
            break
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "ready"


@pytest.mark.parametrize(
    ("name", "viewer_status", "admin"),
    [
        ("images/ab/photo.jpg", 200, 200),
        ("models/abc.safetensors", 404, 200),
        ("runs/1/trial-1.safetensors", 404, 200),
        ("backbones/abc.pth", 404, 200),
        ("tmp/upload.jpg", 404, 404),
    ],
)
def test_media_weights_only_to_admins(client, viewer, admin_user, name, viewer_status, admin):
    default_storage.save(name, ContentFile(b"bytes"))
    client.force_login(viewer)
    assert client.get(f"/media/{name}").status_code == viewer_status
    client.force_login(admin_user)
    assert client.get(f"/media/{name}").status_code == admin


def test_a_media_folder_is_no_file(client, viewer):
    default_storage.save("images/ab/photo.jpg", ContentFile(b"bytes"))
    client.force_login(viewer)
    assert client.get("/media/images/ab").status_code == 404
    assert client.get("/media/images/ab/").status_code == 404


def test_dataset_pages_list_only_the_jobs_one_may_see(client, viewer, labeler, admin_user):
    from webapp.images.models import Dataset
    from webapp.jobs.models import Job

    dataset = Dataset.objects.create(name="shared")
    theirs = Job.objects.create(kind="image_stats", user=labeler, dataset=dataset)
    mine = Job.objects.create(kind="image_stats", user=viewer, dataset=dataset)
    client.force_login(viewer)
    page = client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert f"/jobs/{mine.pk}/" in page and f"/jobs/{theirs.pk}/" not in page
    client.force_login(admin_user)
    page = client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert f"/jobs/{theirs.pk}/" in page


@pytest.mark.django_db(transaction=True)
def test_files_of_a_deleted_dataset_go_unless_another_holds_them(labeler):
    from tests.images import jpeg_bytes
    from webapp.images.ingest import ingest_image
    from webapp.images.models import Dataset

    first, second = Dataset.objects.create(name="a"), Dataset.objects.create(name="b")
    shared = ingest_image(jpeg_bytes(seed=1), dataset=first, user=labeler)
    ingest_image(jpeg_bytes(seed=1), dataset=second, user=labeler)  # the same photo
    alone = ingest_image(jpeg_bytes(seed=2), dataset=first, user=labeler)
    first.delete()
    assert default_storage.exists(shared.file.name)  # "b" still holds it
    assert not default_storage.exists(alone.file.name)
    assert not default_storage.exists(alone.thumbnail.name)
    second.delete()
    assert not default_storage.exists(shared.file.name)


def test_the_status_page_shows_orphans_and_failures_to_admins(client, labeler, admin_user):
    from datetime import timedelta

    from django.utils import timezone

    from webapp.jobs.models import Job

    dead = Job.objects.create(
        kind="train", user=labeler, status="running",
        heartbeat_at=timezone.now() - timedelta(hours=1), started_at=timezone.now(),
    )  # fmt: skip
    unsent = Job.objects.create(kind="detect", user=labeler, status="queued", task_id="")
    failed = Job.objects.create(
        kind="evaluate", user=labeler, status="failed", error="Disk full",
        finished_at=timezone.now(),
    )  # fmt: skip
    client.force_login(labeler)
    assert client.get("/ops/status/").status_code == 403
    client.force_login(admin_user)
    page = client.get("/ops/status/").content.decode()
    orphans = page[page.index('id="orphaned"') : page.index('id="failures"')]
    assert f"/jobs/{dead.pk}/" in orphans and "heartbeat stopped" in orphans
    assert f"/jobs/{unsent.pk}/" in orphans and "never sent" in orphans
    assert "Disk full" in page[page.index('id="failures"') :] and f"/jobs/{failed.pk}/" in page
    assert 'id="queues"' in page and 'id="workers"' in page
    assert 'href="/ops/status/"' in page  # in the nav, for admins


def test_api_paths_never_answer_an_html_csrf_page(db, labeler):
    """A PATCH with a token to a path that is no endpoint is a JSON 404 (it once was
    Django's HTML CSRF page), and a refused CSRF check on an API path answers JSON."""
    import json

    from django.test import Client, RequestFactory

    from webapp.accounts.models import ApiToken
    from webapp.security import csrf_failure

    _, key = ApiToken.issue(labeler, "csrf")
    client = Client(enforce_csrf_checks=True)
    answer = client.generic(
        "PATCH", "/api/v1/boxes/-5/", b"{}", "application/json", HTTP_AUTHORIZATION=f"Token {key}"
    )
    assert answer.status_code == 404 and answer["Content-Type"] == "application/json"
    refused = csrf_failure(RequestFactory().post("/api/v1/anything/"), "CSRF cookie not set.")
    assert refused.status_code == 403 and refused["Content-Type"] == "application/json"
    assert json.loads(refused.content)["error"]["code"] == "csrf_failed"
    page = csrf_failure(RequestFactory().post("/login/"), "CSRF cookie not set.")
    assert page.status_code == 403 and page["Content-Type"].startswith("text/html")
