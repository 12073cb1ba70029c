"""The Content-Security-Policy every answer carries: scripts only from this site's own files
(no inline script, no inline handler, no eval), so markup smuggled into a page by data
cannot run; nothing from other origins, no plugins, no framing."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",  # style attributes (bar widths); never scripts
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", POLICY)
        return response


API_PREFIXES = ("/api/", "/v1/")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A refused CSRF check: the JSON error body on API paths, Django's page elsewhere."""
    if request.path.startswith(API_PREFIXES):
        from webapp.api.errors import error_body

        message = (
            "CSRF check failed: send an API token (Authorization: Token <key>) instead of "
            f"a session cookie, or the CSRF token with the session ({reason})."
        )
        return JsonResponse(error_body("csrf_failed", message), status=403)
    from django.views.csrf import csrf_failure as django_csrf_failure

    return django_csrf_failure(request, reason)
