from __future__ import annotations

from django.apps import AppConfig


class FacesConfig(AppConfig):
    name = "webapp.faces"
    label = "faces"
    verbose_name = "Faces"

    def ready(self) -> None:
        # Registers the verify / enroll / recognize / reembed job handlers.
        from training.models import version_activated
        from webapp.faces import jobs  # noqa: F401

        version_activated.connect(_reembed_for_new_verifier, dispatch_uid="faces-reembed")


def _reembed_for_new_verifier(sender: object, version: object, **kwargs: object) -> None:
    """A newly served verifier makes every stored embedding stale: recompute them in a job."""
    from training.models import ModelKind
    from webapp.faces.services import schedule_reembed

    if getattr(version, "kind", None) == ModelKind.VERIFIER:
        schedule_reembed()
