"""Zip archives in and out: a safe extractor for uploads, a writer for exports.

Pure code (no Django). An uploaded zip is data from a stranger, so before anything is
written :func:`check_zip` refuses the whole archive (:class:`UnsafeArchive`, naming the
entry) when any entry

- has a ``..`` part, an absolute path or a drive letter (it would land outside the folder),
- is a symbolic link (zip keeps the Unix mode in the high 16 bits of the external
  attributes; a link could point a later read at any file on the server),
- is encrypted (we could not read it anyway),
- or when the archive has more than :attr:`ArchiveLimits.max_entries` entries or declares
  more than :attr:`ArchiveLimits.max_total_bytes` uncompressed (a zip bomb).

:func:`extract_zip` then counts the bytes it really writes, so an entry that lies about its
size still stops at the cap. macOS's ``__MACOSX/`` resource forks are left out.
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from training.formats.records import ExportFile

_CHUNK = 1 << 20
_SKIPPED_PREFIXES = ("__MACOSX/",)
# Already-compressed formats are stored, not deflated again (faster, no bigger).
_STORED_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".zip"}


class UnsafeArchive(ValueError):
    """The archive was refused; nothing of it was extracted (or what was is removed).

    Attributes:
        entry: the offending entry's name ("" for the archive as a whole).
        reason: a sentence for people.
    """

    def __init__(self, entry: str, reason: str) -> None:
        super().__init__(f"{entry}: {reason}" if entry else reason)
        self.entry = entry
        self.reason = reason


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps on what one upload may unpack to.

    Attributes:
        max_entries: files and folders in the archive.
        max_total_bytes: their uncompressed size, added up.
    """

    max_entries: int = 100_000
    max_total_bytes: int = 8 * 1024**3


def _bad_name(name: str) -> str:
    """Why an entry's name is refused, or ``""``; backslashes count as separators."""
    text = name.replace("\\", "/")
    if "\x00" in text:
        return "the name contains a NUL byte"
    if text.startswith("/"):
        return "absolute path"
    if re.match(r"^[A-Za-z]:", text):
        return "path with a drive letter"
    if ".." in text.split("/"):
        return "path with '..' (it would leave the folder)"
    return ""


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    # Unix zippers (create_system 3) keep st_mode in the high 16 bits; others leave them 0.
    return stat.S_ISLNK(info.external_attr >> 16)


def check_zip(archive: zipfile.ZipFile, limits: ArchiveLimits) -> list[zipfile.ZipInfo]:
    """Vet every entry of ``archive`` from its central directory (nothing is decompressed).

    Returns:
        The file entries to extract, in archive order (folders and ``__MACOSX/`` left out).

    Raises:
        UnsafeArchive: any entry is unsafe, or the archive is over ``limits``.
    """
    entries = archive.infolist()
    if len(entries) > limits.max_entries:
        raise UnsafeArchive(
            "", f"the archive has {len(entries)} entries; the limit is {limits.max_entries}"
        )
    total = 0
    files = []
    for info in entries:
        reason = _bad_name(info.filename)
        if not reason and _is_symlink(info):
            reason = "symbolic link (not allowed in uploads)"
        if not reason and info.flag_bits & 0x1:
            reason = "encrypted entry"
        if reason:
            raise UnsafeArchive(info.filename, reason)
        if info.is_dir() or info.filename.startswith(_SKIPPED_PREFIXES):
            continue
        total += info.file_size
        if total > limits.max_total_bytes:
            raise UnsafeArchive(
                "",
                f"the archive unpacks to over {limits.max_total_bytes / 2**20:.0f} MB (the limit)",
            )
        files.append(info)
    return files


def extract_zip(
    source: Path | BinaryIO, dest: Path, limits: ArchiveLimits | None = None
) -> list[Path]:
    """Extract a vetted zip into the folder ``dest`` (created).

    Args:
        source: the zip file, or a seekable binary file object.
        dest: where to extract; typically a fresh temporary folder.
        limits: caps, :class:`ArchiveLimits` defaults if omitted.

    Returns:
        The files written, in archive order.

    Raises:
        UnsafeArchive: refused by :func:`check_zip`, over the cap while writing, or not a
            zip at all ("" entry).
    """
    limits = limits or ArchiveLimits()
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        with zipfile.ZipFile(source) as archive:
            budget = limits.max_total_bytes
            written = []
            for info in check_zip(archive, limits):
                target = root.joinpath(*PurePosixPath(info.filename.replace("\\", "/")).parts)
                if not target.resolve().is_relative_to(root):  # belt and braces
                    raise UnsafeArchive(info.filename, "path outside the folder")
                budget -= _copy_entry(archive, info, target, budget)
                written.append(target)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as error:
        raise UnsafeArchive("", f"not a readable zip archive ({error})") from None
    return written


def _copy_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int) -> int:
    """Write one entry; return its size. Stops past ``budget`` bytes whatever it declared."""
    target.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with archive.open(info) as src, target.open("wb") as out:
        while chunk := src.read(_CHUNK):
            size += len(chunk)
            if size > budget:
                raise UnsafeArchive(info.filename, "unpacks to more than the archive limit")
            out.write(chunk)
    return size


def dataset_root(folder: Path) -> Path:
    """The folder a dataset starts in: ``folder``, or the single folder it holds.

    Zips made by "compress this folder" wrap everything in one top folder (sometimes
    twice); hidden entries such as ``.DS_Store`` do not count.
    """
    while True:
        visible = [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]
        if len(visible) != 1 or not visible[0].is_dir():
            return folder
        folder = visible[0]


def write_zip(target: Path | BinaryIO, files: Iterable[ExportFile], *, prefix: str = "") -> int:
    """Write ``files`` into a new zip; return how many entries were written.

    Args:
        target: the zip's path, or a writable binary file object.
        files: ``(name inside the zip, bytes or a file to copy)``; names use ``/``.
        prefix: a top folder every name is put under (e.g. ``"cells-coco/"``).

    Raises:
        ValueError: a name is unsafe (the same rules :func:`check_zip` applies on import).
    """
    count = 0
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as out:
        for name, content in files:
            arcname = prefix + name
            if _bad_name(arcname):
                raise ValueError(f"refusing to write {arcname!r}: {_bad_name(arcname)}")
            stored = PurePosixPath(name).suffix.lower() in _STORED_SUFFIXES
            compression = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            if isinstance(content, Path):
                info = zipfile.ZipInfo.from_file(content, arcname)
                info.compress_type = compression
                with content.open("rb") as src, out.open(info, "w") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
            else:
                out.writestr(arcname, content, compress_type=compression)
            count += 1
    return count
