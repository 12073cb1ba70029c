"""Create the demo `admin` account once and remember its password in VAR_DIR."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from webapp.accounts.models import Role, User


class Command(BaseCommand):
    help = "Create the demo admin account unless it exists, and print its login."

    def handle(self, *args: Any, **options: Any) -> None:
        password_file = settings.VAR_DIR / "demo-admin-password.txt"
        if User.objects.filter(username="admin").exists():
            if password_file.exists():
                password = password_file.read_text().strip()
                self.stdout.write(f"Login: admin / {password}")
            else:
                self.stdout.write("Login: admin (account existed before; password unchanged)")
            return
        password = secrets.token_urlsafe(9)
        User.objects.create_superuser("admin", "", password, role=Role.ADMIN)
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        self.stdout.write(f"Login: admin / {password}")
