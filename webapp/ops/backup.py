"""Backup and restore: the database and the media folder in one archive.

``backup`` writes a ``.tar.gz`` holding ``database.json`` (``dumpdata`` of every app, less
what ``migrate`` makes again: content types, permissions, role groups, sessions, admin
logs; users keep their role and get their groups back from it) and ``media/`` (images,
thumbnails, model weights, training states). ``restore`` puts it onto an empty install:
migrate, load the rows, unpack the files (never outside the media folder), give each user
the group of their role.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.management import call_command

from webapp.jobs.errors import JobError

DATABASE_MEMBER = "database.json"
MEDIA_PREFIX = "media/"
LEFT_OUT = (
    "contenttypes",
    "auth.permission",
    "auth.group",
    "sessions",
    "admin.logentry",
)
# What an empty install may hold before a restore (migrate makes none of these rows).
MUST_BE_EMPTY = ("images.Dataset", "images.Image", "training.ModelVersion", "accounts.User")


class BackupError(JobError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="backup", status=400)


def backup(path: Path, log: Callable[[str], None] = lambda _m: None) -> dict[str, int]:
    """Write the archive; returns the counts of rows and files it holds."""
    rows = io.StringIO()
    call_command(
        "dumpdata", *(f"--exclude={e}" for e in LEFT_OUT), "--natural-foreign", stdout=rows
    )
    records = json.loads(rows.getvalue() or "[]")
    for record in records:
        if record["model"] == "accounts.user":  # groups follow the role after a restore
            record["fields"].pop("groups", None)
            record["fields"].pop("user_permissions", None)
    data = json.dumps(records).encode()
    media = Path(settings.MEDIA_ROOT)
    files = [p for p in sorted(media.rglob("*")) if p.is_file()] if media.is_dir() else []
    files = [p for p in files if not p.relative_to(media).as_posix().startswith("tmp/")]
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo(DATABASE_MEMBER)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
        for file in files:
            archive.add(file, arcname=MEDIA_PREFIX + file.relative_to(media).as_posix())
    log(f"{len(records)} rows and {len(files)} files written to {path}")
    return {"rows": len(records), "files": len(files)}


def restore(path: Path, log: Callable[[str], None] = lambda _m: None) -> dict[str, int]:
    """Restore the archive onto an empty install; returns the counts restored."""
    if not path.is_file():
        raise BackupError(f"No archive at {path}.")
    call_command("migrate", verbosity=0)
    busy = [m for m in MUST_BE_EMPTY if apps.get_model(m).objects.exists()]
    if busy:
        raise BackupError(
            f"Restore goes onto an empty install; this one has {', '.join(busy)} rows."
        )
    media = Path(settings.MEDIA_ROOT).resolve()
    try:
        archive = tarfile.open(path, "r:gz")  # noqa: SIM115 (closed by the with below)
    except (tarfile.TarError, OSError) as exc:
        raise BackupError(f"{path.name} is not a backup archive ({exc}).") from None
    with archive, tempfile.TemporaryDirectory() as tmp:
        members = archive.getmembers()
        names = {m.name for m in members}
        if DATABASE_MEMBER not in names:
            raise BackupError(f"{path.name} holds no {DATABASE_MEMBER}.")
        files = 0
        for member in members:
            if not member.name.startswith(MEDIA_PREFIX) or not member.isfile():
                continue
            target = (media / member.name[len(MEDIA_PREFIX) :]).resolve()
            if not target.is_relative_to(media):
                raise BackupError(f"{member.name} would land outside the media folder.")
            target.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            assert source is not None
            target.write_bytes(source.read())
            files += 1
        dump = Path(tmp) / DATABASE_MEMBER
        source = archive.extractfile(DATABASE_MEMBER)
        assert source is not None
        dump.write_bytes(source.read())
        rows = len(json.loads(dump.read_text()))
        call_command("loaddata", str(dump), verbosity=0)
    from webapp.accounts.models import User
    from webapp.labeling.roles import sync_user

    for user in User.objects.all():
        sync_user(user)
    log(f"{rows} rows and {files} files restored from {path}")
    return {"rows": rows, "files": files}
