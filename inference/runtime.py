"""Runtime plumbing shared by every model: device choice and safe checkpoints.

Checkpoints are safetensors files (no pickle, so loading one cannot run code). Their
string metadata holds ``format_version``, ``kind`` (what the weights are for), ``config``
(JSON, enough to rebuild the model) and ``extra`` (JSON, anything else: metrics, labels
hash...). Every way a file can be wrong is reported as :class:`CheckpointError` with a
message a user can act on, so a worker can catch one exception type and write it to the job.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

__all__ = [
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "DeviceError",
    "load_checkpoint",
    "pick_device",
    "save_checkpoint",
    "sha256_file",
]

FORMAT_VERSION = 1
DEVICE_ENV_VAR = "VISION_DEVICE"
# safetensors caps its JSON header at 100 MB; anything larger is not one of our files.
_MAX_HEADER_BYTES = 100_000_000


class DeviceError(RuntimeError):
    """The requested compute device is unknown or not available on this machine."""


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, corrupt or incompatible."""


def pick_device(preferred: str | None = None) -> torch.device:
    """The one place that decides where models run.

    Order: ``preferred`` if given, else the ``VISION_DEVICE`` environment variable, else
    CUDA when available, else CPU. Accepted values: ``"auto"``, ``"cpu"``, ``"cuda"``,
    ``"cuda:<index>"`` (case-insensitive).

    Raises:
        DeviceError: unknown value, or CUDA requested on a machine without it.
    """
    choice = (preferred or os.environ.get(DEVICE_ENV_VAR) or "auto").strip().lower()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "cuda" or choice.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {choice!r} was requested but CUDA is not available on this machine; "
                f"use 'cpu' or 'auto' (argument or {DEVICE_ENV_VAR})"
            )
        try:
            device = torch.device(choice)
        except RuntimeError as exc:
            raise DeviceError(f"invalid device {choice!r}: {exc}") from exc
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"{choice!r}: only {torch.cuda.device_count()} CUDA device(s)")
        return device
    raise DeviceError(f"unknown device {choice!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'")


@dataclass
class Checkpoint:
    """A loaded checkpoint: tensors on CPU plus its metadata."""

    tensors: dict[str, Tensor]
    kind: str
    config: dict[str, Any]
    extra: dict[str, Any]
    format_version: int
    sha256: str


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """sha256 hex digest of a file, read in chunks (checkpoints can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(
    path: str | Path,
    tensors: dict[str, Tensor],
    *,
    kind: str,
    config: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> str:
    """Write a safetensors checkpoint atomically and return its sha256 hex digest.

    Args:
        path: destination file (parent directory must exist).
        tensors: name -> tensor; moved to CPU and made contiguous.
        kind: what the weights are, e.g. ``"detector"`` or ``"verifier"``.
        config: JSON-serialisable model configuration.
        extra: JSON-serialisable extras (metrics, class names, dataset hash...).
    """
    metadata = {
        "format_version": str(FORMAT_VERSION),
        "kind": kind,
        "config": json.dumps(config, sort_keys=True),
        "extra": json.dumps(extra or {}, sort_keys=True),
    }
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    data = st_save(cpu, metadata=metadata)
    path = Path(path)
    # Write next to the target then rename: a crash never leaves a half-written checkpoint
    # under the real name.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return _sha256_bytes(data)


def _parse_header(data: bytes, name: str) -> dict[str, Any]:
    """Validate the safetensors framing ourselves so errors say what is wrong."""
    not_st = f"{name} is not a safetensors checkpoint"
    if len(data) < 8:
        raise CheckpointError(f"{not_st} (file is only {len(data)} bytes)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > _MAX_HEADER_BYTES or header_len > len(data) - 8:
        raise CheckpointError(f"{not_st} (invalid header length; corrupt or truncated)")
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{not_st} (header is not valid JSON)") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{not_st} (header is not a JSON object)")
    ends = [
        v["data_offsets"][1]
        for k, v in header.items()
        if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v
    ]
    if max(ends, default=0) > len(data) - 8 - header_len:
        raise CheckpointError(f"{name} is truncated (tensor data ends past the end of file)")
    return header


def _metadata(header: dict[str, Any], name: str) -> tuple[int, str, dict[str, Any], dict[str, Any]]:
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or not {"format_version", "kind", "config"} <= set(meta):
        raise CheckpointError(f"{name} has no workbench metadata (not written by this project)")
    try:
        version = int(meta["format_version"])
        config = json.loads(meta["config"])
        extra = json.loads(meta.get("extra", "{}"))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{name} has unreadable metadata: {exc}") from exc
    if not isinstance(config, dict) or not isinstance(extra, dict):
        raise CheckpointError(f"{name}: config and extra metadata must be JSON objects")
    return version, str(meta["kind"]), config, extra


def load_checkpoint(
    path: str | Path, *, expected_kind: str, expected_sha256: str | None = None
) -> Checkpoint:
    """Read and validate a checkpoint written by :func:`save_checkpoint`.

    The file is read once into memory, so the digest checked is the digest of the bytes
    that are parsed.

    Raises:
        CheckpointError: missing file, not safetensors / corrupt / truncated, sha256
            mismatch, wrong kind, or a format_version newer than this code supports.
    """
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise CheckpointError(f"checkpoint file not found: {name}") from exc
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {name}: {exc.strerror}") from exc
    digest = _sha256_bytes(data)
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise CheckpointError(
            f"{name} has sha256 {digest}, expected {expected_sha256}: "
            "the file changed or is not the recorded one"
        )
    version, kind, config, extra = _metadata(_parse_header(data, name), name)
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{name} uses checkpoint format {version}; this version supports up to "
            f"{FORMAT_VERSION}: upgrade the workbench to load it"
        )
    if kind != expected_kind:
        raise CheckpointError(f"{name} holds a {kind!r} model, expected {expected_kind!r}")
    try:
        tensors = st_load(data)
    except Exception as exc:  # safetensors raises its own error types (Rust side)
        raise CheckpointError(f"{name} is corrupt: {exc}") from exc
    return Checkpoint(tensors, kind, config, extra, version, digest)


def check_config_keys(config_class: type, data: dict[str, Any]) -> None:
    """Refuse keys a config dataclass does not have, rather than silently dropping them.

    A checkpoint written by other code (or a hand-edited model card) then fails loudly at
    load time instead of building a model that differs from the one trained.

    Raises:
        ValueError: naming the class and the unknown keys.
    """
    unknown = set(data) - {f.name for f in fields(config_class)}
    if unknown:
        raise ValueError(f"unknown {config_class.__name__} keys: {sorted(unknown)}")
