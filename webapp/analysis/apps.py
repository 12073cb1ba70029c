from django.apps import AppConfig


class AnalysisConfig(AppConfig):
    name = "webapp.analysis"
    label = "analysis"
    verbose_name = "Error analysis"

    def ready(self) -> None:
        from webapp.analysis import jobs  # noqa: F401  (registers the evaluate job)
