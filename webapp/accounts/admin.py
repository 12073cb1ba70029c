from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from webapp.accounts.models import ApiToken, User


@admin.register(User)
class WorkbenchUserAdmin(UserAdmin):  # type: ignore[type-arg]
    fieldsets = (*(UserAdmin.fieldsets or ()), ("Role", {"fields": ("role",)}))
    list_display = ("username", "email", "role", "is_superuser", "is_active")
    list_filter = ("role", "is_superuser", "is_active")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at")
    list_filter = ("revoked_at",)
