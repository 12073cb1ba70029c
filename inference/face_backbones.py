"""Pretrained face-embedding backbones inside the Siamese verifier (the notes' transfer learning).

The Siamese network keeps its shape: ONE sub-network ``h`` applied to both faces, the
distance ``D = ||h(X1) - h(X2)||_2`` and the contrastive loss as the notes write it. Here
``h`` is a pretrained, frozen face-embedding backbone followed by our own layer,
:class:`ResidualHead`, which is what training on the user's people changes:

    h(X) = normalise(f + W f + b),   f = normalise(backbone(X))

``W`` and ``b`` start at zero, so an untrained head *is* the backbone: a verifier works on
day one with the backbone's own embeddings and training can only move it from there (weight
decay pulls ``W`` back towards the backbone). The backbones are frozen whole: dlib's network
runs in dlib and an ONNX file in ONNX Runtime, neither of which torch can differentiate;
our from-scratch :class:`~inference.siamese.EmbeddingNet` is the one to fine-tune in part.

Two backbone sources:

- ``dlib``: dlib's ResNet face embedding (``dlib_face_recognition_resnet_model_v1.dat``,
  128-d, trained by Davis King on about 3 million faces) with its own alignment (the 5-point
  landmarks of ``shape_predictor_5_face_landmarks.dat`` and ``dlib.get_face_chip``). Both
  files come from the PyPI package ``face-recognition-models`` (the setup installs it with
  ``dlib-bin``); nothing is downloaded at run time.
- ``onnx``: a face-embedding model the user brings as an ONNX file (ArcFace-style, as
  InsightFace and CompreFace use: ``(N, 3, 112, 112)`` in, ``(N, 512)`` out), run with ONNX
  Runtime. Input size, channels, normalisation and output size are read from the file (its
  metadata may name ``mean``, ``std``, ``color`` and ``normalize``; else ArcFace's
  ``(x - 127.5) / 127.5`` on RGB) or given by the user, and a file that does not fit is
  refused with a message saying what it expects. The file's bytes are kept inside the
  verifier's checkpoint, so the checkpoint alone rebuilds the verifier.

Crops: a backbone verifier makes its own crops (:meth:`BackboneVerifier.make_crop`): dlib's
aligned 150 px colour chip, or for ONNX the face box with a margin, squared and resized to
the file's input size, in colour. The serving pipeline stores and embeds whatever crop the
verifier made, so enrollment, verification, recognition and training all crop alike.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from inference.faces import UInt8Array
from inference.metrics import iou_matrix
from inference.preprocess import as_rgb_uint8
from inference.runtime import CheckpointError, check_config_keys, sha256_file

FloatArray = npt.NDArray[np.float32]
Box = tuple[float, float, float, float]

BACKBONE_KINDS = ("dlib", "onnx")
DLIB_LANDMARKS = "shape_predictor_5_face_landmarks.dat"
DLIB_RESNET = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_CHIP_PX = 150  # the chip size dlib's ResNet was trained on
DLIB_CHIP_PADDING = 0.25  # dlib's default context around the aligned face
DLIB_INSTALL = "pip install dlib-bin==20.0.1.post1 face-recognition-models==0.3.0"
# ArcFace (InsightFace) convention when the file says nothing: RGB, (x - 127.5) / 127.5.
ONNX_DEFAULT_MEAN = 127.5
ONNX_DEFAULT_STD = 127.5
# Context around a detector's face box in an ONNX backbone's crop, a fraction of the box
# side on each side: ArcFace's 112 px crops show the face with a little forehead and chin.
ONNX_DEFAULT_MARGIN = 0.1
NORMALIZE_MODES = ("fixed", "per_image")
COLOR_ORDERS = ("rgb", "bgr", "grey")


class BackboneError(CheckpointError):
    """A backbone that cannot be used: not installed, not a model, or not a face embedding
    of a shape the verifier can read. The message says what to do."""


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone is and how to feed it; saved in the verifier's config.

    Attributes:
        kind: ``"dlib"`` or ``"onnx"``.
        sha256: digest of the model file (dlib: the ResNet ``.dat``; onnx: the file).
        input_size: side of the square crop the backbone reads, pixels.
        channels: 3 (colour) or 1 (grey).
        output_dim: length of the backbone's embedding.
        color: channel order fed to the network: ``"rgb"``, ``"bgr"`` or ``"grey"``.
        normalize: ``"fixed"``: ``(x - mean) / std`` per pixel value; ``"per_image"``: each
            crop to zero mean and unit variance (our own nets' convention).
        mean, std: the fixed normalisation, grey levels.
        margin: context around the face box on each side, a fraction of the box side
            (onnx; dlib aligns with its own padding).
        flip_average: embed the face and its mirror image and average them.
        name: what the user called it (a file name), for pages and reports.
    """

    kind: str
    sha256: str
    input_size: int
    channels: int
    output_dim: int
    color: str = "rgb"
    normalize: str = "fixed"
    mean: float = ONNX_DEFAULT_MEAN
    std: float = ONNX_DEFAULT_STD
    margin: float = ONNX_DEFAULT_MARGIN
    flip_average: bool = True
    name: str = ""

    def __post_init__(self) -> None:
        if self.kind not in BACKBONE_KINDS:
            raise BackboneError(f"backbone kind must be one of {BACKBONE_KINDS}, got {self.kind!r}")
        if self.input_size < 8 or self.input_size > 1024:
            raise BackboneError(f"backbone input size must be 8..1024 px, got {self.input_size}")
        if self.channels not in (1, 3):
            raise BackboneError(f"backbone input must have 1 or 3 channels, got {self.channels}")
        if self.output_dim < 1:
            raise BackboneError(f"backbone output size must be >= 1, got {self.output_dim}")
        if self.color not in COLOR_ORDERS or (self.color == "grey") != (self.channels == 1):
            raise BackboneError(
                f"color {self.color!r} does not fit {self.channels} channel(s): use 'grey' for "
                "1 channel, 'rgb' or 'bgr' for 3"
            )
        if self.normalize not in NORMALIZE_MODES:
            raise BackboneError(f"normalize must be one of {NORMALIZE_MODES}, got {self.normalize}")
        if not (math.isfinite(self.mean) and math.isfinite(self.std) and self.std > 0):
            raise BackboneError(f"mean must be finite and std > 0, got {self.mean}, {self.std}")
        if not 0.0 <= self.margin <= 1.0:
            raise BackboneError(f"margin must be in [0, 1], got {self.margin}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackboneSpec:
        try:
            check_config_keys(cls, data)
        except ValueError as exc:
            raise BackboneError(f"unknown backbone settings: {exc}") from None
        try:
            return cls(**data)
        except TypeError as exc:
            raise BackboneError(f"backbone settings are incomplete: {exc}") from None


class FaceBackbone(Protocol):
    """A frozen face embedding: crops in, ``(N, output_dim)`` float32 out."""

    spec: BackboneSpec

    def make_crop(self, image: npt.NDArray[Any], box: Box | None) -> UInt8Array: ...

    def features(self, crops: Sequence[UInt8Array]) -> FloatArray: ...


def _square_region(box: Box | None, width: int, height: int, margin: float) -> Box:
    """The square around ``box`` (the whole image when None), ``margin`` of its longer side
    added on each side; it may reach past the image (the crop pads)."""
    x1, y1, x2, y2 = box if box is not None else (0.0, 0.0, float(width), float(height))
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    return cx - side / 2.0, cy - side / 2.0, cx + side / 2.0, cy + side / 2.0


def square_crop(rgb: UInt8Array, region: Box, size: int) -> UInt8Array:
    """``region`` of ``rgb (H, W, 3)`` resized to ``(size, size, 3)``; outside the image the
    edge pixels are repeated (an affine warp, so sub-pixel regions are exact)."""
    x1, y1, x2, _ = region
    scale = size / max(x2 - x1, 1e-6)
    matrix = np.array([[scale, 0.0, -x1 * scale], [0.0, scale, -y1 * scale]], dtype=np.float64)
    shrinking = scale < 1.0
    out = cv2.warpAffine(
        rgb,
        matrix,
        (size, size),
        flags=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.ascontiguousarray(out, dtype=np.uint8)


def _check_crops(crops: Sequence[UInt8Array], size: int) -> npt.NDArray[np.uint8]:
    batch = np.stack([np.asarray(c) for c in crops])
    if batch.dtype != np.uint8 or batch.shape[1:] != (size, size, 3):
        raise ValueError(
            f"expected ({size}, {size}, 3) uint8 crops, got {batch.dtype} {batch.shape}"
        )
    return batch


# ----------------------------------------------------------------------------- dlib
def dlib_model_files() -> dict[str, Path]:
    """The two dlib model files inside the installed ``face_recognition_models`` package.

    The package's ``__init__`` imports ``pkg_resources``, which recent setuptools no longer
    ship, so it is located with ``importlib.util.find_spec`` instead of imported.

    Raises:
        BackboneError: dlib or the model package is not installed, or a file is missing.
    """
    if importlib.util.find_spec("dlib") is None:
        raise BackboneError(f"the dlib backbone needs dlib: {DLIB_INSTALL}")
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise BackboneError(f"the dlib backbone needs its model files: {DLIB_INSTALL}")
    models = Path(next(iter(spec.submodule_search_locations))) / "models"
    files = {"landmarks": models / DLIB_LANDMARKS, "resnet": models / DLIB_RESNET}
    missing = [p.name for p in files.values() if not p.is_file()]
    if missing:
        raise BackboneError(f"dlib model files missing from {models}: {missing}; {DLIB_INSTALL}")
    return files


def dlib_available() -> bool:
    """True when dlib and its model files are installed."""
    try:
        dlib_model_files()
    except BackboneError:
        return False
    return True


_file_digests: dict[tuple[str, float, int], str] = {}


def _sha256_of(path: Path) -> str:
    """sha256 of a (large, unchanging) file, cached per path, mtime and size."""
    stat = path.stat()
    key = (str(path), stat.st_mtime, stat.st_size)
    if key not in _file_digests:
        _file_digests[key] = sha256_file(path)
    return _file_digests[key]


def dlib_spec(files: dict[str, Path] | None = None) -> BackboneSpec:
    """The spec of the installed dlib backbone (128-d, 150 px aligned colour chips)."""
    files = files or dlib_model_files()
    return BackboneSpec(
        kind="dlib",
        sha256=_sha256_of(files["resnet"]),
        input_size=DLIB_CHIP_PX,
        channels=3,
        output_dim=128,
        margin=DLIB_CHIP_PADDING,
        # The face and its mirror, averaged: twice dlib's time per face; on ORL's 5 folds EER
        # 0.3% and TAR@FAR=1% 99.6% against 0.5% and 99.2% in one pass (bench/README.md).
        flip_average=True,
        name=DLIB_RESNET,
    )


class DlibBackbone:
    """dlib's ResNet on dlib's aligned chips (5-point landmarks inside the face box)."""

    def __init__(self, spec: BackboneSpec | None = None) -> None:
        import dlib

        files = dlib_model_files()
        installed = dlib_spec(files)
        if spec is not None and spec.sha256 != installed.sha256:
            raise BackboneError(
                f"this verifier was trained on a dlib model file with sha256 {spec.sha256[:12]}…, "
                f"the installed one is {installed.sha256[:12]}…: reinstall "
                f"face-recognition-models==0.3.0 or retrain the verifier"
            )
        self.spec = spec or installed
        self._dlib = dlib
        self._landmarks = dlib.shape_predictor(str(files["landmarks"]))
        self._resnet = dlib.face_recognition_model_v1(str(files["resnet"]))
        self._frontal = dlib.get_frontal_face_detector()  # HOG + linear SVM, in dlib itself

    def face_rect(self, rgb: UInt8Array, box: Box | None) -> Box:
        """The face rectangle dlib's landmarks are placed in: dlib's own frontal-face
        detector's box where it finds the face, else ``box`` (None: the whole image).

        dlib's 5-point landmark model was trained inside that detector's boxes, which are
        tighter than most detectors' (eyebrows to chin); fed a looser box the landmarks and
        so the alignment drift. On ORL's whole-image faces the descriptor's EER is 9.6%
        with the whole image as the box and 0.9% inside the detector's box. Around a given
        ``box`` the detector looks only near it (the box grown by half on each side) and its
        box must overlap ``box``; on a small region it looks at twice the resolution.
        """
        height, width = rgb.shape[:2]
        if box is None:
            region: Box = (0.0, 0.0, float(width), float(height))
        else:
            bw, bh = box[2] - box[0], box[3] - box[1]
            region = (
                max(0.0, box[0] - bw / 2),
                max(0.0, box[1] - bh / 2),
                min(float(width), box[2] + bw / 2),
                min(float(height), box[3] + bh / 2),
            )
        rx1, ry1 = int(region[0]), int(region[1])
        rx2, ry2 = math.ceil(region[2]), math.ceil(region[3])
        window = np.ascontiguousarray(rgb[ry1:ry2, rx1:rx2])
        upsample = 1 if max(window.shape[:2]) < 400 else 0
        found = []
        if min(window.shape[:2]) >= 20:
            for r in self._frontal(window, upsample):
                found.append(
                    (
                        float(r.left() + rx1),
                        float(r.top() + ry1),
                        float(r.right() + 1 + rx1),
                        float(r.bottom() + 1 + ry1),
                    )
                )
        fallback = box if box is not None else region
        if box is not None and found:
            ious = iou_matrix(np.array(found, np.float64), np.array([box], np.float64))[:, 0]
            found = [f for f, iou in zip(found, ious, strict=True) if iou >= 0.3]
        if not found:
            return fallback
        return max(found, key=lambda f: (f[2] - f[0]) * (f[3] - f[1]))

    def make_crop(self, image: npt.NDArray[Any], box: Box | None) -> UInt8Array:
        """dlib's aligned ``(150, 150, 3)`` chip of the face in ``box`` (None: the whole
        image), the landmarks placed in :meth:`face_rect`."""
        rgb = np.ascontiguousarray(as_rgb_uint8(image))
        return self.chip(rgb, self.face_rect(rgb, box))

    def chip(self, rgb: UInt8Array, rect: Box) -> UInt8Array:
        """The aligned chip with the 5-point landmarks placed in exactly ``rect``."""
        x1, y1, x2, y2 = rect
        box = self._dlib.rectangle(round(x1), round(y1), round(x2) - 1, round(y2) - 1)
        shape = self._landmarks(np.ascontiguousarray(rgb), box)
        chip = self._dlib.get_face_chip(
            np.ascontiguousarray(rgb), shape, size=self.spec.input_size, padding=self.spec.margin
        )
        return np.ascontiguousarray(chip, dtype=np.uint8)

    def features(self, crops: Sequence[UInt8Array]) -> FloatArray:
        """``(N, 128)`` descriptors of aligned chips (mirror-averaged when the spec says so)."""
        if not crops:
            return np.zeros((0, self.spec.output_dim), np.float32)
        batch = _check_crops(crops, self.spec.input_size)
        chips = [np.ascontiguousarray(c) for c in batch]
        out = np.asarray(self._resnet.compute_face_descriptor(chips), np.float32)
        if self.spec.flip_average:
            mirrored = [np.ascontiguousarray(c[:, ::-1]) for c in batch]
            out = out + np.asarray(self._resnet.compute_face_descriptor(mirrored), np.float32)
        return out.reshape(len(chips), -1)


# ----------------------------------------------------------------------------- ONNX
def _session(model: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    providers = [
        p
        for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
        if p in ort.get_available_providers()
    ]
    try:
        return ort.InferenceSession(model, sess_options=options, providers=providers)
    except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf/... types
        raise BackboneError(f"not an ONNX model ONNX Runtime can run: {exc}") from None


def _metadata(session: Any) -> dict[str, str]:
    try:
        return dict(session.get_modelmeta().custom_metadata_map)
    except Exception:  # a file without metadata
        return {}


def _meta_float(meta: dict[str, str], key: str, given: float | None, default: float) -> float:
    if given is not None:
        return float(given)
    if key not in meta:
        return default
    try:
        return float(json.loads(meta[key]))
    except (ValueError, TypeError):
        raise BackboneError(f"the file's metadata {key}={meta[key]!r} is not a number") from None


def onnx_spec(
    model: bytes,
    *,
    name: str = "",
    input_size: int | None = None,
    mean: float | None = None,
    std: float | None = None,
    color: str | None = None,
    normalize: str | None = None,
    margin: float | None = None,
) -> BackboneSpec:
    """Read an ONNX face embedding's input and output from the file, the rest from its
    metadata or the arguments (which win).

    Raises:
        BackboneError: not an ONNX model, or its input is not ``(N, C, S, S)`` with C 1 or 3
            and S known, or its output is not ``(N, D)``: the message names what it found.
    """
    session = _session(model)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise BackboneError(
            f"a face embedding takes one image input; this file takes {len(inputs)}: "
            f"{[i.name for i in inputs]}"
        )
    shape = list(inputs[0].shape)
    if len(shape) != 4:
        raise BackboneError(
            f"expected an image input (N, C, H, W); this file's input {inputs[0].name!r} is {shape}"
        )
    channels, height, width = shape[1], shape[2], shape[3]
    if channels not in (1, 3):
        raise BackboneError(
            f"expected 1 or 3 input channels (N, C, H, W); this file's input is {shape} "
            "(a channels-last (N, H, W, C) model needs a transpose before export)"
        )
    if isinstance(height, int) and isinstance(width, int):
        if height != width:
            raise BackboneError(f"expected a square input; this file's input is {height}x{width}")
        if input_size is not None and input_size != height:
            raise BackboneError(f"the file's input is {height} px, not the {input_size} px given")
        size = height
    elif input_size is None:
        raise BackboneError(
            f"this file's input size is not fixed ({shape}): give the input size (e.g. 112)"
        )
    else:
        size = int(input_size)
    if "float" not in str(inputs[0].type):
        raise BackboneError(f"expected a float image input; this file's is {inputs[0].type}")
    meta = _metadata(session)
    colour = color or meta.get("color") or ("grey" if channels == 1 else "rgb")
    mode = normalize or meta.get("normalize") or "fixed"
    probe = np.zeros((2, channels, size, size), np.float32)
    try:
        result = session.run(None, {inputs[0].name: probe})[0]
    except Exception as exc:
        raise BackboneError(f"the model failed on a {size} px input: {exc}") from None
    result = np.asarray(result)
    if result.ndim != 2 or result.shape[0] != 2:
        raise BackboneError(
            f"expected an embedding output (N, D); this file's first output "
            f"{outputs[0].name!r} gives {list(result.shape)} for 2 images"
        )
    return BackboneSpec(
        kind="onnx",
        sha256=hashlib.sha256(model).hexdigest(),
        input_size=size,
        channels=int(channels),
        output_dim=int(result.shape[1]),
        color=colour,
        normalize=mode,
        mean=_meta_float(meta, "mean", mean, ONNX_DEFAULT_MEAN),
        std=_meta_float(meta, "std", std, ONNX_DEFAULT_STD),
        margin=ONNX_DEFAULT_MARGIN if margin is None else float(margin),
        name=name,
    )


class OnnxBackbone:
    """A user's ONNX face embedding run by ONNX Runtime on squared colour (or grey) crops."""

    def __init__(self, model: bytes, spec: BackboneSpec | None = None) -> None:
        digest = hashlib.sha256(model).hexdigest()
        if spec is not None and spec.sha256 != digest:
            raise BackboneError(
                f"the ONNX model's sha256 is {digest[:12]}…, the verifier expects "
                f"{spec.sha256[:12]}…"
            )
        self.spec = spec or onnx_spec(model)
        self.model = model
        self._session = _session(model)
        self._input = self._session.get_inputs()[0].name

    def make_crop(self, image: npt.NDArray[Any], box: Box | None) -> UInt8Array:
        """The face box (None: the whole image) squared, ``margin`` added, resized, RGB."""
        rgb = as_rgb_uint8(image)
        height, width = rgb.shape[:2]
        region = _square_region(box, width, height, self.spec.margin)
        return square_crop(rgb, region, self.spec.input_size)

    def _inputs(self, batch: npt.NDArray[np.uint8]) -> FloatArray:
        spec = self.spec
        x = batch.astype(np.float32)  # (N, S, S, 3) RGB
        if spec.color == "grey":
            x = (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
        elif spec.color == "bgr":
            x = x[..., ::-1]
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # (N, C, S, S)
        if spec.normalize == "per_image":
            x = x / 255.0
            mean = x.mean(axis=(1, 2, 3), keepdims=True)
            std = np.maximum(x.std(axis=(1, 2, 3), keepdims=True), 1e-3)
            standardised: FloatArray = ((x - mean) / std).astype(np.float32)
            return standardised
        fixed: FloatArray = ((x - spec.mean) / spec.std).astype(np.float32)
        return fixed

    def _run(self, batch: npt.NDArray[np.uint8]) -> FloatArray:
        return np.asarray(
            self._session.run(None, {self._input: self._inputs(batch)})[0], np.float32
        )

    def features(self, crops: Sequence[UInt8Array]) -> FloatArray:
        """``(N, D)`` embeddings (mirror-averaged when the spec says so)."""
        if not crops:
            return np.zeros((0, self.spec.output_dim), np.float32)
        batch = _check_crops(crops, self.spec.input_size)
        out = self._run(batch)
        if self.spec.flip_average:
            out = out + self._run(np.ascontiguousarray(batch[:, :, ::-1]))
        return out.reshape(len(batch), -1)


def load_backbone(spec: BackboneSpec, model: bytes | None = None) -> FaceBackbone:
    """The backbone ``spec`` describes (an ONNX one needs the file's bytes)."""
    if spec.kind == "dlib":
        return DlibBackbone(spec)
    if model is None:
        raise BackboneError("an ONNX backbone needs its model file")
    return OnnxBackbone(model, spec)


# ----------------------------------------------------------------------------- our layer
class ResidualHead(nn.Module):
    """``h = normalise(f + W f + b)`` on unit backbone features ``f``; ``W = 0, b = 0`` at
    the start, so the untrained head returns the backbone's own (unit) embedding."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = int(dim)
        self.linear = nn.Linear(self.dim, self.dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Back to the identity: the backbone's embedding unchanged."""
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    @property
    def output_dim(self) -> int:
        return self.dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, dim)`` backbone features -> ``(N, dim)`` unit embeddings."""
        f = F.normalize(features, dim=1)
        return F.normalize(f + self.linear(f), dim=1)


BACKBONE_BUFFER = "backbone_model"


class BackboneVerifier(nn.Module):
    """A frozen backbone and our trainable :class:`ResidualHead`: one Siamese sub-network.

    ``forward`` takes backbone features (what training feeds the head); :meth:`embed`
    takes crops made by :meth:`make_crop`. An ONNX backbone's file travels in the state
    dict (buffer ``backbone_model``), so a saved verifier rebuilds itself from one file.
    """

    def __init__(self, backbone: FaceBackbone, head: ResidualHead | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.spec = backbone.spec
        self.head = head or ResidualHead(self.spec.output_dim)
        model = getattr(backbone, "model", b"")
        self.register_buffer(
            BACKBONE_BUFFER,
            torch.frombuffer(bytearray(model), dtype=torch.uint8).clone()
            if model
            else torch.zeros(0, dtype=torch.uint8),
        )

    @property
    def input_size(self) -> int:
        """Side of the crops :meth:`make_crop` makes."""
        return self.spec.input_size

    @property
    def output_dim(self) -> int:
        return self.head.output_dim

    def make_crop(self, image: npt.NDArray[Any], box: Box | None) -> UInt8Array:
        return self.backbone.make_crop(image, box)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """The head on ``(N, D)`` backbone features."""
        result: torch.Tensor = self.head(features)
        return result

    def embed(self, crops: Sequence[UInt8Array], batch_size: int = 64) -> FloatArray:
        """``(N, output_dim)`` unit embeddings of crops from :meth:`make_crop`."""
        if not len(crops):
            return np.zeros((0, self.output_dim), np.float32)
        device = self.head.linear.weight.device
        parts = []
        with torch.inference_mode():
            for i in range(0, len(crops), batch_size):
                f = torch.from_numpy(self.backbone.features(crops[i : i + batch_size]))
                parts.append(self.head(f.to(device)).float().cpu().numpy())
        return np.concatenate(parts).astype(np.float32, copy=False)

    def config(self) -> dict[str, Any]:
        """The JSON config a checkpoint keeps: the backbone's spec and the head's size."""
        return {"backbone": self.spec.to_dict(), "head": {"dim": self.head.dim}}


def build_backbone_verifier(
    config: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> BackboneVerifier:
    """Rebuild a saved :class:`BackboneVerifier` from its config and state dict.

    Raises:
        BackboneError: the backbone is not installed, its file differs, or the weights do not
            fit.
    """
    spec = BackboneSpec.from_dict(dict(config["backbone"]))
    model = tensors.get(BACKBONE_BUFFER)
    data = bytes(model.numpy().tobytes()) if model is not None and model.numel() else None
    verifier = BackboneVerifier(load_backbone(spec, data))
    try:
        verifier.load_state_dict(tensors)
    except RuntimeError as exc:
        raise BackboneError(f"the head's weights do not fit this backbone: {exc}") from None
    return verifier
