"""Import and export endpoints (see webapp.labeling.urls)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from webapp.labeling import transfer_views

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "datasets/<int:dataset_id>/import/",
        transfer_views.DatasetImportView.as_view(),
        name="dataset-import",
    ),
    path(
        "datasets/<int:dataset_id>/export/",
        transfer_views.DatasetExportView.as_view(),
        name="dataset-export",
    ),
]
