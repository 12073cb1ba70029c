from django.apps import AppConfig


class FacesConfig(AppConfig):
    name = "webapp.faces"
    label = "faces"
    verbose_name = "Faces"
