"""Training pages under /training/."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from training import pages

app_name = "training"

urlpatterns: list[URLPattern | URLResolver] = [
    path("", pages.training_page, name="index"),
    path("runs/<int:run_id>/", pages.run_page, name="run"),
    path("runs/<int:run_id>/cancel/", pages.run_cancel, name="cancel"),
    path("models/", pages.models_page, name="models"),
    path("models/<int:version_id>/promote/", pages.promote_page, name="promote"),
    path("datasets/<int:dataset_id>/rollback/", pages.rollback_page, name="rollback"),
    path("datasets/<int:dataset_id>/splits/", pages.splits_page, name="splits"),
]
