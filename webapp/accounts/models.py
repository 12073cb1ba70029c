"""Users with a role, and API tokens that are stored hashed and can be revoked."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    REVIEWER = "reviewer", "Reviewer"  # labels, and approves or sends back others' labels
    LABELER = "labeler", "Labeler"
    VIEWER = "viewer", "Viewer"


class User(AbstractUser):
    """A person. `role` decides what they may change; superusers always act as admins."""

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    @property
    def effective_role(self) -> str:
        return Role.ADMIN if self.is_superuser else str(self.role)

    @property
    def can_edit(self) -> bool:
        """Labelers and admins upload, label and start jobs; viewers only look."""
        return self.effective_role in (Role.ADMIN, Role.REVIEWER, Role.LABELER)

    @property
    def is_admin_role(self) -> bool:
        return self.effective_role == Role.ADMIN


TOKEN_PREFIX_LEN = 8


def hash_token(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """A named API key. Only its sha256 is stored: the key is shown once, at creation."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=TOKEN_PREFIX_LEN, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, user: User, name: str) -> tuple[ApiToken, str]:
        """Create a token and return it with its plain key (never stored)."""
        key = secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user,
            name=name[:100] or "token",
            prefix=key[:TOKEN_PREFIX_LEN],
            key_hash=hash_token(key),
        )
        return token, key

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def revoke(self) -> None:
        ApiToken.objects.filter(pk=self.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        self.refresh_from_db(fields=["revoked_at"])


def signed_in_user(user: object) -> User:
    """The request's user where login is already enforced (pages and API permissions)."""
    if not isinstance(user, User):
        raise PermissionError("a signed-in user is required here")
    return user
