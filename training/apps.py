from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    label = "training"
    verbose_name = "Training and model versions"

    def ready(self) -> None:
        from training import jobs  # noqa: F401  (registers the train job)
