from django.apps import AppConfig


class LabelingConfig(AppConfig):
    name = "webapp.labeling"
    label = "labeling"
    verbose_name = "Labeling"

    def ready(self) -> None:
        # The import job's handler registers itself with the job registry.
        from webapp.labeling import jobs  # noqa: F401
