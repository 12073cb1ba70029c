"""No body is read before the caller is known and its size allowed: an input stream that
explodes when read proves the refusals come from the headers alone."""

from __future__ import annotations

import pytest
from django.test import Client
from django.test.client import FakePayload

from tests.images import jpeg_bytes
from webapp.accounts.models import ApiToken
from webapp.images.models import Image

pytestmark = pytest.mark.django_db
MB = 2**20


class Exploding(FakePayload):
    """A request body nobody may read."""

    def read(self, *args, **kwargs):
        raise AssertionError("the body was read")

    def readline(self, *args, **kwargs):
        raise AssertionError("the body was read")


def _post(client: Client, path: str, length: int, **headers: str):
    return client.generic(
        "POST",
        path,
        b"x",
        content_type="multipart/form-data; boundary=zzz",
        CONTENT_LENGTH=str(length),
        **{"wsgi.input": Exploding(b"x")},
        **headers,
    )


@pytest.mark.parametrize(
    ("path", "length", "status", "code"),
    [
        ("/v1/vision/detection", 400 * MB, 401, "not_authenticated"),  # DeepStack: one image
        ("/v1/vision/detection", 3000 * MB, 413, "request_too_large"),  # over the 2 GB cap
        ("/api/v1/images/", 1 * MB, 401, "not_authenticated"),
        ("/api/v1/detect/", 10, 401, "not_authenticated"),
        ("/login/", 309 * MB, 401, "not_authenticated"),  # a login form is a few hundred bytes
        ("/upload/", 5 * MB, 401, "not_authenticated"),
    ],
)
def test_anonymous_bodies_are_refused_unread(client, path, length, status, code):
    response = _post(client, path, length)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_a_body_over_the_cap_is_refused_unread_even_when_signed_in(client, labeler, settings):
    settings.REQUEST_MAX_BYTES = 10 * MB
    client.force_login(labeler)
    response = _post(client, "/api/v1/images/", 11 * MB)
    assert response.status_code == 413 and "limit is 10 MB" in response.json()["error"]["message"]


@pytest.mark.parametrize("length", ["abc", "-5"])
def test_a_malformed_length_is_a_400(client, length):
    response = client.generic("POST", "/api/v1/images/", b"x", CONTENT_LENGTH=length)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_length"


def test_a_small_login_form_and_known_callers_pass(client, labeler):
    page = client.post("/login/", {"username": labeler.username, "password": "wrong"})
    assert page.status_code == 200  # the form again, with its error: the body was read
    _, key = ApiToken.issue(labeler, "guard")
    upload = client.post(
        "/api/v1/images/",
        {"file": _jpeg()},
        headers={"authorization": "Basic dXNlcjpwdw==", "x-api-key": key},
    )
    # A proxy's Basic header beside a valid x-api-key: the key still counts.
    assert upload.status_code == 201, upload.content
    assert Image.objects.count() == 1


def _jpeg():
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("a.jpg", jpeg_bytes(40, 30), content_type="image/jpeg")


def test_a_key_is_looked_up_once_per_request(client, labeler):
    """The guard checks the key before the body and DRF authenticates again: one lookup."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _, key = ApiToken.issue(labeler, "once")
    table = ApiToken._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        upload = client.post("/api/v1/images/", {"file": _jpeg()}, headers={"x-api-key": key})
    assert upload.status_code == 201, upload.content
    lookups = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("SELECT")]
    assert sum(f'FROM "{table}"' in sql for sql in lookups) == 1
    # A wrong key on the same kind of request is still refused before the body.
    bad = client.post("/api/v1/images/", {"file": _jpeg()}, headers={"x-api-key": key + "x"})
    assert bad.status_code == 401 and Image.objects.count() == 1
