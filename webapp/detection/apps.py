from django.apps import AppConfig


class DetectionConfig(AppConfig):
    name = "webapp.detection"
    label = "detection"
    verbose_name = "Detection"

    def ready(self) -> None:
        from webapp.detection import jobs  # noqa: F401  (registers the detect job)
