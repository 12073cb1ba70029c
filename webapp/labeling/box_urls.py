"""Box, class, review and queue endpoints (see webapp.labeling.urls)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from webapp.labeling import box_views, face_views

urlpatterns: list[URLPattern | URLResolver] = [
    path("images/<int:pk>/boxes/", box_views.ImageBoxesView.as_view(), name="image-boxes"),
    path("images/<int:pk>/review/", box_views.ReviewView.as_view(), name="image-review"),
    path("boxes/<int:pk>/", box_views.BoxView.as_view(), name="box-detail"),
    path("datasets/<int:pk>/queue/", box_views.QueueView.as_view(), name="dataset-queue"),
    path(
        "datasets/<int:pk>/classes/",
        box_views.DatasetClassesView.as_view(),
        name="dataset-classes",
    ),
    path("classes/<int:pk>/", box_views.ClassView.as_view(), name="class-detail"),
    path("classes/<int:pk>/merge/", box_views.ClassMergeView.as_view(), name="class-merge"),
    path("images/<int:pk>/faces/", face_views.ImageFacesView.as_view(), name="image-faces"),
    path("images/<int:pk>/faces/find/", face_views.FindFacesView.as_view(), name="find-faces"),
    path(
        "images/<int:pk>/faces/<int:face_id>/",
        face_views.ImageFaceView.as_view(),
        name="image-face",
    ),
]
