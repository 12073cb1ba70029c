"""Routes of the faces pages, included by ``webapp/urls.py`` under ``/faces/``."""

from django.urls import URLPattern, path

from webapp.faces import model_views, people_views, views

app_name = "faces"

urlpatterns: list[URLPattern] = [
    path("verify/", views.verify_page, name="verify"),
    path("recognize/", views.recognize_page, name="recognize"),
    path("people/", people_views.people_page, name="people"),
    path("people/add/", people_views.person_add, name="person-add"),
    path("people/<int:subject_id>/", people_views.person_page, name="person"),
    path("people/<int:subject_id>/enroll/", people_views.person_enroll, name="person-enroll"),
    path("people/<int:subject_id>/rename/", people_views.person_rename, name="person-rename"),
    path("people/<int:subject_id>/delete/", people_views.person_delete, name="person-delete"),
    path("faces/<int:face_id>/delete/", people_views.face_delete, name="face-delete"),
    path("models/", model_views.model_list, name="models"),
    path("models/<int:version_id>/", model_views.model_report, name="model"),
    path(
        "models/<int:version_id>/activate/",
        model_views.model_activate,
        name="model-activate",
    ),
]
