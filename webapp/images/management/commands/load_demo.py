"""Load the demo shipped in demo/: the BCCD sample with its labels, and the trained detector.

Idempotent: images already there are kept, the shipped model is registered once, and the
demo images get the model's predictions so the review pages show boxes from the start.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from inference.face_backbones import DLIB_INSTALL, dlib_available
from inference.runtime import sha256_file
from training.models import ModelKind, ModelVersion
from webapp.detection.services import recalibrate_stored_boxes
from webapp.images.importers import import_voc
from webapp.images.models import Box, Dataset
from webapp.jobs.models import Job, JobKind, JobStatus
from webapp.jobs.runner import execute_job

DEMO_DATASET = "BCCD demo"
# Face models shipped in demo/models/ (file stem, kind): registered if present; the first of
# a kind is served when nothing of that kind serves yet. The dlib-backbone verifier comes
# first: on people it never saw it beats our from-scratch one (bench/README.md, *Faces*),
# which stays registered for users who train on many people of their own.
SHIPPED_FACE_MODELS = (
    ("face-detector", ModelKind.FACE_DETECTOR),
    ("verifier-dlib", ModelKind.VERIFIER),
    ("verifier-orl", ModelKind.VERIFIER),
)


class Command(BaseCommand):
    help = "Load the demo dataset and the shipped detector; predict the demo images."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--path", default=str(settings.BASE_DIR / "demo"))

    def handle(self, *args: Any, **options: Any) -> None:
        root = Path(options["path"])
        report = import_voc(root / "bccd", name=DEMO_DATASET, source="demo")
        self.stdout.write(
            f"Demo dataset “{DEMO_DATASET}”: {report.images_added} images added, "
            f"{report.images_existing} already there."
        )
        version = self._register_model(
            root / "models" / "detector-bccd", ModelKind.DETECTOR, dataset=report.dataset
        )
        if version is not None:
            self._predict(report.dataset, version)
        for stem, kind in SHIPPED_FACE_MODELS:
            self._register_model(root / "models" / stem, kind)
        self._enroll_demo_people(root / "faces")

    def _register_model(
        self, stem: Path, kind: str, dataset: Dataset | None = None
    ) -> ModelVersion | None:
        """Register the shipped model ``stem`` once; serve it if nothing of its kind serves,
        or if what serves is an older copy of the same shipped model (its card's name), so
        an updated checkout serves the model it ships. A version the user trained, or
        chose under another name, keeps serving.

        ``dataset`` is recorded as the model's own (``evaluate`` defaults to it), also on a
        version registered by an older ``load_demo`` that recorded none.
        """
        weights, card = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
        label = ModelKind(kind).label.lower()
        if not weights.exists():
            self.stderr.write(f"No shipped {label} at {weights}; it needs training.")
            return None
        sha = sha256_file(weights)
        meta = json.loads(card.read_text()) if card.exists() else {}
        backbone = (meta.get("config") or {}).get("backbone")  # a detector's is a name
        if isinstance(backbone, dict) and backbone.get("kind") == "dlib" and not dlib_available():
            self.stderr.write(f"{weights.name} needs dlib ({DLIB_INSTALL}); skipped.")
            return None
        version = ModelVersion.objects.filter(kind=kind, sha256=sha).first()
        created = version is None
        if version is None:
            if meta.get("kind", kind) != kind:
                self.stderr.write(f"{card} describes a {meta['kind']}, not a {kind}; skipped.")
                return None
            stored = default_storage.save(
                f"models/{sha}.safetensors", ContentFile(weights.read_bytes())
            )
            version = ModelVersion.objects.create(
                kind=kind,
                name=meta.get("name", f"{stem.name} (shipped)"),
                file=stored,
                sha256=sha,
                config=meta.get("config", {}),
                class_names=meta.get("class_names", []),
                metrics=meta.get("metrics", {}),
                command=meta.get("command", ""),
                training_seconds=meta.get("training_seconds"),
                dataset=dataset,
            )
            self.stdout.write(f"Registered the shipped {label} as model version {version.pk}.")
        else:
            if dataset is not None and version.dataset_id is None:
                version.dataset = dataset
                version.save(update_fields=["dataset"])
            if kind == ModelKind.DETECTOR:
                self._mend_detector_scores(version, card)
        active = ModelVersion.active(kind)
        if active is None or (created and active.name == version.name):
            version.activate()
            if active is not None:
                self.stdout.write(
                    f"It replaces the older shipped {label} #{active.pk} ({active.name})."
                )
        return version

    def _mend_detector_scores(self, version: ModelVersion, card: Path) -> None:
        """Give a shipped detector registered before the card had them its working
        threshold and score calibration (the card's metrics), and map the raw scores of the
        boxes it stored then to calibrated confidence, the scale it now serves."""
        metrics = version.metrics if isinstance(version.metrics, dict) else {}
        shipped = json.loads(card.read_text()).get("metrics", {}) if card.exists() else {}
        if "score_calibration" in metrics or "score_calibration" not in shipped:
            return
        with transaction.atomic():  # both or neither: the next run mends only if neither
            version.metrics = {**metrics, **shipped}
            version.save(update_fields=["metrics"])
            boxes = recalibrate_stored_boxes(version)
        self.stdout.write(
            f"Model version {version.pk}: working threshold and score calibration added "
            f"from {card.name}; {boxes} stored boxes now carry calibrated confidence."
        )

    def _enroll_demo_people(self, folder: Path) -> None:
        """Enroll photos 1-3 of each demo person (``faces/<person>/<k>.pgm``) in the gallery.

        People already in the gallery are left alone, so a user's edits survive a restart.
        Photos 4-5 stay out, for trying verify and recognize on faces the gallery lacks.
        """
        from webapp.faces.enrollment import create_subject, enroll
        from webapp.faces.models import Subject
        from webapp.faces.services import FaceError, gallery_dataset, read_image

        if not folder.is_dir() or ModelVersion.active(ModelKind.VERIFIER) is None:
            return
        gallery = gallery_dataset()
        added = 0
        for person in sorted(p for p in folder.iterdir() if p.is_dir()):
            name = f"ORL {person.name}"
            if Subject.objects.filter(dataset=gallery, name=name).exists():
                continue
            photos = sorted(person.glob("*.pgm"), key=lambda p: int(p.stem))[:3]
            try:
                uploads = [read_image(p.read_bytes(), p.name) for p in photos]
                subject = create_subject(name)
                enroll(subject, uploads)
                added += 1
            except FaceError as exc:
                self.stderr.write(f"Demo person {name} not enrolled: {exc.message}")
                Subject.objects.filter(dataset=gallery, name=name, faces__isnull=True).delete()
        if added:
            self.stdout.write(f"Enrolled {added} demo people (3 photos each) in the gallery.")

    def _predict(self, dataset: Dataset, version: ModelVersion) -> None:
        if Box.objects.filter(image__dataset=dataset, model_version=version).exists():
            return
        ids = list(dataset.images.values_list("pk", flat=True))
        job = Job.objects.create(
            kind=JobKind.DETECT,
            dataset=dataset,
            params={"image_ids": ids, "model_version": version.pk, "min_confidence": 0.05},
        )
        execute_job(job.pk)  # here, not on a worker: the demo is ready when the URL is printed
        job.refresh_from_db()
        if job.status == JobStatus.DONE:
            self.stdout.write(f"Detected objects in {len(ids)} demo images.")
        else:
            self.stderr.write(f"Demo detection failed: {job.error}")
