"""Guessing does not pay: after too many failed sign-ins or bad API keys from one address,
even the right password or key is refused for a while (429), in Redis for every process."""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD
from webapp.accounts.models import ApiToken

pytestmark = pytest.mark.django_db


def test_sign_ins_are_throttled_then_allowed_after_the_window(client, labeler, settings):
    settings.LOGIN_FAILURE_LIMIT = 5
    address = {"REMOTE_ADDR": "203.0.113.5"}
    for _ in range(5):
        wrong = client.post("/login/", {"username": "lab", "password": "nope"}, **address)
        assert wrong.status_code == 200
    right = client.post("/login/", {"username": "lab", "password": PASSWORD}, **address)
    assert right.status_code == 429 and "Too many failed sign-ins" in right.content.decode()
    assert "_auth_user_id" not in client.session
    # Another address is not punished for this one's guesses.
    other = client.post(
        "/login/", {"username": "lab", "password": PASSWORD}, REMOTE_ADDR="198.51.100.9"
    )
    assert other.status_code == 302 and client.session["_auth_user_id"] == str(labeler.pk)


def test_bad_api_keys_are_throttled(client, labeler, settings):
    settings.TOKEN_FAILURE_LIMIT = 5
    _, key = ApiToken.issue(labeler, "real")
    address = {"REMOTE_ADDR": "203.0.113.6"}
    for n in range(5):
        bad = client.get("/api/v1/jobs/", headers={"x-api-key": f"bad-{n}"}, **address)
        assert bad.status_code == 401
    good = client.get("/api/v1/jobs/", headers={"x-api-key": key}, **address)
    assert good.status_code == 429 and good.json()["error"]["code"] == "throttled"
    elsewhere = client.get("/api/v1/jobs/", headers={"x-api-key": key}, REMOTE_ADDR="192.0.2.1")
    assert elsewhere.status_code == 200
