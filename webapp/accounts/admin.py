from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest

from webapp.accounts.models import ApiToken, User
from webapp.labeling.roles import sync_user


@admin.register(User)
class WorkbenchUserAdmin(UserAdmin):  # type: ignore[type-arg]
    fieldsets = (
        *(UserAdmin.fieldsets or ()),
        (
            "Role",
            {
                "fields": ("role",),
                "description": "The role decides the staff flag and the role group (Admins, "
                "Reviewers, Labelers, Viewers) on every save; other groups are kept.",
            },
        ),
    )
    list_display = ("username", "email", "role", "is_superuser", "is_active")
    list_filter = ("role", "is_superuser", "is_active")
    readonly_fields = ("is_staff",)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # The form writes the groups after the user row (and its post_save) was saved:
        # bring the role group back in step with the role afterwards.
        super().save_related(request, form, formsets, change)
        sync_user(form.instance)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at")
    list_filter = ("revoked_at",)
