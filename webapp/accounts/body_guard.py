"""Refuse a request body before anything reads it: too large, or sent by nobody we know.

Django and DRF read a multipart body (writing its files to disk) as soon as anything
touches ``request.POST`` or ``request.data``, and the CSRF check does; an anonymous caller
could fill the disk before being told 401. This middleware runs first, on the headers only:

- ``Content-Length`` over ``REQUEST_MAX_BYTES`` (or not a number) is refused, 413 (400);
- a body from a caller with neither a session nor an API key in the headers (``Authorization:
  Token|Bearer``, ``x-api-key``) is refused, 401, except the small ones that carry their
  credentials inside: the login form (``LOGIN_MAX_BYTES``) and the DeepStack route, whose
  clients send ``api_key`` as a form field (one image's worth, ``UPLOAD_MAX_BYTES``).

A body with no ``Content-Length`` (chunked) is not read by Django's WSGI handler at all.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import resolve_url
from rest_framework import exceptions

from webapp.accounts.authentication import authenticate_throttled, key_from_headers
from webapp.api.errors import error_body

# Paths whose callers authenticate inside the body, and the most they may send unknown.
LOGIN_MAX_BYTES = 64 * 1024


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status)


class BodyGuardMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refused = self.refusal(request)
        return refused if refused is not None else self.get_response(request)

    def refusal(self, request: HttpRequest) -> HttpResponse | None:
        raw = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw)
        except ValueError:
            return _error(400, "invalid_length", "Content-Length must be a whole number.")
        if length < 0:
            return _error(400, "invalid_length", "Content-Length must be a whole number.")
        if length == 0:
            return None
        cap = settings.REQUEST_MAX_BYTES
        if length > cap:
            return _error(
                413,
                "request_too_large",
                f"The request is {length / 2**20:.0f} MB; the limit is {cap / 2**20:.0f} MB.",
            )
        try:
            if self._known(request):
                return None
        except exceptions.Throttled as exc:
            return _error(429, "throttled", str(exc.detail))
        inside = self._credentials_inside(request)
        if inside is not None and length <= inside:
            return None
        return _error(
            401,
            "not_authenticated",
            "Sign in, or send an API key in the Authorization or x-api-key header, "
            "before sending a body.",
        )

    def _known(self, request: HttpRequest) -> bool:
        if request.user.is_authenticated:  # the session cookie: no body read
            return True
        key = key_from_headers(request)
        if key is None:
            return False
        try:
            authenticate_throttled(request, key)
        except exceptions.AuthenticationFailed:
            return False
        return True

    def _credentials_inside(self, request: HttpRequest) -> int | None:
        path = request.path
        if path == resolve_url(settings.LOGIN_URL) or path.startswith("/admin/login"):
            return LOGIN_MAX_BYTES
        if path.startswith("/v1/vision/"):
            return int(settings.UPLOAD_MAX_BYTES) + 64 * 1024
        return None
