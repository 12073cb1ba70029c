"""Evaluation pages under /analysis/ (views in ``eval_pages``; namespace ``analysis``)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from webapp.analysis import eval_pages

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "datasets/<int:dataset_id>/evaluations/",
        eval_pages.evaluations_page,
        name="evaluations",
    ),
    path(
        "datasets/<int:dataset_id>/evaluations/start/",
        eval_pages.evaluation_start,
        name="evaluation-start",
    ),
    path("evaluations/<int:evaluation_id>/", eval_pages.evaluation_page, name="evaluation"),
]
