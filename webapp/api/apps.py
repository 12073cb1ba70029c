from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "webapp.api"
    label = "api"
    verbose_name = "API"

    def ready(self) -> None:
        # Registers the token schemes with drf-spectacular (an import is what registers).
        from webapp.api import schema  # noqa: F401
