from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any, cast

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from tests.factories import DatasetFactory, UserFactory
from webapp.accounts.models import ApiToken, Role, User

PASSWORD = "pw-for-tests-123"


@pytest.fixture(autouse=True)
def _clean_media() -> Iterator[None]:
    yield
    shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)


def _user(role: str, **kwargs: Any) -> User:
    return cast(User, UserFactory(role=role, **kwargs))


@pytest.fixture
def labeler(db: None) -> User:
    return _user(Role.LABELER, username="lab")


@pytest.fixture
def viewer(db: None) -> User:
    return _user(Role.VIEWER, username="view")


@pytest.fixture
def admin_user(db: None) -> User:
    return _user(Role.ADMIN, username="boss", is_staff=True)


def token_client(user: User) -> APIClient:
    _, key = ApiToken.issue(user, "test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def labeler_api(labeler: User) -> APIClient:
    return token_client(labeler)


@pytest.fixture
def viewer_api(viewer: User) -> APIClient:
    return token_client(viewer)


@pytest.fixture
def dataset(db: None) -> Any:
    return DatasetFactory()
