"""Account pages: API tokens (create, show once, revoke)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from webapp.accounts import throttle
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


class ThrottledLoginView(LoginView):
    """The sign-in page, refusing (429) an address and user name after
    ``LOGIN_FAILURE_LIMIT`` failures within ``THROTTLE_WINDOW_S``, even with the right
    password: guessing must not pay off."""

    redirect_authenticated_user = True

    def _who(self) -> str:
        name = str(self.request.POST.get("username", ""))[:150].lower()
        return f"{throttle.client_address(self.request)}:{name}"

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if throttle.blocked("login", self._who(), settings.LOGIN_FAILURE_LIMIT):
            # Not even checked: the right password must not be told apart from a guess.
            context = self.get_context_data(form=AuthenticationForm(request), throttled=True)
            return self.render_to_response(context, status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        throttle.failed("login", self._who())
        return super().form_invalid(form)

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        throttle.forget("login", self._who())
        return super().form_valid(form)
