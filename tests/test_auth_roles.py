"""Every endpoint needs a login or token; roles are enforced on the server."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.images import jpeg_bytes
from webapp.accounts.models import ApiToken
from webapp.images.models import Image

pytestmark = pytest.mark.django_db


def jpeg_upload() -> dict[str, SimpleUploadedFile]:
    return {"file": SimpleUploadedFile("a.jpg", jpeg_bytes(), content_type="image/jpeg")}


@pytest.mark.parametrize("path", ["/", "/upload/", "/jobs/", "/datasets/", "/account/tokens/"])
def test_pages_redirect_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_login_page_is_public(client):
    assert client.get("/login/").status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/images/", "/api/v1/jobs/", "/api/v1/datasets/"])
def test_api_without_token_is_401(path):
    response = APIClient().get(path)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_media_needs_login(client, labeler_api, labeler):
    body = labeler_api.post("/api/v1/images/", jpeg_upload(), format="multipart").json()
    assert client.get(body["file_url"]).status_code == 302
    client.force_login(labeler)
    response = client.get(body["file_url"])
    assert response.status_code == 200
    assert b"".join(response.streaming_content)[:2] == b"\xff\xd8"


def test_viewer_can_read_but_not_upload(viewer_api):
    assert viewer_api.get("/api/v1/images/").status_code == 200
    response = viewer_api.post("/api/v1/images/", jpeg_upload(), format="multipart")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert Image.objects.count() == 0


def test_viewer_cannot_start_jobs(viewer_api, dataset):
    response = viewer_api.post("/api/v1/jobs/", {"kind": "image_stats", "dataset": dataset.pk})
    assert response.status_code == 403


@pytest.mark.parametrize("scheme", ["Token {}", "Bearer {}", "x-api-key"])
def test_token_schemes(labeler, scheme):
    _, key = ApiToken.issue(labeler, "t")
    client = APIClient()
    if scheme == "x-api-key":
        client.credentials(HTTP_X_API_KEY=key)
    else:
        client.credentials(HTTP_AUTHORIZATION=scheme.format(key))
    assert client.get("/api/v1/images/").status_code == 200


def test_revoked_token_is_refused(labeler):
    token, key = ApiToken.issue(labeler, "t")
    token.revoke()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = client.get("/api/v1/images/")
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_tokens_are_stored_hashed(labeler):
    token, key = ApiToken.issue(labeler, "t")
    assert key not in (token.key_hash, token.prefix + "x") and len(token.key_hash) == 64
    assert not ApiToken.objects.filter(key_hash=key).exists()


def test_create_api_token_command_prints_key_last(labeler, capsys):
    call_command("create_api_token", "lab")
    key = capsys.readouterr().out.strip().splitlines()[-1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/jobs/").status_code == 200


def test_create_api_token_unknown_user(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("create_api_token", "ghost")


def test_tokens_page_creates_shows_once_and_revokes(client, labeler):
    client.force_login(labeler)
    response = client.post("/account/tokens/", {"name": "camera"})
    key = response.context["new_key"]
    assert key and key.encode() in response.content
    token = ApiToken.objects.get(user=labeler, name="camera")
    assert client.get("/account/tokens/").context["new_key"] is None
    client.post(f"/account/tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_cannot_revoke_someone_elses_token(client, labeler, viewer):
    token, _ = ApiToken.issue(viewer, "theirs")
    client.force_login(labeler)
    assert client.post(f"/account/tokens/{token.pk}/revoke/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_csrf_is_enforced_for_session_api_writes(labeler):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(labeler)
    response = client.post("/api/v1/images/", jpeg_upload(), format="multipart")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]


def test_jobs_are_scoped_to_their_owner(
    labeler_api, viewer_api, dataset, django_capture_on_commit_callbacks
):
    created = labeler_api.post("/api/v1/jobs/", {"kind": "image_stats", "dataset": dataset.pk})
    assert created.status_code == 201
    job_id = created.json()["id"]
    assert viewer_api.get(f"/api/v1/jobs/{job_id}/").status_code == 404
    assert labeler_api.get(f"/api/v1/jobs/{job_id}/").status_code == 200


def test_login_and_logout(client, labeler):
    response = client.post("/login/", {"username": "lab", "password": "pw-for-tests-123"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_wrong_password_is_refused(client, labeler):
    response = client.post("/login/", {"username": "lab", "password": "wrong"})
    assert response.status_code == 200 and b"didn't match" in response.content
    assert client.get("/").status_code == 302
