"""Labeling pages: the annotation page, the queue."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from webapp.labeling import views

app_name = "labeling"

urlpatterns: list[URLPattern | URLResolver] = [
    path("images/<int:image_id>/", views.annotate, name="annotate"),
    path("datasets/<int:dataset_id>/queue/", views.queue_page, name="queue"),
    path("datasets/<int:dataset_id>/next/", views.queue_next, name="next"),
]

# Import and export (webapp.labeling.transfer_views): the dataset page's import form.
from webapp.labeling import transfer_views  # noqa: E402

urlpatterns += [
    path("datasets/<int:dataset_id>/import/", transfer_views.import_page, name="dataset-import"),
]
