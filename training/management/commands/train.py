"""`manage.py train --dataset NAME|ID [--task detector|face_detector|verifier] [--epochs N |
--minutes M] [--search TRIALS] ...`: a training run, as the training page and the API
start it.

The run is the same :class:`~training.models.TrainingRun` with the same trials as jobs; by
default this command carries them out here, one after another, with a progress bar, then
prints the diagnosis and ``model_version=<id>``. With ``--queue`` it only queues them for
the workers (the ``gpu`` queue) and prints the run's page. ``train_detector`` and
``train_verifier`` stay as the shortcuts that train one model with the full defaults.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from training import runs
from training.backbones import store_backbone
from training.models import TrainingRun
from training.run_config import (
    AUGMENTS,
    BACKBONES,
    OPTIMIZERS,
    SCHEDULES,
    TASKS,
    RunConfig,
    RunConfigError,
    SearchSpec,
)
from webapp.images.models import Dataset
from webapp.jobs.errors import JobError
from webapp.jobs.models import Job, JobStatus
from webapp.jobs.runner import execute_job

BAR = 30


class Command(BaseCommand):
    help = "Start a training run (one trial or a random search) and carry it out here."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True, help="The dataset's name or id.")
        parser.add_argument("--task", choices=TASKS, default="detector")
        budget = parser.add_mutually_exclusive_group()
        budget.add_argument("--epochs", type=int, help="Most epochs per trial.")
        budget.add_argument("--minutes", type=float, help="The whole run's time budget.")
        parser.add_argument("--img-size", type=int, help="Detector input side (multiple of 32).")
        parser.add_argument("--optimizer", choices=OPTIMIZERS)
        parser.add_argument("--lr", type=float, help="Initial learning rate.")
        parser.add_argument("--batch-size", type=int, help="Mini-batch size (a power of two).")
        parser.add_argument("--schedule", choices=SCHEDULES, help="Learning-rate decay.")
        parser.add_argument("--decay-rate", type=float)
        parser.add_argument("--weight-decay", type=float, help="L2 penalty.")
        parser.add_argument("--patience", type=int, help="Early-stopping patience in epochs.")
        parser.add_argument("--augment", action="append", choices=AUGMENTS, default=[])
        parser.add_argument("--search", type=int, metavar="TRIALS", help="Random search.")
        parser.add_argument("--rounds", type=int, choices=(1, 2), default=2)
        parser.add_argument("--start-from", type=int, metavar="VERSION", help="Fine-tune it.")
        parser.add_argument(
            "--whole-image-faces",
            metavar="DATASET",
            help="A face detector's: a faces dataset (name or id) whose one-face photos join "
            "training as faces that fill the photo.",
        )
        parser.add_argument("--backbone", choices=BACKBONES, default="ours")
        parser.add_argument(
            "--backbone-file", type=Path, help="torchvision weights (.pth/.safetensors)."
        )
        parser.add_argument("--freeze", type=int, help="Freeze the first N blocks.")
        parser.add_argument("--max-latency-ms", type=float, help="Satisficing: CPU latency.")
        parser.add_argument("--max-size-mb", type=float, help="Satisficing: model size.")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--queue", action="store_true", help="Queue the trials for the workers and return."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dataset = _dataset(options["dataset"])
        config = _config(options)
        backbone_file = ""
        try:
            if options["backbone_file"] is not None:
                stored = store_backbone(_upload(options["backbone_file"]))
                backbone_file = stored["backbone_file"]
                fit = stored["fits"][stored["backbone"]]
                self.stdout.write(
                    f"Backbone file: {fit['matched']} tensors match {stored['backbone']}."
                )
            run = runs.start_run(dataset, config, user=None, backbone_file=backbone_file)
        except JobError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Run #{run.pk}: {run.message}  (page: /training/runs/{run.pk}/)")
        if options["queue"] or run.is_finished:
            self._report(run)
            return
        self._carry_out(run)
        run.refresh_from_db()
        self._report(run)
        if run.status != "done":
            raise CommandError(f"Run #{run.pk} {run.status}: {run.message}")

    def _carry_out(self, run: TrainingRun) -> None:
        """Execute the run's queued trial jobs here until the run finishes."""
        while True:
            run.refresh_from_db()
            queued = list(
                Job.objects.filter(
                    pk__in=run.trials.values("job_id"), status=JobStatus.QUEUED
                ).order_by("pk")
            )
            if run.is_finished or not queued:
                return
            for job in queued:
                self._one(job)

    def _one(self, job: Job) -> None:
        done = threading.Event()

        def work() -> None:
            try:
                execute_job(job.pk)
            finally:
                connection.close()
                done.set()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        while not done.wait(0.5):
            self._bar(Job.objects.get(pk=job.pk))
        self._bar(Job.objects.get(pk=job.pk))
        self.stdout.write("")

    def _bar(self, job: Job) -> None:
        filled = round(BAR * job.progress)
        line = f"\r[{'#' * filled}{'.' * (BAR - filled)}] {100 * job.progress:5.1f}%  "
        self.stdout.write(line + (job.message or job.status)[:70].ljust(70), ending="")
        self.stdout.flush()

    def _report(self, run: TrainingRun) -> None:
        run.refresh_from_db()
        for trial in run.trials.order_by("number"):
            self.stdout.write(f"  trial {trial.number} (round {trial.round}): {trial.message}")
        diagnosis = run.diagnosis or {}
        for key in ("human_error", "train_error", "train_val_error", "val_error", "test_error"):
            value = diagnosis.get(key)
            if value is not None:
                self.stdout.write(f"  {key.replace('_', ' ')}: {100 * value:.1f}%")
        if diagnosis.get("advice"):
            self.stdout.write(f"  {diagnosis.get('verdict', '')}: {diagnosis['advice']}")
        self.stdout.write(f"{run.message}")
        if run.model_version_id:
            self.stdout.write(f"model_version={run.model_version_id}")


def _dataset(name: str) -> Dataset:
    found = Dataset.objects.filter(name=name).first()
    if found is None and name.isdigit() and len(name) < 19:
        found = Dataset.objects.filter(pk=int(name)).first()
    if found is None:
        raise CommandError(f"No dataset named or numbered {name!r}.")
    return found


def _config(options: dict[str, Any]) -> RunConfig:
    limits = {
        key: options[opt]
        for key, opt in (("latency_ms", "max_latency_ms"), ("size_mb", "max_size_mb"))
        if options[opt] is not None
    }
    try:
        return RunConfig(
            task=options["task"],
            minutes=options["minutes"],
            epochs=options["epochs"],
            img_size=options["img_size"],
            optimizer=options["optimizer"],
            learning_rate=options["lr"],
            weight_decay=options["weight_decay"],
            batch_size=options["batch_size"],
            lr_schedule=options["schedule"],
            decay_rate=options["decay_rate"],
            patience=options["patience"],
            augment=tuple(options["augment"]),
            freeze_blocks=options["freeze"],
            start_from=options["start_from"],
            whole_image_faces=(
                _dataset(options["whole_image_faces"]).pk if options["whole_image_faces"] else None
            ),
            backbone=options["backbone"],
            search=(
                SearchSpec(trials=options["search"], rounds=options["rounds"], seed=options["seed"])
                if options["search"]
                else None
            ),
            satisficing=limits,
            seed=options["seed"],
        )
    except RunConfigError as exc:
        raise CommandError(str(exc)) from None


def _upload(path: Path) -> SimpleUploadedFile:
    if not path.is_file():
        raise CommandError(f"No file {path}.")
    return SimpleUploadedFile(path.name, path.read_bytes())
