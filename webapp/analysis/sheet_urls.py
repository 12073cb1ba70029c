"""The error sheet's endpoints under /api/v1/ (see webapp.analysis.sheet_views)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from webapp.analysis import sheet_views

urlpatterns: list[URLPattern | URLResolver] = [
    path("error-cases/<int:pk>/", sheet_views.ErrorCaseView.as_view(), name="error-case"),
    path(
        "datasets/<int:pk>/error-tags/",
        sheet_views.DatasetErrorTagsView.as_view(),
        name="dataset-error-tags",
    ),
    path("error-tags/<int:pk>/", sheet_views.ErrorTagView.as_view(), name="error-tag"),
    path(
        "evaluations/<int:pk>/totals/",
        sheet_views.TotalsView.as_view(),
        name="evaluation-totals",
    ),
    path(
        "evaluations/<int:pk>/export/",
        sheet_views.ExportView.as_view(),
        name="evaluation-export",
    ),
    path(
        "evaluations/<int:pk>/import/",
        sheet_views.ImportView.as_view(),
        name="evaluation-import",
    ),
]
