"""Siamese face-verification network and its contrastive loss.

``EmbeddingNet`` maps a grey face crop (see ``inference.faces``) to a vector ``h``; two faces
are the same person when the Euclidean distance between their vectors is small.
``SiameseNet`` applies ONE ``EmbeddingNet`` to both inputs, so the two "branches" share
every parameter by construction, and is trained with :func:`contrastive_loss`.

Label convention (from the notes): ``y = 0`` for a pair of the same person, ``y = 1`` for
different people.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from inference.face_backbones import BackboneVerifier, build_backbone_verifier
from inference.faces import FACE_MARGIN, PREPROCESSING, UInt8Array, crop_face, to_tensor
from inference.runtime import (
    CheckpointError,
    check_config_keys,
    load_checkpoint,
    pick_device,
    save_checkpoint,
)

# With L2-normalised embeddings distances lie in [0, 2]; a margin of 1 pushes different
# people at least 60 degrees apart and leaves pairs already past that out of the loss.
DEFAULT_MARGIN = 1.0
VERIFIER_KIND = "verifier"


@dataclass(frozen=True)
class EmbeddingConfig:
    """Shape of an ``EmbeddingNet``; saved with the weights so a checkpoint rebuilds itself.

    Attributes:
        input_size: side of the square input crop in pixels.
        in_channels: 1 for the grey crops ``inference.faces`` makes.
        widths: output channels of each conv stage; every stage but the last halves the
            resolution, so ``input_size`` should be divisible by ``2 ** (len(widths) - 1)``.
        embedding_dim: length of the embedding vector.
        dropout: dropout probability before the final linear layer (training only).
        normalize: L2-normalise embeddings, so distances are in [0, 2] whatever the scale
            the net drifts to, and one margin/threshold stays meaningful across trainings.
        pooling: how the last feature map becomes a vector: ``"avg"`` (global average pool,
            position-blind) or ``"flatten"`` (every cell keeps its place, so the head can tell
            an eye from a mouth by where it is; faces are aligned crops, so layout matters).
        flip_average: in eval mode, embed the face and its mirror image and average the two
            (then normalise): a face and its mirror are the same person, so the average is
            a steadier embedding. Costs a second forward pass at inference, none in training.
        tta_shift: in eval mode, also embed the face shifted by this many pixels up, down,
            left and right (edges repeated) and average all views: a detector's box or a
            photographer's framing moves the face by a few pixels, and the average no longer
            depends on exactly where. 0 turns it off; 4 more views (x2 with the mirror).
        init: initialisation of the convs: "he" (default, ``N(0, 2 / fan_in)``, right for the
            ReLUs that follow them) or "xavier" (the notes' ``N(0, 1 / fan_in)``, for tanh).
    """

    input_size: int = 64
    in_channels: int = 1
    widths: tuple[int, ...] = (16, 32, 64, 128)
    embedding_dim: int = 128
    dropout: float = 0.2
    normalize: bool = True
    pooling: str = "avg"
    flip_average: bool = False
    tta_shift: int = 0
    init: str = "he"

    def __post_init__(self) -> None:
        if self.input_size < 1 or self.in_channels < 1 or self.embedding_dim < 1:
            raise ValueError(f"sizes must be positive: {self}")
        if not self.widths or any(w < 1 for w in self.widths):
            raise ValueError(f"widths must be a non-empty tuple of positive ints: {self.widths}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.pooling not in ("avg", "flatten"):
            raise ValueError(f"pooling must be 'avg' or 'flatten', got {self.pooling!r}")
        if self.init not in ("he", "xavier"):
            raise ValueError(f"init must be 'he' or 'xavier', got {self.init!r}")
        if self.pooling == "flatten" and self.input_size % 2 ** (len(self.widths) - 1):
            raise ValueError(
                f"flatten pooling needs input_size divisible by {2 ** (len(self.widths) - 1)}"
            )

    @property
    def feature_size(self) -> int:
        """Length of the vector the head receives."""
        if self.pooling == "avg":
            return int(self.widths[-1])
        side = self.input_size // 2 ** (len(self.widths) - 1)
        return int(self.widths[-1] * side * side)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (``widths`` as a list)."""
        data = asdict(self)
        data["widths"] = list(self.widths)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbeddingConfig:
        """Inverse of :meth:`to_dict`; missing keys take defaults, unknown keys are an error."""
        check_config_keys(cls, data)
        values = dict(data)
        if "widths" in values:
            values["widths"] = tuple(int(w) for w in values["widths"])
        return cls(**values)


def _conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    # No conv bias: the batch norm's shift that follows would cancel it.
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class EmbeddingNet(nn.Module):
    """Conv stages (2 x conv3x3-BN-ReLU, then 2x2 max-pool) -> global average pool -> linear.

    At the default config (64 px, widths 16..128) this is ~0.31 M parameters and ~52 M
    multiply-adds per face: small enough for a few ms per face on a CPU core.
    """

    def __init__(self, config: EmbeddingConfig | None = None) -> None:
        super().__init__()
        self.config = config or EmbeddingConfig()
        layers: list[nn.Module] = []
        in_channels = self.config.in_channels
        for i, width in enumerate(self.config.widths):
            layers += _conv_bn_relu(in_channels, width) + _conv_bn_relu(width, width)
            if i < len(self.config.widths) - 1:
                layers.append(nn.MaxPool2d(2))
            in_channels = width
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(self.config.dropout)
        self.head = nn.Linear(self.config.feature_size, self.config.embedding_dim)
        self.reset_parameters()

    @property
    def input_size(self) -> int:
        """Side of the square crop the net expects."""
        return self.config.input_size

    @property
    def output_dim(self) -> int:
        """Length of the embeddings it returns."""
        return self.config.embedding_dim

    def reset_parameters(self) -> None:
        """He init for convs (each feeds a ReLU): ``W ~ N(0, 2 / fan_in)``, as in the notes;
        with ``config.init == "xavier"`` the notes' Xavier ``N(0, 1 / fan_in)`` instead.

        The head feeds no ReLU, so it gets ``N(0, 1 / fan_in)`` (the notes' "Xavier" variant),
        which keeps the embedding's variance near the pooled features' variance. Batch norm
        starts as identity (gamma 1, beta 0) and biases at zero.
        """
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                if self.config.init == "he":
                    nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                else:
                    nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="linear")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.kaiming_normal_(self.head.weight, mode="fan_in", nonlinearity="linear")
        nn.init.zeros_(self.head.bias)

    def _test_time_views(self, x: torch.Tensor) -> torch.Tensor:
        views = [x]
        t = self.config.tta_shift
        if t:
            views += [_shifted(x, dy, dx) for dy, dx in ((t, 0), (-t, 0), (0, t), (0, -t))]
        if self.config.flip_average:
            views += [v.flip(3) for v in views]
        return torch.cat(views) if len(views) > 1 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed a batch of faces.

        Args:
            x: ``(N, C, S, S)`` float32 from ``inference.faces.to_tensor``.

        Returns:
            ``(N, embedding_dim)`` float32, unit length when ``config.normalize``.
        """
        n_faces = x.shape[0]
        if not self.training:
            x = self._test_time_views(x)  # (V * N, C, S, S), the original first
        z = self.features(x)  # (N, widths[-1], S', S')
        # avg: (N, widths[-1]), position-blind; flatten: (N, widths[-1] * S' * S')
        z = z.mean(dim=(2, 3)) if self.config.pooling == "avg" else z.flatten(1)
        h: torch.Tensor = self.head(self.dropout(z))  # (N, embedding_dim)
        if h.shape[0] != n_faces:  # several views per face: mean of their unit embeddings
            h = F.normalize(h, dim=1).view(-1, n_faces, h.shape[1]).mean(dim=0)
        if self.config.normalize:
            h = F.normalize(h, dim=1)
        return h


class EmbeddingEnsemble(nn.Module):
    """Several independently trained ``EmbeddingNet`` s read as one: their unit embeddings,
    concatenated and divided by ``sqrt(M)`` so the result is unit length again.

    The squared distance between two faces is then the mean of the members' squared
    distances: members trained from different initialisations make different mistakes on
    new people, and the mean is steadier than any one of them (on ORL, 3 members cut the
    5-fold EER by ~3 points against their average single member).
    """

    def __init__(self, members: Sequence[EmbeddingNet]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        sizes = {m.config.input_size for m in members}
        if len(sizes) != 1:
            raise ValueError(f"members must share one input size, got {sorted(sizes)}")
        self.members = nn.ModuleList(members)  # registered: parameters, state_dict keys
        self.nets: list[EmbeddingNet] = list(members)  # the same modules, typed

    @property
    def input_size(self) -> int:
        """Side of the square crop every member expects."""
        return self.nets[0].config.input_size

    @property
    def output_dim(self) -> int:
        """Sum of the members' embedding lengths."""
        return sum(net.config.embedding_dim for net in self.nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, output_dim)`` embeddings, unit length when every member normalises."""
        h = torch.cat([net(x) for net in self.nets], dim=1)
        return h / math.sqrt(len(self.members))


Verifier = EmbeddingNet | EmbeddingEnsemble
# Every verifier the app serves: our nets, or a pretrained backbone with our head on top.
AnyVerifier = EmbeddingNet | EmbeddingEnsemble | BackboneVerifier


def make_face_crop(
    verifier: AnyVerifier, image: Any, box: tuple[float, float, float, float] | None
) -> UInt8Array:
    """The crop ``verifier`` embeds for the face in ``box`` (None: the whole image).

    Our nets: the grey ``crop_face`` with :data:`~inference.faces.FACE_MARGIN` at their input
    size; a backbone verifier: its backbone's own crop (dlib's aligned chip, an ONNX file's
    squared colour crop).
    """
    if isinstance(verifier, BackboneVerifier):
        return verifier.make_crop(image, box)
    return crop_face(image, box, margin=FACE_MARGIN, size=verifier.input_size)


def embed_face_crops(
    verifier: AnyVerifier, crops: Sequence[UInt8Array], batch_size: int = 64
) -> npt.NDArray[np.float32]:
    """``(N, d)`` float32 embeddings of crops made by :func:`make_face_crop`."""
    if isinstance(verifier, BackboneVerifier):
        return verifier.embed(crops, batch_size)
    if not len(crops):
        return np.zeros((0, verifier.output_dim), dtype=np.float32)
    device = next(verifier.parameters()).device
    parts = []
    with torch.inference_mode():
        for i in range(0, len(crops), batch_size):
            x = to_tensor(list(crops[i : i + batch_size])).to(device)
            parts.append(verifier(x).float().cpu().numpy())
    return np.concatenate(parts).astype(np.float32, copy=False)


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x (N, C, S, S)`` moved by ``(dy, dx)`` pixels, the edge pixels repeated into the gap."""
    s = max(abs(dy), abs(dx))
    padded = F.pad(x, (s, s, s, s), mode="replicate")
    size_y, size_x = x.shape[2], x.shape[3]
    return padded[:, :, s - dy : s - dy + size_y, s - dx : s - dx + size_x]


def euclidean_distance(h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
    """Row-wise Euclidean distance ``D = ||h1 - h2||_2``.

    Exactly 0 for identical rows, with a finite (zero) gradient there: ``sqrt`` has an
    infinite derivative at 0, so it is applied to a clamped value and the result is masked.

    Args:
        h1: ``(N, d)``.
        h2: ``(N, d)``.

    Returns:
        ``(N,)`` distances.
    """
    if h1.shape != h2.shape or h1.dim() != 2:
        raise ValueError(f"expected two (N, d) tensors, got {tuple(h1.shape)}, {tuple(h2.shape)}")
    squared = (h1 - h2).pow(2).sum(dim=1)  # (N,)
    tiny = torch.finfo(squared.dtype).tiny
    return torch.where(squared > tiny, squared.clamp_min(tiny).sqrt(), torch.zeros_like(squared))


def contrastive_loss(
    distance: torch.Tensor, y: torch.Tensor, margin: float = DEFAULT_MARGIN
) -> torch.Tensor:
    """Contrastive loss exactly as the notes write it, averaged over pairs.

    ``L = mean_i [ (1 - y_i) / 2 * D_i^2 + y_i / 2 * max(0, m - D_i)^2 ]``

    Same-person pairs (``y = 0``) are pulled together; different-person pairs (``y = 1``)
    are pushed apart until they are ``margin`` away, after which they add nothing.

    Args:
        distance: ``(N,)`` Euclidean distances ``D``.
        y: ``(N,)`` labels, 0 = same person, 1 = different people (any numeric dtype).
        margin: ``m > 0``, in the same units as ``distance``.

    Returns:
        Scalar tensor.
    """
    if distance.shape != y.shape or distance.dim() != 1:
        raise ValueError(f"expected (N,) and (N,), got {tuple(distance.shape)}, {tuple(y.shape)}")
    if margin <= 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    y = y.to(distance.dtype)
    same_term = (1 - y) / 2 * distance.pow(2)
    different_term = y / 2 * torch.clamp(margin - distance, min=0).pow(2)
    return (same_term + different_term).mean()


class SiameseNet(nn.Module):
    """Two-input wrapper around ONE sub-network (shared weights by construction): an
    ``EmbeddingNet`` (or ensemble) on crops, or a :class:`BackboneVerifier`'s head on its
    frozen backbone's features."""

    def __init__(self, embedding: AnyVerifier | None = None) -> None:
        super().__init__()
        self.embedding: AnyVerifier = embedding or EmbeddingNet()

    def forward(
        self, x1: torch.Tensor, x2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Embed both sides of a batch of pairs and measure their distance.

        Both sides go through the net in one batch so batch norm normalises them with the
        same statistics during training (two calls would give each side its own).

        Args:
            x1: ``(N, C, S, S)`` first face of each pair.
            x2: ``(N, C, S, S)`` second face of each pair.

        Returns:
            ``h1 (N, d)``, ``h2 (N, d)`` and ``distance (N,)``.
        """
        if x1.shape != x2.shape:
            raise ValueError(f"pair sides differ in shape: {tuple(x1.shape)}, {tuple(x2.shape)}")
        h = self.embedding(torch.cat([x1, x2], dim=0))  # (2N, d)
        h1, h2 = h[: x1.shape[0]], h[x1.shape[0] :]
        return h1, h2, euclidean_distance(h1, h2)


def verifier_config(net: AnyVerifier) -> dict[str, Any]:
    """The JSON config that rebuilds ``net``: one net's config, ``{"members": [...]}``, or
    ``{"backbone": {...}, "head": {...}}``."""
    if isinstance(net, BackboneVerifier):
        return net.config()
    if isinstance(net, EmbeddingEnsemble):
        return {"members": [member.config.to_dict() for member in net.nets]}
    return net.config.to_dict()


def build_verifier(config: dict[str, Any]) -> Verifier:
    """An untrained net of the shape :func:`verifier_config` describes."""
    if "members" in config:
        members = config["members"]
        if not isinstance(members, list):
            raise ValueError("members must be a list of configs")
        return EmbeddingEnsemble([EmbeddingNet(EmbeddingConfig.from_dict(c)) for c in members])
    return EmbeddingNet(EmbeddingConfig.from_dict(config))


def save_verifier(
    path: str | Path, model: SiameseNet | AnyVerifier, extra: dict[str, Any] | None = None
) -> str:
    """Save a verifier's embedding net as a ``kind="verifier"`` safetensors checkpoint.

    Only the embedding net is stored (the Siamese wrapper has no weights of its own), with
    its config and the crop preprocessing tag so the loader can refuse a mismatch.

    Args:
        path: destination file.
        model: the trained net.
        extra: JSON-serialisable extras, e.g. the calibrated threshold and metrics.

    Returns:
        The file's sha256 hex digest.
    """
    net = model.embedding if isinstance(model, SiameseNet) else model
    if not isinstance(net, EmbeddingNet | EmbeddingEnsemble | BackboneVerifier):
        raise TypeError(f"not a verifier: {type(net).__name__}")
    return save_checkpoint(
        path,
        dict(net.state_dict()),
        kind=VERIFIER_KIND,
        config=verifier_config(net),
        extra={**(extra or {}), "preprocessing": PREPROCESSING},
    )


def load_verifier(
    path: str | Path,
    device: str | torch.device | None = None,
    *,
    expected_sha256: str | None = None,
) -> tuple[AnyVerifier, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_verifier`, ready for inference.

    Args:
        path: the checkpoint.
        device: where to put the net; None lets ``runtime.pick_device`` decide.
        expected_sha256: refuse the file unless its digest matches.

    Returns:
        The ``EmbeddingNet`` in eval mode on ``device`` (wrap it in ``SiameseNet`` to compare
        pairs) and the checkpoint's ``extra`` dict.

    Raises:
        CheckpointError: unreadable, wrong kind, or incompatible with this code.
    """
    checkpoint = load_checkpoint(path, expected_kind=VERIFIER_KIND, expected_sha256=expected_sha256)
    if checkpoint.extra.get("preprocessing") != PREPROCESSING:
        raise CheckpointError(
            f"{path} was trained on {checkpoint.extra.get('preprocessing')!r} crops; this code "
            f"makes {PREPROCESSING!r} crops: retrain the verifier"
        )
    net: AnyVerifier
    try:
        if "backbone" in checkpoint.config:
            net = build_backbone_verifier(checkpoint.config, checkpoint.tensors)
        else:
            net = build_verifier(checkpoint.config)
            net.load_state_dict(checkpoint.tensors)
    except CheckpointError as exc:  # the backbone's own message says what to install or fix
        raise CheckpointError(f"{path}: {exc}") from exc
    except (ValueError, TypeError, RuntimeError) as exc:  # bad config or mismatched weights
        raise CheckpointError(f"{path} does not fit this verifier code: {exc}") from exc
    target = device if isinstance(device, torch.device) else pick_device(device)
    return net.to(target).eval(), checkpoint.extra
