"""The error sheet's pages (see webapp.analysis.sheet_pages), under /analysis/."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from webapp.analysis import sheet_pages

urlpatterns: list[URLPattern | URLResolver] = [
    path("evaluations/<int:evaluation_id>/sheet/", sheet_pages.sheet_page, name="sheet"),
    path(
        "evaluations/<int:evaluation_id>/sheet/import/",
        sheet_pages.import_page,
        name="sheet-import",
    ),
    path(
        "evaluations/<int:evaluation_id>/sheet/tags/<int:tag_id>/",
        sheet_pages.tag_page,
        name="sheet-tag",
    ),
    path(
        "evaluations/<int:evaluation_id>/sheet/tags/<int:tag_id>/send-back/",
        sheet_pages.tag_send_back,
        name="sheet-tag-send-back",
    ),
    path(
        "evaluations/<int:evaluation_id>/sheet/splits/<str:split>/",
        sheet_pages.split_page,
        name="sheet-split",
    ),
    path("error-cases/<int:case_id>/crop.jpg", sheet_pages.case_crop, name="case-crop"),
]
