"""Roles in the admin: groups with exactly their permissions, kept in step with User.role."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from webapp.accounts.models import Role, User
from webapp.images.models import Box, Image, LabelClass
from webapp.labeling import roles

pytestmark = pytest.mark.django_db


def names(group: Group) -> set[str]:
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}


def group_names(user: User) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


def test_each_role_group_has_exactly_its_permissions():
    assert names(Group.objects.get(name="Labelers")) == set(roles.LABELER_PERMISSIONS)
    assert names(Group.objects.get(name="Reviewers")) == set(roles.REVIEWER_PERMISSIONS)
    viewers = names(Group.objects.get(name="Viewers"))
    assert viewers == set(roles.LABELING_VIEW) and all(".view_" in n for n in viewers)
    assert Group.objects.get(name="Admins").permissions.count() == Permission.objects.count()
    # Nothing outside the labeling data for labelers and reviewers.
    reviewer = names(Group.objects.get(name="Reviewers"))
    assert {n.split(".")[0] for n in reviewer} == {"images", "faces"}
    assert "images.delete_dataset" not in reviewer and "images.add_image" not in reviewer


def test_migrate_sets_the_groups_permissions_back_to_exactly_the_list():
    labelers = Group.objects.get(name="Labelers")
    labelers.permissions.add(Permission.objects.get(codename="delete_user"))
    labelers.permissions.remove(Permission.objects.get(codename="view_image"))
    Group.objects.get(name="Viewers").delete()
    call_command("migrate", verbosity=0, interactive=False)  # post_migrate runs the handler
    assert names(Group.objects.get(name="Labelers")) == set(roles.LABELER_PERMISSIONS)
    assert names(Group.objects.get(name="Viewers")) == set(roles.LABELING_VIEW)
    call_command("migrate", verbosity=0, interactive=False)  # and again: nothing changes
    assert Group.objects.filter(name__in=roles.GROUP_NAMES.values()).count() == 4
    assert names(Group.objects.get(name="Labelers")) == set(roles.LABELER_PERMISSIONS)


def test_staff_flag_and_role_group_follow_the_role_on_every_save(labeler):
    labeler.refresh_from_db()
    assert labeler.is_staff and group_names(labeler) == {"Labelers"}
    extra = Group.objects.create(name="night shift")
    labeler.groups.add(extra)
    labeler.role = Role.REVIEWER
    labeler.save()
    labeler.refresh_from_db()
    assert labeler.is_staff and group_names(labeler) == {"Reviewers", "night shift"}
    assert labeler.has_perm("images.change_splitassignment")
    labeler.role = Role.VIEWER
    labeler.is_staff = False  # viewers still open the admin (view permissions only)
    labeler.save()
    fresh = User.objects.get(pk=labeler.pk)
    assert fresh.is_staff and group_names(fresh) == {"Viewers", "night shift"}
    assert not fresh.has_perm("images.change_image") and fresh.has_perm("images.view_image")


def test_superusers_are_left_alone(db):
    root = User.objects.create_superuser("root", "", "pw-for-tests-123", role=Role.VIEWER)
    root.refresh_from_db()
    assert root.is_staff and group_names(root) == set()
    User.objects.filter(pk=root.pk).update(is_staff=False)
    root.refresh_from_db()
    root.save()
    assert User.objects.get(pk=root.pk).is_staff is False


def test_users_made_before_the_groups_are_brought_in_step_by_migrate(labeler, viewer):
    User.objects.filter(pk__in=[labeler.pk, viewer.pk]).update(is_staff=False)
    User.groups.through.objects.all().delete()
    viewers = Group.objects.get(name="Viewers")
    labeler.groups.add(viewers)  # a stale membership: migrate removes it
    call_command("migrate", verbosity=0, interactive=False)
    for user, group in ((labeler, "Labelers"), (viewer, "Viewers")):
        user = User.objects.get(pk=user.pk)
        assert user.is_staff and group_names(user) == {group}


def test_a_login_save_does_not_touch_groups(client, labeler):
    User.groups.through.objects.filter(user=labeler).delete()
    client.login(username="lab", password="pw-for-tests-123")  # save(update_fields=[last_login])
    assert group_names(labeler) == set()


def test_labeler_opens_the_labeling_admin_and_nothing_else(client, labeler, image):
    client.force_login(labeler)
    assert client.get("/admin/images/image/").status_code == 200
    assert client.get(f"/admin/images/image/{image.pk}/change/").status_code == 200
    assert client.get("/admin/faces/subject/").status_code == 200
    assert client.get("/admin/images/labelchange/").status_code == 200
    for url in ("/admin/accounts/user/", "/admin/accounts/apitoken/", "/admin/auth/group/"):
        assert client.get(url).status_code == 403, url
    # Model versions and jobs have no admin page; a labeler has no permission on them anyway.
    for url in ("/admin/training/modelversion/", "/admin/jobs/job/"):
        assert client.get(url).status_code in (403, 404), url
    assert not labeler.has_perm("training.view_modelversion")
    assert not labeler.has_perm("jobs.view_job")
    index = client.get("/admin/").content.decode()
    assert "/admin/images/image/" in index and "/admin/accounts/user/" not in index
    # Datasets: view and change, never delete.
    dataset = image.dataset
    assert client.get(f"/admin/images/dataset/{dataset.pk}/delete/").status_code == 403
    assert client.get(f"/admin/images/dataset/{dataset.pk}/change/").status_code == 200


def test_viewer_sees_but_cannot_change(client, viewer, image, classes):
    box = Box.objects.create(image=image, label_class=classes["RBC"], x1=1, y1=1, x2=9, y2=9)
    client.force_login(viewer)
    listing = client.get("/admin/images/image/")
    assert listing.status_code == 200
    assert b'name="action"' not in listing.content  # no bulk actions offered
    page = client.get(f"/admin/images/image/{image.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    refused = client.post(
        f"/admin/images/image/{image.pk}/change/",
        {"source": "app", "status": "reviewed", "review_comment": "", "loaded_labels_version": 0},
    )
    assert refused.status_code == 403
    fresh = Image.objects.get(pk=image.pk)
    assert (fresh.source, fresh.status) == ("upload", "new")
    # Bulk actions are refused too, and so is editing a box or a class.
    client.post(
        "/admin/images/image/",
        {"action": "set_source", "_selected_action": [image.pk], "apply": "1", "source": "app"},
    )
    assert Image.objects.get(pk=image.pk).source == "upload"
    assert client.post(f"/admin/images/box/{box.pk}/change/", {"x1": 2}).status_code == 403
    rbc = classes["RBC"]
    assert (
        client.post(f"/admin/images/labelclass/{rbc.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert LabelClass.objects.filter(pk=rbc.pk).exists()
    assert Box.objects.get(pk=box.pk).x1 == 1


def test_admin_role_has_full_access(client, admin_user):
    client.force_login(admin_user)
    assert client.get("/admin/accounts/user/").status_code == 200
    assert client.get("/admin/accounts/apitoken/").status_code == 200
    assert Group.objects.get(name="Admins") in admin_user.groups.all()


def test_only_admins_delete_a_class_that_has_boxes(client, labeler, admin_user, image, classes):
    Box.objects.create(image=image, label_class=classes["RBC"], x1=1, y1=1, x2=9, y2=9)
    client.force_login(labeler)
    rbc, wbc = classes["RBC"], classes["WBC"]
    assert client.get(f"/admin/images/labelclass/{rbc.pk}/delete/").status_code == 403
    assert client.get(f"/admin/images/labelclass/{wbc.pk}/delete/").status_code == 200
    client.post(f"/admin/images/labelclass/{wbc.pk}/delete/", {"post": "yes"})
    assert not LabelClass.objects.filter(pk=wbc.pk).exists()
    client.force_login(admin_user)
    client.post(f"/admin/images/labelclass/{rbc.pk}/delete/", {"post": "yes"})
    assert not LabelClass.objects.filter(pk=rbc.pk).exists()
    assert Box.objects.filter(image=image).count() == 0


def test_the_face_gallery_keeps_its_name_and_task(client, labeler, admin_user, settings):
    from webapp.images.models import Dataset, Task

    gallery = Dataset.objects.create(name=settings.FACES_GALLERY_DATASET, task=Task.FACES)
    client.force_login(labeler)
    url = f"/admin/images/dataset/{gallery.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200 and 'name="name"' not in page.content.decode()
    client.post(url, {"name": "renamed", "task": "detection", "description": "x"})
    gallery.refresh_from_db()
    assert gallery.name == settings.FACES_GALLERY_DATASET and gallery.task == Task.FACES
    assert (
        client.post(f"/admin/images/dataset/{gallery.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert Dataset.objects.filter(pk=gallery.pk).exists()
