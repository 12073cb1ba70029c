"""The training app's API under /api/v1/ (included by ``webapp.api.urls``)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from training import split_views

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "datasets/<int:pk>/splits/",
        split_views.DatasetSplitsView.as_view(),
        name="dataset-splits",
    ),
]
