"""Error analysis endpoints under /api/v1/: evaluations and their cases (``eval_urls``), the
spreadsheet's tags, totals and exports (``sheet_urls``)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

urlpatterns: list[URLPattern | URLResolver] = [
    path("", include("webapp.analysis.eval_urls")),
    path("", include("webapp.analysis.sheet_urls")),
]
