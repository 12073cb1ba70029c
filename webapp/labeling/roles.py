"""Roles as Django groups, so the admin grants labelers exactly the labeling data.

One group per role holds exactly the permissions in :data:`ROLE_PERMISSIONS` (admins:
every permission there is). :func:`ensure_role_groups` runs after every ``migrate`` and
sets each group's permissions to exactly its list, so a permission granted by hand, or
one a new model brings, never lingers in the wrong group.

A user's ``is_staff`` and role-group membership follow ``User.role`` whenever the user is
saved (:func:`on_user_saved`); every role may open the admin: viewers with view
permissions only, so they can look and change nothing. Superusers are left as they are:
they pass every permission check already. Groups that are not role groups are never
touched, so an admin can still grant someone an extra group by hand.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Q

from webapp.accounts.models import Role, User

GROUP_NAMES: dict[str, str] = {
    Role.ADMIN: "Admins",
    Role.REVIEWER: "Reviewers",
    Role.LABELER: "Labelers",
    Role.VIEWER: "Viewers",
}

# Every role opens the admin; what each may do there is its group's permissions.
STAFF_ROLES = frozenset(GROUP_NAMES)

LABELING_VIEW = (
    "images.view_dataset",
    "images.view_labelclass",
    "images.view_image",
    "images.view_box",
    "images.view_labelchange",
    "faces.view_subject",
    "faces.view_face",
)

# Images are added by upload or import only (validated, hashed), so nobody gets
# add_image. A class may be deleted while no box uses it (a typo); one with boxes would
# take them along with no history, so the class admin leaves that to admins (the class
# API merges classes instead). Subjects go with their faces, as on the People page.
LABELER_PERMISSIONS = (
    *LABELING_VIEW,
    "images.change_dataset",
    "images.add_labelclass",
    "images.change_labelclass",
    "images.delete_labelclass",
    "images.change_image",
    "images.add_box",
    "images.change_box",
    "images.delete_box",
    "faces.add_subject",
    "faces.change_subject",
    "faces.delete_subject",
    "faces.change_face",
    "faces.delete_face",
)

# Reviewers also curate: they may delete an image (a duplicate, not a photo at all) and
# move images between splits. A split decides what a model is validated and tested on,
# so a labeler moving images out of test would leak them into training unnoticed.
REVIEWER_PERMISSIONS = (
    *LABELER_PERMISSIONS,
    "images.delete_image",
    "images.view_splitassignment",
    "images.add_splitassignment",
    "images.change_splitassignment",
)

ALL_PERMISSIONS = ("*",)

ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    Role.ADMIN: ALL_PERMISSIONS,
    Role.REVIEWER: REVIEWER_PERMISSIONS,
    Role.LABELER: LABELER_PERMISSIONS,
    Role.VIEWER: LABELING_VIEW,
}

# A save touching only these fields (a login writes last_login) cannot change a role.
_ROLE_FIELDS = frozenset({"role", "is_staff", "is_superuser"})


def permissions_for(names: tuple[str, ...], using: str = DEFAULT_DB_ALIAS) -> list[Permission]:
    """The permission rows for ``("app_label.codename", ...)``; ``("*",)`` means all.

    Raises:
        ImproperlyConfigured: a name that matches no permission (a typo, a renamed model).
    """
    rows = Permission.objects.using(using).select_related("content_type")
    if names == ALL_PERMISSIONS:
        return list(rows)
    wanted = Q()
    for name in names:
        app_label, codename = name.split(".", 1)
        wanted |= Q(content_type__app_label=app_label, codename=codename)
    found = list(rows.filter(wanted))
    missing = set(names) - {f"{p.content_type.app_label}.{p.codename}" for p in found}
    if missing:
        raise ImproperlyConfigured(f"Role permissions name unknown permissions: {sorted(missing)}")
    return found


def _ensure_group(role: str, using: str) -> Group:
    group, _ = Group.objects.using(using).get_or_create(name=GROUP_NAMES[role])
    group.permissions.set(permissions_for(ROLE_PERMISSIONS[role], using))
    return group


def ensure_role_groups(using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> dict[str, Group]:
    """The post_migrate handler: each role's group with exactly its permissions, and every
    user's staff flag and role group brought in step (users made before the groups)."""
    # post_migrate is sent app by app; make sure every app's permissions exist before the
    # lists are resolved, whichever app's signal this is.
    for config in apps.get_app_configs():
        create_permissions(config, verbosity=0, using=using)
    groups = {role: _ensure_group(role, using) for role in GROUP_NAMES}
    _sync_all_users(groups, using)
    return groups


def _sync_all_users(groups: dict[str, Group], using: str) -> None:
    people = User.objects.using(using).filter(is_superuser=False)
    people.filter(role__in=STAFF_ROLES, is_staff=False).update(is_staff=True)
    people.exclude(role__in=STAFF_ROLES).filter(is_staff=True).update(is_staff=False)
    through = User.groups.through
    for role, group in groups.items():
        members = through.objects.using(using).filter(group=group, user__is_superuser=False)
        members.exclude(user__role=role).delete()
        joining = people.filter(role=role).exclude(groups=group).values_list("pk", flat=True)
        through.objects.using(using).bulk_create(
            [through(user_id=pk, group_id=group.pk) for pk in joining]
        )


def sync_user(user: User) -> None:
    """Make ``user``'s ``is_staff`` and role group match ``user.role`` (not superusers)."""
    if user.is_superuser:
        return
    using = user._state.db or DEFAULT_DB_ALIAS
    staff = user.role in STAFF_ROLES
    if user.is_staff != staff:
        User.objects.using(using).filter(pk=user.pk).update(is_staff=staff)
        user.is_staff = staff
    role_groups = list(Group.objects.using(using).filter(name__in=GROUP_NAMES.values()))
    wanted = next((g for g in role_groups if g.name == GROUP_NAMES.get(user.role)), None)
    if wanted is None and user.role in GROUP_NAMES:
        # Only a database flushed without post_migrate lacks the groups.
        wanted = _ensure_group(user.role, using)
    user.groups.remove(*[g for g in role_groups if g != wanted])
    if wanted is not None:
        user.groups.add(wanted)


def on_user_saved(
    sender: type[User],
    instance: User,
    raw: bool = False,
    update_fields: frozenset[str] | None = None,
    **kwargs: Any,
) -> None:
    """post_save: keep the saved user's staff flag and role group in step with the role."""
    if raw or (update_fields is not None and not _ROLE_FIELDS & set(update_fields)):
        return
    sync_user(instance)
