"""Backbone files users bring for transfer learning: checked, stored by content, reported.

A user with a small set needs a pretrained start, and nothing may be downloaded here, so
they upload one: torchvision's ImageNet ``resnet18`` or ``mobilenet_v3_small`` weights as
``.pth`` / ``.pt`` (read with ``weights_only``, never unpickling code) or ``.safetensors``
for detectors, or a face-embedding ``.onnx`` file (ArcFace-style) for verifiers, checked
by ``inference.face_backbones.onnx_spec`` (an ONNX graph is data, not code).
:func:`store_backbone` reads it, tries it on both torchvision backbones, refuses a file
that fits neither, and keeps it under ``backbones/<sha256>.<ext>``; a run names it by that
storage name (``TrainingRun.backbone_file``).
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile

from inference.face_backbones import BackboneError as FaceBackboneError
from inference.face_backbones import onnx_spec
from inference.runtime import CheckpointError
from inference.yolo import YoloConfig, YoloDetector
from training.transfer import load_into, read_weights
from webapp.jobs.errors import JobError

SUFFIXES = (".pth", ".pt", ".safetensors", ".onnx")
NAME = re.compile(r"^backbones/[0-9a-f]{64}\.(pth|pt|safetensors|onnx)$")
BACKBONE_OF_RUN = {"resnet18": "resnet18", "mobilenet_v3_small": "mobilenet_v3_small"}


class BackboneError(JobError):
    def __init__(self, message: str, *, code: str = "invalid_backbone", status: int = 400) -> None:
        super().__init__(message, code=code, status=status, details={"field": "backbone_file"})


def fits(weights: dict[str, Any]) -> dict[str, dict[str, object]]:
    """How the weights map onto each torchvision backbone: matched tensors and any refusal."""
    out: dict[str, dict[str, object]] = {}
    for backbone in BACKBONE_OF_RUN.values():
        model = YoloDetector(YoloConfig(class_names=["object"], img_size=64, backbone=backbone))
        try:
            report = load_into(model, weights, prefix="backbone.").to_dict()
        except CheckpointError as exc:
            out[backbone] = {"matched": 0, "error": str(exc)}
        else:
            out[backbone] = report
    return out


def store_backbone(uploaded: UploadedFile | None) -> dict[str, Any]:
    """Check and keep an uploaded backbone file.

    Returns:
        ``{"backbone_file": storage name, "sha256", "tensors", "backbone": the one it fits
        best, "fits": per backbone, what matched}``.

    Raises:
        BackboneError: no file, a wrong suffix, too large, unreadable without running code,
            or fitting neither backbone.
    """
    if uploaded is None:
        raise BackboneError("Attach the weights file as the form field 'file'.")
    suffix = Path(uploaded.name or "").suffix.lower()
    if suffix not in SUFFIXES:
        raise BackboneError(f"A backbone file ends in {', '.join(SUFFIXES)}; got {suffix!r}.")
    limit = settings.BACKBONE_MAX_BYTES
    if uploaded.size and uploaded.size > limit:
        raise BackboneError(
            f"The file is {uploaded.size / 2**20:.0f} MB; the limit is {limit / 2**20:.0f} MB.",
            code="file_too_large",
            status=413,
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        digest = hashlib.sha256()
        with path.open("wb") as out:
            for chunk in uploaded.chunks():
                digest.update(chunk)
                out.write(chunk)
        if suffix == ".onnx":
            return _store_onnx(path, digest.hexdigest(), uploaded.name or "")
        try:
            weights = read_weights(path)
        except CheckpointError as exc:
            raise BackboneError(str(exc)) from None
        report = fits(weights)
        matched = {b: int(str(r.get("matched", 0))) for b, r in report.items()}
        best = max(matched, key=lambda b: matched[b])
        if not matched[best]:
            raise BackboneError(
                "No tensor of this file fits the resnet18 or mobilenet_v3_small backbone "
                "(expected torchvision's state dict names, such as layer1.0.conv1.weight "
                "or features.0.0.weight)."
            )
        name = _keep(path, f"backbones/{digest.hexdigest()}{suffix}")
    return {
        "backbone_file": name,
        "sha256": digest.hexdigest(),
        "tensors": len(weights),
        "backbone": best,
        "fits": report,
    }


def _keep(path: Path, name: str) -> str:
    """Store ``path`` under its content name ``name`` once (a second upload is the same file)."""
    if not default_storage.exists(name):
        with path.open("rb") as f:
            default_storage.save(name, File(f))
    return name


def _store_onnx(path: Path, digest: str, filename: str) -> dict[str, Any]:
    """Check an ONNX face embedding (input, output, normalisation) and keep it."""
    try:
        spec = onnx_spec(path.read_bytes(), name=Path(filename).name[:100])
    except FaceBackboneError as exc:
        raise BackboneError(f"This ONNX file cannot be a face backbone: {exc}") from None
    name = _keep(path, f"backbones/{digest}.onnx")
    return {
        "backbone_file": name,
        "sha256": digest,
        "tensors": 0,
        "backbone": "onnx",
        "fits": {"onnx": spec.to_dict()},
    }


def check_stored(name: str, backbone: str) -> None:
    """A run's ``backbone_file``: one we stored, of the kind the run's backbone reads."""
    if not NAME.match(name) or not default_storage.exists(name):
        raise BackboneError(
            f"backbone_file {name[:80]!r} is not a stored backbone: upload it first "
            "(POST /api/v1/training/backbones/)."
        )
    if backbone == "onnx" or name.endswith(".onnx"):
        if backbone != "onnx" or not name.endswith(".onnx"):
            raise BackboneError(
                "An .onnx backbone file goes with backbone 'onnx' (a verifier), and backbone "
                "'onnx' needs an .onnx file."
            )
        return
    if backbone not in BACKBONE_OF_RUN:
        raise BackboneError(
            "A backbone file needs backbone 'resnet18' or 'mobilenet_v3_small' "
            "(our own backbone starts from a model version: start_from)."
        )
