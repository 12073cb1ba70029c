"""`manage.py export_model --model-version ID --to PATH_STEM`: weights plus a model card.

Writes PATH_STEM.safetensors and PATH_STEM.json (name, classes, config, metrics per split,
the command that trained it, training seconds), the pair `load_demo` registers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.models import ModelVersion


class Command(BaseCommand):
    help = "Export a model version's weights and model card."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model-version", type=int, required=True)
        parser.add_argument("--to", required=True, help="Path without extension.")

    def handle(self, *args: Any, **options: Any) -> None:
        version = ModelVersion.objects.filter(pk=options["model_version"]).first()
        if version is None:
            raise CommandError(f"No model version {options['model_version']}.")
        stem = Path(options["to"])
        stem.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(version.path, stem.with_suffix(".safetensors"))
        card = {
            "name": version.name,
            "kind": version.kind,
            "sha256": version.sha256,
            "class_names": version.class_names,
            "config": version.config,
            # Detector PR curves stay in the database; the card keeps the summary numbers. A
            # verifier's card keeps everything: its threshold and the calibration behind it.
            "metrics": {
                key: {k: v for k, v in values.items() if k != "pr_curves"}
                if isinstance(values, dict) and version.kind != "verifier"
                else values
                for key, values in version.metrics.items()
            },
            "command": version.command,
            "training_seconds": version.training_seconds,
            "dataset": version.dataset.name if version.dataset else None,
        }
        stem.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
        self.stdout.write(f"Wrote {stem}.safetensors and {stem}.json")
