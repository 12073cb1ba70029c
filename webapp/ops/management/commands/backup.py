"""`manage.py backup PATH.tar.gz`: the database and the media folder in one archive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from webapp.ops.backup import backup


class Command(BaseCommand):
    help = "Write the database and the media folder to one .tar.gz archive."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        backup(options["path"], log=self.stdout.write)
