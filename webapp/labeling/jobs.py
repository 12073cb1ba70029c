"""The ``import`` job: a zip uploaded in the browser or by the API, imported into a dataset.

:func:`start_import` validates everything a request can know before any side effect (the
format, the source, the dataset's kind, the upload's size, that it is a zip whose every
entry is safe), then stashes the upload and starts the job; :func:`run_import` (on the
``default`` queue: no model) unpacks it under the caps, imports it with progress and returns
the report (counts per split, every warning). The runner deletes the stash when the job ends.
"""

from __future__ import annotations

import uuid
import zipfile
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile

from training.formats.archive import UnsafeArchive, check_zip
from webapp.accounts.models import User
from webapp.images import uploads
from webapp.images.models import Dataset, Task, slug_validator
from webapp.jobs.errors import JobError
from webapp.jobs.models import Job, JobKind
from webapp.jobs.registry import register
from webapp.jobs.runner import JobContext
from webapp.jobs.services import start_job
from webapp.labeling.importers import (
    IMPORT_FORMATS,
    ImportFailed,
    archive_limits,
    import_max_bytes,
    import_path,
)

UPLOAD_FIELD = "file"


def _check_options(dataset: Dataset, fmt: str, source: str) -> None:
    if fmt not in IMPORT_FORMATS:
        raise JobError(
            f"format: must be one of {', '.join(IMPORT_FORMATS)}, not {fmt!r}.",
            code="invalid",
            status=400,
            details={"field": "format"},
        )
    try:
        slug_validator(source)
    except ValidationError as error:
        raise JobError(
            f"source: {' '.join(error.messages)}",
            code="invalid",
            status=400,
            details={"field": "source"},
        ) from None
    if fmt == "folders" and dataset.task != Task.FACES:
        raise JobError(
            f"format: identity folders go into a faces dataset; “{dataset.name}” is a "
            f"{dataset.task} dataset.",
            code="invalid",
            status=400,
            details={"field": "format"},
        )


def _check_upload(uploaded: UploadedFile | None) -> UploadedFile:
    """The upload, refused unless it is a zip under the limits whose entries are all safe."""
    if uploaded is None:
        raise JobError(
            f"{UPLOAD_FIELD}: a .zip file is required.",
            code="invalid",
            status=400,
            details={"field": UPLOAD_FIELD},
        )
    limit = import_max_bytes()
    if uploaded.size and uploaded.size > limit:
        raise JobError(
            f"{UPLOAD_FIELD}: the file is {uploaded.size / 2**20:.1f} MB; the limit is "
            f"{limit / 2**20:.0f} MB.",
            code="file_too_large",
            status=413,
            details={"field": UPLOAD_FIELD},
        )
    try:
        # Only the central directory is read: unsafe names, links and bombs are refused
        # here, before anything is stored; the job checks again as it unpacks.
        with zipfile.ZipFile(uploaded) as archive:
            check_zip(archive, archive_limits())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError):
        raise JobError(
            f"{UPLOAD_FIELD}: not a zip archive.",
            code="not_a_zip",
            status=400,
            details={"field": UPLOAD_FIELD},
        ) from None
    except UnsafeArchive as error:
        raise JobError(
            f"{UPLOAD_FIELD}: the archive was refused: {error}",
            code="unsafe_archive",
            status=400,
            details={"field": UPLOAD_FIELD, "entry": error.entry},
        ) from None
    uploaded.seek(0)
    return uploaded


def _stash_zip(uploaded: UploadedFile) -> dict[str, str]:
    """Keep the upload for the job, streamed to storage (an import can be gigabytes, so
    not through ``uploads.stash``, which takes bytes), as an entry the runner removes."""
    uploads.sweep_stale_uploads()
    stored = default_storage.save(f"{uploads.STASH_FOLDER}/{uuid.uuid4().hex}.zip", uploaded)
    return {"stash": stored, "name": uploaded.name or "upload.zip", "field": UPLOAD_FIELD}


def start_import(
    dataset: Dataset, uploaded: UploadedFile | None, *, fmt: str, source: str, user: User
) -> Job:
    """Validate an import request, then stash its zip and start the job.

    Raises:
        JobError: 400 for a bad format, source or archive (naming the entry), 413 for a
            file over ``IMPORT_MAX_BYTES``; nothing is stored then.
    """
    _check_options(dataset, fmt, source)
    checked = _check_upload(uploaded)
    entry = _stash_zip(checked)
    return start_job(
        JobKind.IMPORT,
        user=user,
        dataset=dataset,
        params={"format": fmt, "source": source, "uploads": [entry]},
    )


def _stash_path(params: dict[str, Any]) -> Path:
    entries = uploads.stash_entries(params)
    name = str(entries[0]["stash"]) if entries else ""
    # Only our own stash folder: params are data, never a way to read other files.
    if not name.startswith(f"{uploads.STASH_FOLDER}/") or ".." in Path(name).parts:
        raise JobError("The job has no uploaded archive.", code="invalid", status=400)
    path = Path(default_storage.path(name))
    if not path.is_file():
        raise JobError("The uploaded archive is gone.", code="upload_gone", status=410)
    return path


@register(JobKind.IMPORT, uses_model=False)
def run_import(ctx: JobContext) -> dict[str, Any]:
    """Unpack the stashed zip and import it; the result is the report."""
    params = ctx.params
    dataset_id = ctx.job.dataset_id
    dataset = None if dataset_id is None else Dataset.objects.filter(pk=dataset_id).first()
    if dataset is None:
        raise JobError("The dataset was deleted.", code="unknown_dataset", status=404)
    path = _stash_path(params)
    ctx.progress(0.0, "Unpacking and reading the annotations …", force=True)

    def progress(done: int, total: int) -> None:
        ctx.progress(0.05 + 0.95 * done / total, f"Imported {done} of {total} images")

    try:
        report = import_path(
            path,
            str(params.get("format", "")),
            dataset=dataset,
            source=str(params.get("source", "web")),
            user=ctx.job.user,
            on_progress=progress,
        )
    except ImportFailed as error:
        raise JobError(str(error), code="import_refused", status=422) from None
    return report.as_result()
