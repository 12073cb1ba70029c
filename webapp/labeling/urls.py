"""Labeling endpoints under /api/v1/: boxes, classes, review, import and export."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

urlpatterns: list[URLPattern | URLResolver] = []
