"""Labeling endpoints under /api/v1/: boxes, classes and review (``box_urls``); import and
export (``transfer_urls``)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

urlpatterns: list[URLPattern | URLResolver] = [
    path("", include("webapp.labeling.box_urls")),
    path("", include("webapp.labeling.transfer_urls")),
]
