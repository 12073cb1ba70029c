"""`manage.py create_api_token USERNAME`: prints a new key alone on its last line."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.accounts.models import ApiToken, User


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print the key (alone on the last line)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="A label to recognise the token by.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user = User.objects.get(username=options["username"])
        except User.DoesNotExist:
            raise CommandError(f"No user named {options['username']!r}.") from None
        token, key = ApiToken.issue(user, options["name"])
        self.stderr.write(
            f"Created token {token.name!r} for {user.username} (role {user.effective_role})."
        )
        self.stdout.write(key)
