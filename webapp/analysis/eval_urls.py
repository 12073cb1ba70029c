"""Evaluation endpoints under /api/v1/ (views in ``eval_views``): ``evaluations/``,
``evaluations/{id}/`` and ``evaluations/{id}/errors/``. URL names ``api:evaluation-list``,
``api:evaluation-detail``, ``api:evaluation-errors``."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver
from rest_framework.routers import SimpleRouter

from webapp.analysis.eval_views import EvaluationViewSet

router = SimpleRouter()
router.register("evaluations", EvaluationViewSet, basename="evaluation")

urlpatterns: list[URLPattern | URLResolver] = [*router.urls]
