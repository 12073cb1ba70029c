from django.apps import AppConfig


class FacesConfig(AppConfig):
    name = "webapp.faces"
    label = "faces"
    verbose_name = "Faces"

    def ready(self) -> None:
        # Registers the verify / enroll / recognize / reembed job handlers.
        from webapp.faces import jobs  # noqa: F401
