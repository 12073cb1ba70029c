from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from webapp.api import views
from webapp.api.errors import json_not_found
from webapp.detection.api import DetectView
from webapp.faces.urls import compreface_urlpatterns, native_urlpatterns

router = DefaultRouter()
router.register("datasets", views.DatasetViewSet, basename="dataset")
router.register("images", views.ImageViewSet, basename="image")
router.register("jobs", views.JobViewSet, basename="job")

app_name = "api"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    path("detect/", DetectView.as_view(), name="detect"),
    path("faces/", include(native_urlpatterns)),
    path("", include(compreface_urlpatterns)),
    path("", include("webapp.labeling.urls")),
    path("", include("webapp.analysis.urls")),
    path("", include("training.urls")),
    path("", include(router.urls)),
    re_path(r"^.*$", json_not_found),
]
