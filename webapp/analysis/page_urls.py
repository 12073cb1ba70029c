"""Error analysis pages: evaluations and model pages (``eval_page_urls``), the spreadsheet
(``sheet_page_urls``)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

app_name = "analysis"

urlpatterns: list[URLPattern | URLResolver] = [
    path("", include("webapp.analysis.eval_page_urls")),
    path("", include("webapp.analysis.sheet_page_urls")),
]
