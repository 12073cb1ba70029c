from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    label = "training"
    verbose_name = "Training and model versions"
