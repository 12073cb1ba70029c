"""Account pages: API tokens (create, show once, revoke)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from webapp.accounts.models import ApiToken, signed_in_user


@require_http_methods(["GET", "POST"])
def tokens_page(request: HttpRequest) -> HttpResponse:
    new_key: str | None = None
    if request.method == "POST":
        name = request.POST.get("name", "").strip() or "API token"
        token, new_key = ApiToken.issue(signed_in_user(request.user), name)
        messages.success(request, f"Token “{token.name}” created. Copy it now: it is shown once.")
    tokens = ApiToken.objects.filter(user=signed_in_user(request.user))
    return render(request, "accounts/tokens.html", {"tokens": tokens, "new_key": new_key})


@require_POST
def revoke_token(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    token.revoke()
    messages.info(request, f"Token “{token.name}” revoked.")
    return redirect("tokens")
