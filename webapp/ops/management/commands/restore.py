"""`manage.py restore PATH.tar.gz`: a backup onto an empty install."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.ops.backup import BackupError, restore


class Command(BaseCommand):
    help = "Restore a backup archive (database and media) onto an empty install."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            restore(options["path"], log=self.stdout.write)
        except BackupError as exc:
            raise CommandError(exc.message) from None
