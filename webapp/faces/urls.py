"""Routes of the faces API, included by ``webapp/api/urls.py`` under ``/api/v1/``."""

from django.urls import URLPattern, URLResolver, path, re_path
from rest_framework.routers import SimpleRouter

from webapp.faces import api, compreface

router = SimpleRouter()
router.register("subjects", api.SubjectViewSet, basename="face-subject")
router.register("faces", api.FaceViewSet, basename="face")

# Under /api/v1/faces/.
native_urlpatterns: list[URLPattern | URLResolver] = [
    path("verify/", api.VerifyView.as_view(), name="faces-verify"),
    path("recognize/", api.RecognizeView.as_view(), name="faces-recognize"),
    path("reembed/", api.ReembedView.as_view(), name="faces-reembed"),
    *router.urls,
]

# Under /api/v1/, CompreFace's own paths (no trailing slashes, as its clients send them).
compreface_urlpatterns: list[URLPattern | URLResolver] = [
    re_path(r"^verification/verify/?$", compreface.VerificationView.as_view()),
    re_path(r"^recognition/recognize/?$", compreface.RecognizeView.as_view()),
    re_path(r"^recognition/faces/?$", compreface.FacesView.as_view()),
    re_path(r"^recognition/faces/(?P<image_id>[^/]+)/?$", compreface.FaceView.as_view()),
    re_path(r"^recognition/subjects/?$", compreface.SubjectsView.as_view()),
    re_path(r"^recognition/subjects/(?P<subject>.+?)/?$", compreface.SubjectView.as_view()),
]
