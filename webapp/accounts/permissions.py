"""Role permissions, enforced on the server for every API view."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rest_framework.permissions import SAFE_METHODS, BasePermission

if TYPE_CHECKING:  # importing rest_framework.views here would be circular via api_settings
    from rest_framework.request import Request
    from rest_framework.views import APIView


def user_can_edit(user: Any) -> bool:
    return bool(user and user.is_authenticated and getattr(user, "can_edit", False))


def user_is_admin(user: Any) -> bool:
    return bool(user and user.is_authenticated and getattr(user, "is_admin_role", False))


class RolePermission(BasePermission):
    """Everyone signed in may read; labelers and admins may write.

    Views that need more (admin only) set `admin_only_write = True`.
    """

    message = "Your role does not allow this action."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in SAFE_METHODS:
            return True
        if getattr(view, "admin_only_write", False):
            return user_is_admin(user)
        return user_can_edit(user)


class IsAuthenticatedAnyRole(BasePermission):
    """For actions every signed-in user may take on their own things (their tokens)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        return bool(request.user and request.user.is_authenticated)
