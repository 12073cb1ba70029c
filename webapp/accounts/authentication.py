"""DRF authentication by API token: `Authorization: Token <key>`, `Bearer <key>` or `x-api-key`."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from webapp.accounts import throttle
from webapp.accounts.models import ApiToken, User, hash_token

# last_used_at is informational; writing it on every request would turn reads into writes.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def key_from_headers(request: Request | HttpRequest) -> str | None:
    """The API key a request carries in its headers (never its body): ``Authorization:
    Token|Bearer <key>``, else ``x-api-key`` (also beside an ``Authorization`` of another
    scheme, such as the Basic header a proxy adds)."""
    raw = request.META.get("HTTP_AUTHORIZATION", "")
    header = (raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)).strip()
    if header:
        scheme, _, key = header.partition(" ")
        if scheme.lower() in ("token", "bearer") and key.strip():
            return key.strip()
    api_key = request.headers.get("x-api-key", "").strip()
    return api_key or None


_key_from_request = key_from_headers


def authenticate_key(key: str) -> tuple[User, ApiToken]:
    """The user and token an API key belongs to; AuthenticationFailed if none or disabled."""
    token = (
        ApiToken.objects.active().select_related("user").filter(key_hash=hash_token(key)).first()
    )
    if token is None:
        raise exceptions.AuthenticationFailed("Invalid or revoked API token.")
    if not token.user.is_active:
        raise exceptions.AuthenticationFailed("This account is disabled.")
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user, token


class ApiTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        key = _key_from_request(request)
        return None if key is None else authenticate_throttled(request, key)

    def authenticate_header(self, request: Request) -> str:
        return "Token"


def authenticate_throttled(request: Request | HttpRequest, key: str) -> tuple[User, ApiToken]:
    """:func:`authenticate_key`, refused (429) for an address that sent too many bad keys.

    A key that passed is remembered on the request: the body guard checks it before the
    body is read and DRF's authentication asks again, one lookup serves both.
    """
    raw = getattr(request, "_request", request)
    passed = getattr(raw, "_api_key_passed", None)
    if passed is not None and passed[0] == key:
        return passed[1]  # type: ignore[no-any-return]
    who = throttle.client_address(request)
    if throttle.blocked("token", who, settings.TOKEN_FAILURE_LIMIT):
        raise exceptions.Throttled(
            wait=settings.THROTTLE_WINDOW_S,
            detail="Too many invalid API keys from this address; try again later.",
        )
    try:
        result = authenticate_key(key)
    except exceptions.AuthenticationFailed:
        throttle.failed("token", who)
        raise
    setattr(raw, "_api_key_passed", (key, result))  # noqa: B010 (a private mark on the request)
    return result
