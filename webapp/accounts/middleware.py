"""Every page requires login, except the login page itself.

The API authenticates per request (token or session) inside DRF and answers 401/403 as
JSON, so it is left to DRF rather than redirected to the login page.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.http import HttpRequest, HttpResponseBase

API_PREFIXES = ("/api/", "/v1/")


class LoginRequiredForPagesMiddleware(LoginRequiredMiddleware):
    def process_view(
        self,
        request: HttpRequest,
        view_func: Any,
        view_args: Any,
        view_kwargs: Any,
    ) -> HttpResponseBase | None:
        if request.path.startswith(API_PREFIXES):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)
