"""The training app's API under /api/v1/ (included by ``webapp.api.urls``)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from training import run_views, split_views

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "datasets/<int:pk>/splits/",
        split_views.DatasetSplitsView.as_view(),
        name="dataset-splits",
    ),
    path("training/runs/", run_views.RunsView.as_view(), name="training-runs"),
    path("training/backbones/", run_views.BackbonesView.as_view(), name="training-backbones"),
    path("training/runs/<int:pk>/", run_views.RunView.as_view(), name="training-run"),
    path(
        "training/runs/<int:pk>/cancel/", run_views.RunCancelView.as_view(), name="training-cancel"
    ),
    path("models/", run_views.ModelsView.as_view(), name="models"),
    path("models/<int:pk>/", run_views.ModelView.as_view(), name="model"),
    path("models/<int:pk>/promote/", run_views.PromoteView.as_view(), name="model-promote"),
    path("datasets/<int:pk>/rollback/", run_views.RollbackView.as_view(), name="dataset-rollback"),
]
