from django.apps import AppConfig


class ImagesConfig(AppConfig):
    name = "webapp.images"
    label = "images"
    verbose_name = "Images and datasets"

    def ready(self) -> None:
        # Registers the image-statistics job handler with the job registry.
        from webapp.images import cleanup, jobs  # noqa: F401
