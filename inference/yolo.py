"""A small YOLO detector, written to be read top to bottom.

The formulation is the one of the course notes (YOLOv1), with a few options of the *same*
head switched on by :class:`YoloConfig`:

* The image is divided into an ``S x S`` grid per scale (``S = img_size / stride``). The cell
  that contains an object's centre is responsible for it.
* Each cell predicts ``B`` boxes of ``(x, y, w, h, confidence)`` and ONE set of ``C``
  conditional class probabilities ``P(class | object)``, so a scale's output is a tensor of
  shape ``(N, S, S, B*5 + C)``. Channel layout along the last axis:
  ``[tx, ty, tw, th, tconf] * B`` followed by ``C`` class logits.
* ``x, y`` are the centre relative to the cell bounds: ``x = sigmoid(tx)`` in ``(0, 1)``.
* ``w, h`` are relative to the whole image. With box priors (anchors, one ``(w, h)`` per
  predictor and scale, relative to the image) ``w = prior_w * exp(tw)`` (YOLOv2). Without
  priors we keep YOLOv1's square-root trick: the network predicts ``sqrt(w) = sigmoid(tw)``,
  so ``w = sigmoid(tw) ** 2`` stays in ``(0, 1)`` and the coordinate loss, taken on
  ``sqrt(w)``, weighs an error on a small box more than the same error on a big one.
* ``confidence = sigmoid(tconf)`` is trained toward ``P(object) * IoU(pred, truth)``: the IoU
  of the responsible predictor's decoded box with its truth, and 0 everywhere else.
* At test time ``score = P(class | object) * confidence`` (class-specific confidence), then
  an explicit chain: score threshold, top-k, decode, clip, class-aware NMS, cap.

Losses (see :func:`yolo_loss`): ``coord`` (squared error on x, y and the size
parametrisation), ``conf_obj`` / ``conf_noobj`` (binary cross-entropy toward the IoU target,
resp. toward 0) and ``cls`` (cross-entropy toward the cell's class distribution). YOLOv1 uses
squared error for confidence and classes too; through a sigmoid/softmax that has vanishing
gradients for confident mistakes (e.g. at the 1% initial objectness), cross-entropy has not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inference.boxes import batched_nms, clip_boxes
from inference.runtime import (
    CheckpointError,
    check_config_keys,
    load_checkpoint,
    pick_device,
    save_checkpoint,
)

__all__ = [
    "BACKBONES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "YoloConfig",
    "YoloDetector",
    "YoloTarget",
    "assign_scales",
    "class_scores",
    "count_flops",
    "decode",
    "decode_boxes",
    "default_priors",
    "encode_targets",
    "init_weights",
    "load_detector",
    "save_detector",
    "yolo_loss",
]

Priors = tuple[tuple[tuple[float, float], ...], ...]  # [scale][predictor] -> (w, h) / image
SUPPORTED_STRIDES = (8, 16, 32)
# "yolo" is our own plain conv backbone (the shipped models); the others are torchvision's
# architectures, built with ``weights=None`` (never downloaded) so a user can bring ImageNet
# weights as a file (see training.transfer).
BACKBONES = ("yolo", "resnet18", "mobilenet_v3_small")
INITS = ("he", "xavier")
# The statistics torchvision's ImageNet weights were trained with (0..1 RGB scale): use them as
# input_mean / input_std when fine-tuning from those weights.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHECKPOINT_KIND = "detector"
# exp(t) of a wildly wrong untrained prediction must not overflow to inf before clipping.
MAX_LOG_SCALE = 8.0
# Initial P(object) of every predictor: almost every predictor sees background, so starting
# near 0 keeps the first no-object gradients from swamping everything (RetinaNet's prior).
INITIAL_OBJECTNESS = 0.01


# ----------------------------------------------------------------------------- config
def default_priors(strides: Sequence[int], boxes_per_cell: int) -> Priors:
    """Square priors, log-spaced from 4% to 70% of the image, small ones on fine scales.

    Returns:
        ``[len(strides)][boxes_per_cell]`` pairs ``(w, h)`` relative to the image.
    """
    k = len(strides) * boxes_per_cell
    sizes = [
        math.exp(math.log(0.04) + i * (math.log(0.7 / 0.04) / max(k - 1, 1))) for i in range(k)
    ]
    out: list[tuple[tuple[float, float], ...]] = [()] * len(strides)
    # Finest stride (smallest number) gets the smallest priors.
    for rank, scale in enumerate(sorted(range(len(strides)), key=lambda s: strides[s])):
        chunk = sizes[rank * boxes_per_cell : (rank + 1) * boxes_per_cell]
        out[scale] = tuple((round(s, 6), round(s, 6)) for s in chunk)
    return tuple(out)


@dataclass
class YoloConfig:
    """Everything that defines a detector; saved next to the weights as JSON.

    Attributes:
        num_classes: C, number of object classes.
        class_names: C names (filled with ``class_<i>`` when left empty).
        img_size: side of the square network input in pixels; a multiple of max(strides).
        strides: one entry per output scale, pixels per grid cell (S = img_size / stride);
            a subset of (8, 16, 32), e.g. ``(32,)`` or ``(32, 16)``.
        boxes_per_cell: B, predictors per cell.
        use_priors: predict ``w = prior * exp(t)`` (True) or ``w = sigmoid(t)**2`` (False).
        priors: ``[scale][predictor] -> (w, h)`` relative to the image; generated by
            :func:`default_priors` when None and ``use_priors`` is set.
        width_mult: channel multiplier of the backbone and neck (of the neck only for the
            torchvision backbones, whose widths are fixed).
        leaky_slope: negative slope of the leaky ReLUs (also used by He initialisation).
        backbone: "yolo" (ours, the default), "resnet18" or "mobilenet_v3_small"
            (torchvision's, built without weights; a 1x1 conv block adapts their stride-8/16/32
            features to the neck's widths).
        dropout: channel dropout (``nn.Dropout2d``) on the neck's features right before each
            head, training only; 0 (default) adds nothing. Whole channels are dropped because
            neighbouring pixels of a feature map are so correlated that dropping single ones
            barely regularises.
        init: "he" (default, ``N(0, 2 / ((1 + a^2) fan_in))`` for the leaky ReLUs) or "xavier"
            (the notes' ``N(0, 1 / fan_in)``) for our conv layers; torchvision backbones keep
            their own initialisation (their weights usually come from a file anyway).
        input_mean, input_std: per-channel RGB statistics on the 0..1 scale (e.g. from
            :mod:`inference.stats`, or :data:`IMAGENET_MEAN` / :data:`IMAGENET_STD`); when set
            the network's first operation is ``(x - mean) / std``, so the exported ONNX graph
            and :class:`inference.predict.Predictor` apply exactly what training did. ``None``
            (default): inputs are used as given (0..1).
        lambda_coord, lambda_obj, lambda_noobj, lambda_cls: loss weights.
        score_threshold: minimum class-specific score kept at inference.
        iou_threshold: NMS IoU above which the lower-scoring box of a class is dropped.
        pre_nms_top_k: candidates kept (per image) after the score threshold.
        max_detections: detections returned per image after NMS.
    """

    num_classes: int = 1
    class_names: list[str] = field(default_factory=list)
    img_size: int = 416
    strides: tuple[int, ...] = (32, 16)
    boxes_per_cell: int = 3
    use_priors: bool = True
    priors: Priors | None = None
    width_mult: float = 1.0
    leaky_slope: float = 0.1
    lambda_coord: float = 5.0
    lambda_obj: float = 1.0
    lambda_noobj: float = 0.5
    lambda_cls: float = 1.0
    score_threshold: float = 0.25
    iou_threshold: float = 0.45
    pre_nms_top_k: int = 1000
    max_detections: int = 300
    backbone: str = "yolo"
    dropout: float = 0.0
    init: str = "he"
    input_mean: tuple[float, float, float] | None = None
    input_std: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        # JSON gives lists; the dataclass promises tuples.
        self.strides = tuple(int(s) for s in self.strides)
        self.input_mean = _rgb_triple(self.input_mean, "input_mean")
        self.input_std = _rgb_triple(self.input_std, "input_std")
        self.class_names = list(self.class_names) or [f"class_{i}" for i in range(self.num_classes)]
        if self.use_priors and self.priors is None:
            self.priors = default_priors(self.strides, self.boxes_per_cell)
        if not self.use_priors and self.priors is not None:
            raise ValueError("priors were given but use_priors is False")
        if self.priors is not None:
            self.priors = tuple(
                tuple((float(w), float(h)) for w, h in scale) for scale in self.priors
            )
        self._validate()

    def _validate(self) -> None:
        if self.num_classes < 1 or len(self.class_names) != self.num_classes:
            raise ValueError("num_classes must be >= 1 and match len(class_names)")
        s = self.strides
        if not s or len(set(s)) != len(s) or not set(s) <= set(SUPPORTED_STRIDES):
            raise ValueError(f"strides must be distinct values of {SUPPORTED_STRIDES}, got {s}")
        if self.img_size <= 0 or self.img_size % max(self.strides) != 0:
            raise ValueError(f"img_size must be a positive multiple of {max(self.strides)}")
        if self.boxes_per_cell < 1 or self.width_mult <= 0:
            raise ValueError("boxes_per_cell and width_mult must be positive")
        if self.priors is not None and (
            len(self.priors) != len(self.strides)
            or any(len(p) != self.boxes_per_cell for p in self.priors)
            or any(not (0 < v <= 4) for p in self.priors for wh in p for v in wh)
        ):
            raise ValueError("priors must be [len(strides)][boxes_per_cell] pairs in (0, 4]")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if (self.input_mean is None) != (self.input_std is None):
            raise ValueError("input_mean and input_std go together: give both or neither")
        if self.input_std is not None and min(self.input_std) <= 0:
            raise ValueError(f"input_std must be positive, got {self.input_std}")

    @property
    def grids(self) -> tuple[int, ...]:
        """S of each scale at ``img_size``."""
        return tuple(self.img_size // s for s in self.strides)

    @property
    def channels_per_cell(self) -> int:
        """B*5 + C, the last dimension of every raw output."""
        return self.boxes_per_cell * 5 + self.num_classes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> YoloConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, not silently dropped."""
        check_config_keys(cls, data)
        return cls(**data)


def _rgb_triple(value: Sequence[float] | None, name: str) -> tuple[float, float, float] | None:
    if value is None:
        return None
    if len(value) != 3:
        raise ValueError(f"{name} must hold 3 values (R, G, B), got {list(value)}")
    return (float(value[0]), float(value[1]), float(value[2]))


# ----------------------------------------------------------------------------- model
def init_weights(module: nn.Module, nonlinearity: str = "leaky_relu", slope: float = 0.1) -> None:
    """Initialise every conv / linear layer of ``module`` for the activation that follows it.

    * ``relu`` / ``leaky_relu``: He, ``W ~ N(0, 2 / ((1 + a^2) * fan_in))`` with ``a`` the
      negative slope (0 for ReLU).
    * ``tanh`` (and ``linear`` / ``sigmoid``): Xavier as the notes define it,
      ``W ~ N(0, 1 / fan_in)``. (``torch.nn.init.xavier_normal_`` uses
      ``2 / (fan_in + fan_out)`` instead; we follow the notes.)

    Biases start at 0; batch-norm layers at weight 1, bias 0.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            if nonlinearity in ("relu", "leaky_relu"):
                a = slope if nonlinearity == "leaky_relu" else 0.0
                nn.init.kaiming_normal_(m.weight, a=a, mode="fan_in", nonlinearity="leaky_relu")
            elif nonlinearity in ("tanh", "linear", "sigmoid"):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="linear")
            else:
                raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ConvBlock(nn.Sequential):
    """Conv (no bias: batch norm has one) -> batch norm -> leaky ReLU."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, slope: float) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.LeakyReLU(slope, inplace=True),
        )


def _channels(width_mult: float) -> list[int]:
    # Multiples of 8 vectorise well on CPU; 8 is the floor so tiny test models still work.
    return [max(8, round(c * width_mult / 8) * 8) for c in (16, 32, 64, 128, 256)]


Block = tuple[str, tuple[nn.Module, ...]]  # a named group of modules, in input-to-output order


class ResNet18Backbone(nn.Module):
    """torchvision's ``resnet18`` without its pooling and classifier (built with ``weights=None``).

    Attribute names are torchvision's, so an ImageNet ``state_dict`` loads by name under the
    ``backbone.`` prefix (``fc.*`` is the classifier and has no place here).
    """

    channels = {8: 128, 16: 256, 32: 512}

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import resnet18  # lazy: serving our own backbone never needs it

        net = resnet18(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )

    def forward(self, images: Tensor) -> dict[int, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))  # (N, 64, H/4, W/4)
        f8 = self.layer2(self.layer1(x))  # (N, 128, H/8, W/8)
        f16 = self.layer3(f8)  # (N, 256, H/16, W/16)
        return {8: f8, 16: f16, 32: self.layer4(f16)}  # 32: (N, 512, H/32, W/32)

    def blocks(self) -> list[Block]:
        return [
            ("backbone.stem", (self.conv1, self.bn1)),
            ("backbone.layer1", (self.layer1,)),
            ("backbone.layer2", (self.layer2,)),
            ("backbone.layer3", (self.layer3,)),
            ("backbone.layer4", (self.layer4,)),
        ]


class MobileNetV3SmallBackbone(nn.Module):
    """torchvision's ``mobilenet_v3_small`` feature extractor (``features.0`` to ``features.12``).

    Built with ``weights=None``; attribute names are torchvision's (``features.*``), so ImageNet
    weights load by name under the ``backbone.`` prefix (``classifier.*`` is dropped).
    """

    channels = {8: 24, 16: 48, 32: 576}
    # features[a:b] takes stride S/2 to stride S (the stem takes 1 to 4).
    _stages = {4: (0, 2), 8: (2, 4), 16: (4, 9), 32: (9, 13)}

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import mobilenet_v3_small  # lazy, as for ResNet18Backbone

        self.features = mobilenet_v3_small(weights=None).features

    def _stage(self, stride: int) -> nn.Sequential:
        a, b = self._stages[stride]
        return nn.Sequential(*list(self.features)[a:b])

    def forward(self, images: Tensor) -> dict[int, Tensor]:
        x = images
        out: dict[int, Tensor] = {}
        for stride, (a, b) in self._stages.items():
            for i in range(a, b):
                x = self.features[i](x)
            out[stride] = x  # 8: (N, 24, H/8, W/8), 16: (N, 48, ...), 32: (N, 576, ...)
        return out

    def blocks(self) -> list[Block]:
        names = {4: "stem", 8: "stage8", 16: "stage16", 32: "stage32"}
        return [
            (f"backbone.{names[s]}", tuple(list(self.features)[a:b]))
            for s, (a, b) in self._stages.items()
        ]


class YoloDetector(nn.Module):
    """Backbone (strides 2..32) + top-down neck + one 1x1 head per scale.

    The default backbone is our plain conv stack (``stem``, ``stage8``, ``stage16``,
    ``stage32``; the shipped models' weights); ``config.backbone`` may instead pick
    torchvision's resnet18 or mobilenet_v3_small, whose stride-8/16/32 features go through a
    1x1 conv block (``adapt``) to the widths the same neck and heads expect.

    Default config (width 1.0, strides 32 and 16) costs about 1.1 GFLOPs at 416x416.
    """

    input_mean: Tensor  # (1, 3, 1, 1) buffers; identity (0 and 1) without normalisation
    input_std: Tensor

    def __init__(self, config: YoloConfig) -> None:
        super().__init__()
        self.config = config
        c = _channels(config.width_mult)
        a = config.leaky_slope
        feat = {8: c[2], 16: c[3], 32: c[4]}
        needed = [32] + [s for s in (16, 8) if s >= min(config.strides)]
        self.backbone: ResNet18Backbone | MobileNetV3SmallBackbone | None = None
        if config.backbone == "yolo":
            self.stem = nn.Sequential(ConvBlock(3, c[0], 3, 2, a), ConvBlock(c[0], c[1], 3, 2, a))
            # stageS turns stride S/2 features into stride S features (S = 8, 16, 32).
            self.stage8 = nn.Sequential(ConvBlock(c[1], c[2], 3, 2, a))
            self.stage16 = nn.Sequential(
                ConvBlock(c[2], c[3], 3, 2, a), ConvBlock(c[3], c[3], 3, 1, a)
            )
            self.stage32 = nn.Sequential(
                ConvBlock(c[3], c[4], 3, 2, a), ConvBlock(c[4], c[4], 3, 1, a)
            )
        else:
            self.backbone = (
                ResNet18Backbone() if config.backbone == "resnet18" else MobileNetV3SmallBackbone()
            )
            width = self.backbone.channels
            self.adapt = nn.ModuleDict(
                {str(s): ConvBlock(width[s], feat[s], 1, 1, a) for s in needed}
            )
        self.neck32 = nn.Sequential(ConvBlock(c[4], c[3], 1, 1, a), ConvBlock(c[3], c[4], 3, 1, a))
        # Top-down path: 32 -> 16 -> 8, only as far down as the finest requested stride.
        self.lateral = nn.ModuleDict()
        self.merge = nn.ModuleDict()
        for s in needed[1:]:
            self.lateral[str(s)] = ConvBlock(feat[2 * s], feat[s] // 2, 1, 1, a)
            # 1x1 squeeze before the 3x3: 2.5x fewer FLOPs than a 3x3 on the concat.
            self.merge[str(s)] = nn.Sequential(
                ConvBlock(feat[s] // 2 + feat[s], feat[s] // 2, 1, 1, a),
                ConvBlock(feat[s] // 2, feat[s], 3, 1, a),
            )
        self.dropout = nn.Dropout2d(config.dropout)  # no weights: state_dict unchanged
        self.heads = nn.ModuleList(
            nn.Conv2d(feat[s], config.channels_per_cell, 1) for s in config.strides
        )
        self._init_weights()
        self._init_heads()
        # Not persistent: the statistics live in the config, so state_dicts stay as before.
        mean, std = config.input_mean or (0.0, 0.0, 0.0), config.input_std or (1.0, 1.0, 1.0)
        self.register_buffer("input_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def _init_weights(self) -> None:
        nonlinearity = "leaky_relu" if self.config.init == "he" else "tanh"
        for name, child in self.named_children():
            if name != "backbone":  # torchvision's modules keep torchvision's initialisation
                init_weights(child, nonlinearity, self.config.leaky_slope)

    def _init_heads(self) -> None:
        # The heads feed a sigmoid/softmax, not a leaky ReLU: small weights keep the initial
        # predictions at the priors, the objectness bias starts at INITIAL_OBJECTNESS.
        B = self.config.boxes_per_cell
        p = INITIAL_OBJECTNESS
        for head in self.heads:
            assert isinstance(head, nn.Conv2d) and head.bias is not None
            nn.init.normal_(head.weight, std=0.01)
            with torch.no_grad():
                head.bias.zero_()
                head.bias[4 : B * 5 : 5] = math.log(p / (1 - p))

    def blocks(self) -> list[Block]:
        """The network as named groups of modules from input to output, for freezing.

        Backbone blocks first (ours: ``stem``, ``stage8``, ``stage16``, ``stage32``;
        resnet18: ``backbone.stem``, ``backbone.layer1`` .. ``layer4``; mobilenet:
        ``backbone.stem``, ``backbone.stage8`` .. ``stage32``), then ``neck`` (with the
        adapters) and ``heads``. :func:`training.transfer.freeze_blocks` freezes the first N.
        """
        if self.backbone is None:
            backbone: list[Block] = [
                ("stem", (self.stem,)),
                ("stage8", (self.stage8,)),
                ("stage16", (self.stage16,)),
                ("stage32", (self.stage32,)),
            ]
            neck: tuple[nn.Module, ...] = (self.neck32, self.lateral, self.merge)
        else:
            backbone = self.backbone.blocks()
            neck = (self.adapt, self.neck32, self.lateral, self.merge)
        return [*backbone, ("neck", neck), ("heads", (self.heads,))]

    def backbone_features(self, images: Tensor) -> dict[int, Tensor]:
        """Backbone features at strides 8, 16 and 32, at the widths the neck expects.

        Args:
            images (Tensor[N, 3, H, W]): images as the network sees them (normalised).

        Returns:
            ``{8: (N, c2, H/8, W/8), 16: (N, c3, H/16, W/16), 32: (N, c4, H/32, W/32)}``;
            with a torchvision backbone only the strides the neck uses.
        """
        if self.backbone is None:
            x: Tensor = self.stem(images)  # (N, c1, H/4, W/4)
            f8 = self.stage8(x)  # (N, c2, H/8, W/8)
            f16 = self.stage16(f8)  # (N, c3, H/16, W/16)
            return {8: f8, 16: f16, 32: self.stage32(f16)}  # 32: (N, c4, H/32, W/32)
        raw = self.backbone(images)
        return {int(s): adapt(raw[int(s)]) for s, adapt in self.adapt.items()}

    def raw_outputs(self, images: Tensor) -> list[Tensor]:
        """Raw head outputs, one tensor ``(N, S, S, B*5 + C)`` per scale in config order.

        Args:
            images (Tensor[N, 3, H, W]): float images on the 0..1 scale (``to_tensor``),
                ``H == W`` a multiple of the largest stride; with ``config.input_mean`` set
                they are normalised here, first thing.
        """
        _check_images(images, self.config)
        if self.config.input_mean is not None:
            images = (images - self.input_mean) / self.input_std
        feats = self.backbone_features(images)
        pyramid = {32: self.neck32(feats[32])}
        for s in (16, 8):
            if str(s) in self.merge:
                up = F.interpolate(self.lateral[str(s)](pyramid[2 * s]), scale_factor=2.0)
                pyramid[s] = self.merge[str(s)](torch.cat((up, feats[s]), dim=1))
        outs = []
        for s, head in zip(self.config.strides, self.heads, strict=True):
            y: Tensor = head(self.dropout(pyramid[s]))  # (N, B*5+C, S, S)
            outs.append(y.permute(0, 2, 3, 1).contiguous())  # (N, S, S, B*5+C)
        return outs

    def forward(
        self, images: Tensor, targets: list[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Losses when ``targets`` are given, detections otherwise.

        Args:
            images (Tensor[N, 3, H, W]): float images on the 0..1 scale (square).
            targets: per image ``{"boxes": Tensor[K, 4] xyxy pixels, "labels": Tensor[K]}``.

        Returns:
            With targets: ``{"loss", "coord", "conf_obj", "conf_noobj", "cls"}`` scalars
            (``loss`` is the sum of the others, which are already weighted).
            Without: one ``{"boxes": Tensor[D, 4] xyxy px, "scores": Tensor[D],
            "labels": Tensor[D] int64}`` per image.
        """
        raw = self.raw_outputs(images)
        if targets is not None:
            if len(targets) != images.shape[0]:
                raise ValueError("one target dict per image is required")
            return yolo_loss(raw, targets, self.config, images.shape[-1])
        return decode(raw, self.config, images.shape[-1])


def _check_images(images: Tensor, config: YoloConfig) -> None:
    if images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ValueError(f"images must be float (N, 3, H, W), got {tuple(images.shape)}")
    h, w = images.shape[-2:]
    if h != w or h % max(config.strides) != 0:
        raise ValueError(f"images must be square with a side multiple of {max(config.strides)}")


def count_flops(model: YoloDetector, img_size: int | None = None) -> int:
    """FLOPs (2 x multiply-adds of convs and linears) of one forward pass on one image.

    Args:
        model: the detector (its train/eval mode is restored afterwards).
        img_size: input side in pixels; defaults to ``model.config.img_size``.
    """
    size = img_size or model.config.img_size
    total = 0

    def hook(m: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.Conv2d):
            k = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            total += 2 * out.numel() * k
        elif isinstance(m, nn.Linear):
            total += 2 * out.numel() * m.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    was_training = model.training
    try:
        model.eval()
        param = next(model.parameters())
        with torch.no_grad():
            model.raw_outputs(torch.zeros(1, 3, size, size, device=param.device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total


# ----------------------------------------------------------------------------- decoding
def _split(raw: Tensor, config: YoloConfig) -> tuple[Tensor, Tensor]:
    """(N, S, S, B*5+C) -> box params (N, S, S, B, 5) and class logits (N, S, S, C)."""
    B = config.boxes_per_cell
    if raw.dim() != 4 or raw.shape[-1] != config.channels_per_cell:
        raise ValueError(f"raw output must be (N, S, S, {config.channels_per_cell})")
    n, s1, s2, _ = raw.shape
    return raw[..., : B * 5].reshape(n, s1, s2, B, 5), raw[..., B * 5 :]


def _prior_tensor(config: YoloConfig, scale: int, like: Tensor) -> Tensor | None:
    if config.priors is None:
        return None
    return like.new_tensor(config.priors[scale])  # (B, 2) relative to the image


def _decode_wh(t_wh: Tensor, prior: Tensor | None) -> Tensor:
    """Size parametrisation -> (w, h) relative to the image; ``prior`` broadcasts."""
    if prior is None:
        return torch.sigmoid(t_wh) ** 2
    return prior * torch.exp(t_wh.clamp(max=MAX_LOG_SCALE))


def _decode_params(
    t: Tensor, col: Tensor, row: Tensor, prior: Tensor | None, stride: float, img_size: int
) -> Tensor:
    """Box params (..., 4) of predictors at (row, col) -> xyxy pixels (..., 4)."""
    cx = (col + torch.sigmoid(t[..., 0])) * stride
    cy = (row + torch.sigmoid(t[..., 1])) * stride
    wh = _decode_wh(t[..., 2:4], prior) * img_size
    half_w, half_h = wh[..., 0] / 2, wh[..., 1] / 2
    return torch.stack((cx - half_w, cy - half_h, cx + half_w, cy + half_h), dim=-1)


def decode_boxes(
    raw: Tensor, config: YoloConfig, scale: int, img_size: int | None = None
) -> Tensor:
    """Decode every predictor's box of one scale.

    Args:
        raw (Tensor[N, S, S, B*5+C]): raw output of scale index ``scale``.
        img_size: network input side in pixels (default ``config.img_size``).

    Returns:
        Tensor[N, S, S, B, 4]: ``xyxy`` boxes in input-image pixels (not clipped).
    """
    size = img_size or config.img_size
    box, _ = _split(raw, config)
    S = raw.shape[1]
    idx = torch.arange(S, device=raw.device, dtype=raw.dtype)
    row = idx.view(1, S, 1, 1)
    col = idx.view(1, 1, S, 1)
    return _decode_params(box[..., :4], col, row, _prior_tensor(config, scale, raw), size / S, size)


def class_scores(raw: Tensor, config: YoloConfig) -> Tensor:
    """Class-specific confidence ``P(class | object) * confidence`` of every predictor.

    Args:
        raw (Tensor[N, S, S, B*5+C]): raw output of one scale.

    Returns:
        Tensor[N, S, S, B, C]: scores in ``[0, 1]``.
    """
    box, cls_logits = _split(raw, config)
    conf = torch.sigmoid(box[..., 4])  # (N, S, S, B)
    probs = torch.softmax(cls_logits, dim=-1)  # (N, S, S, C), one set per cell
    return conf.unsqueeze(-1) * probs.unsqueeze(-2)  # (N, S, S, B, C)


def decode(
    raw_outputs: Sequence[Tensor], config: YoloConfig, img_size: int | None = None
) -> list[dict[str, Tensor]]:
    """Post-process raw outputs into detections, one dict per image.

    Chain (all scales together): class-specific score, score threshold
    (``> config.score_threshold``), top-k per image (``config.pre_nms_top_k``), decode, clip
    to the image, class-aware NMS (``config.iou_threshold``), cap (``config.max_detections``).
    The whole batch goes through each step at once (one NMS call keyed by image and class),
    because per-image loops of small tensor ops cost more than the work itself on a CPU.

    Args:
        raw_outputs: per scale, Tensor[N, S, S, B*5+C] in config order.
        img_size: network input side in pixels (default ``config.img_size``).

    Returns:
        Per image ``{"boxes": Tensor[D, 4] xyxy px, "scores": Tensor[D],
        "labels": Tensor[D] int64}``, sorted by decreasing score.
    """
    if len(raw_outputs) != len(config.strides):
        raise ValueError(f"expected {len(config.strides)} raw outputs, got {len(raw_outputs)}")
    size = img_size or config.img_size
    return decode_dense(*dense_predictions(raw_outputs, config, size), config, size)


def dense_predictions(
    raw_outputs: Sequence[Tensor], config: YoloConfig, img_size: int | None = None
) -> tuple[Tensor, Tensor]:
    """Every predictor's decoded box and class-specific scores, all scales flattened.

    Plain tensor math with fixed shapes, so it can run inside an exported graph (the ONNX
    backend does), leaving only thresholding and NMS to :func:`decode_dense`.

    Args:
        raw_outputs: per scale, Tensor[N, S, S, B*5+C] in config order.

    Returns:
        ``boxes`` Tensor[N, P, 4] xyxy input pixels (not clipped) and ``scores``
        Tensor[N, P, C], with P = sum over scales of S*S*B in ``(row, col, b)`` order.
    """
    size = img_size or config.img_size
    n, c = raw_outputs[0].shape[0], config.num_classes
    boxes = [decode_boxes(r, config, i, size).reshape(n, -1, 4) for i, r in enumerate(raw_outputs)]
    scores = [class_scores(r, config).reshape(n, -1, c) for r in raw_outputs]
    return torch.cat(boxes, dim=1), torch.cat(scores, dim=1)


def decode_dense(
    boxes: Tensor, scores: Tensor, config: YoloConfig, img_size: int | None = None
) -> list[dict[str, Tensor]]:
    """Threshold, top-k, clip, NMS and cap on :func:`dense_predictions`' output.

    Args:
        boxes (Tensor[N, P, 4]): xyxy input pixels.
        scores (Tensor[N, P, C]): class-specific scores.

    Returns:
        As :func:`decode`.
    """
    size = img_size or config.img_size
    n_images, c = scores.shape[0], scores.shape[2]
    flat = scores.reshape(n_images, -1)
    image, index = torch.nonzero(flat > config.score_threshold, as_tuple=True)
    pred, labels = index // c, index % c
    cand_boxes, cand_scores = boxes[image, pred], flat[image, index]
    image, cand_scores, labels, cand_boxes = _top_k_per_image(
        image, cand_scores, labels, cand_boxes, n_images, config.pre_nms_top_k
    )
    cand_boxes = clip_boxes(cand_boxes, size, size)
    # One NMS for the batch: boxes only suppress boxes of the same image and class.
    keep = batched_nms(cand_boxes, cand_scores, image * c + labels, config.iou_threshold)
    if n_images == 1:
        keep = keep[: config.max_detections]
        return [{"boxes": cand_boxes[keep], "scores": cand_scores[keep], "labels": labels[keep]}]
    out = []
    for n in range(n_images):  # keep is sorted by score, so each image's share is too
        mine = keep[image[keep] == n][: config.max_detections]
        out.append({"boxes": cand_boxes[mine], "scores": cand_scores[mine], "labels": labels[mine]})
    return out


def _top_k_per_image(
    image: Tensor, scores: Tensor, labels: Tensor, boxes: Tensor, n_images: int, k: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Keep at most ``k`` candidates per image (the best), bounding the work of NMS."""
    if image.numel() <= k:
        return image, scores, labels, boxes
    counts = torch.bincount(image, minlength=n_images)
    if int(counts.max()) <= k:
        return image, scores, labels, boxes
    keep = torch.cat(
        [
            idx[scores[idx].topk(min(k, idx.numel())).indices]
            for idx in (torch.nonzero(image == n).flatten() for n in range(n_images))
        ]
    )
    return image[keep], scores[keep], labels[keep], boxes[keep]


# ----------------------------------------------------------------------------- encoding
@dataclass
class YoloTarget:
    """Training targets of one scale; leading dims are (S, S) or, batched, (N, S, S).

    Attributes:
        obj_mask (Bool[..., S, S, B]): predictor is responsible for an object.
        box (Tensor[..., S, S, B, 4]): ``(x, y, w, h)``: centre offset in the cell in
            ``[0, 1)``, size relative to the image; 0 where ``obj_mask`` is False.
        box_xyxy (Tensor[..., S, S, B, 4]): the same truth box in input pixels.
        labels (Long[..., S, S, B]): class of the assigned object, -1 where none.
        cls_mask (Bool[..., S, S]): the cell holds at least one assigned object.
        cls_target (Tensor[..., S, S, C]): class distribution of the cell's assigned objects
            (one-hot with a single object; rows sum to 1 where ``cls_mask``, else 0).
    """

    obj_mask: Tensor
    box: Tensor
    box_xyxy: Tensor
    labels: Tensor
    cls_mask: Tensor
    cls_target: Tensor

    @staticmethod
    def empty(S: int, B: int, C: int, dtype: torch.dtype, device: torch.device) -> YoloTarget:
        """Targets of an image without objects: leading dims (S, S)."""
        return YoloTarget(
            obj_mask=torch.zeros(S, S, B, dtype=torch.bool, device=device),
            box=torch.zeros(S, S, B, 4, dtype=dtype, device=device),
            box_xyxy=torch.zeros(S, S, B, 4, dtype=dtype, device=device),
            labels=torch.full((S, S, B), -1, dtype=torch.int64, device=device),
            cls_mask=torch.zeros(S, S, dtype=torch.bool, device=device),
            cls_target=torch.zeros(S, S, C, dtype=dtype, device=device),
        )

    @staticmethod
    def stack(items: Sequence[YoloTarget]) -> YoloTarget:
        """Stack per-image targets along a new leading batch dimension."""
        return YoloTarget(
            *(torch.stack([getattr(t, f.name) for t in items]) for f in fields(YoloTarget))
        )


def _wh_iou(wh: Tensor, priors: Tensor) -> Tensor:
    """IoU of (w, h) pairs centred on the same point: (K, 2) x (P, 2) -> (K, P)."""
    inter = torch.minimum(wh[:, None, 0], priors[None, :, 0]) * torch.minimum(
        wh[:, None, 1], priors[None, :, 1]
    )
    union = (wh[:, 0] * wh[:, 1])[:, None] + (priors[:, 0] * priors[:, 1])[None, :] - inter
    return inter / union


def assign_scales(wh: Tensor, config: YoloConfig, img_size: int) -> Tensor:
    """Which scale is responsible for each object.

    With priors: the scale of the best-IoU prior over all scales (YOLOv3). Without priors:
    the scale whose nominal object size ``4 * stride`` pixels is closest in log space to
    ``sqrt(w * h)`` (boundary between strides 16 and 32 at about 90 px).

    Args:
        wh (Tensor[K, 2]): object sizes relative to the image.

    Returns:
        Tensor[K]: int64 scale index into ``config.strides``.
    """
    if len(config.strides) == 1 or wh.shape[0] == 0:
        return torch.zeros(wh.shape[0], dtype=torch.int64, device=wh.device)
    if config.priors is not None:
        all_priors = wh.new_tensor([p for scale in config.priors for p in scale])
        best = _wh_iou(wh, all_priors).argmax(dim=1)
        return best // config.boxes_per_cell
    size = (wh[:, 0] * wh[:, 1]).sqrt() * img_size
    nominal = wh.new_tensor([4.0 * s for s in config.strides])
    return (size.log()[:, None] - nominal.log()[None, :]).abs().argmin(dim=1)


def _match_cell(scores: Tensor) -> list[tuple[int, int]]:
    """Greedy one-to-one matching, best score first: (k objects, B predictors) -> pairs."""
    scores = scores.clone()
    pairs = []
    for _ in range(min(scores.shape)):
        # argmax returns the first maximum: ties go to the earlier object, then predictor.
        obj, pred = divmod(int(scores.argmax()), scores.shape[1])
        pairs.append((obj, pred))
        scores[obj, :], scores[:, pred] = -math.inf, -math.inf
    return pairs


def _match_scores(
    boxes: Tensor, wh: Tensor, prior: Tensor | None, preds: Tensor | None, B: int
) -> Tensor:
    """How well each object fits each predictor of its cell: (k, 4) px, (k, 2) -> (k, B).

    ``preds`` (Tensor[k, B, 4]) are the current boxes of each object's cell, xyxy px.
    """
    if prior is not None:  # shape IoU with the predictor's prior
        return _wh_iou(wh, prior)
    if preds is not None:  # IoU with the predictor's current box, YOLOv1
        return _paired_iou(boxes[:, None, :], preds.to(boxes.dtype))
    return boxes.new_zeros(boxes.shape[0], B)  # no information: predictor order


def _assign_predictors(cell_ids: Tensor, area: Tensor, match: Tensor) -> tuple[Tensor, Tensor]:
    """One-to-one object -> predictor assignment inside each cell.

    Args:
        cell_ids (Tensor[k]): flat cell index of each object.
        area (Tensor[k]): object areas; larger objects win ties.
        match (Tensor[k, B]): fit of each object with each predictor of its cell.

    Returns:
        (objects, predictors): int64 Tensor[m] each, m <= k (overflowing objects dropped).
    """
    counts = torch.bincount(cell_ids)
    alone = counts[cell_ids] == 1  # the common case, done without a Python loop
    objs = [torch.nonzero(alone).flatten()]
    preds = [match[objs[0]].argmax(dim=1)]  # argmax: first max, so predictor order on ties
    crowded = torch.nonzero(~alone).flatten()
    crowded = crowded[torch.argsort(-area[crowded], stable=True)]  # larger first
    for cid in torch.unique(cell_ids[crowded]).tolist():
        members = crowded[cell_ids[crowded] == cid]
        pairs = _match_cell(match[members])
        objs.append(members[[o for o, _ in pairs]])
        preds.append(torch.tensor([p for _, p in pairs], dtype=torch.int64, device=match.device))
    return torch.cat(objs), torch.cat(preds)


def encode_targets(
    boxes: Tensor,
    labels: Tensor,
    config: YoloConfig,
    scale: int,
    img_size: int | None = None,
    pred_boxes: Tensor | None = None,
) -> YoloTarget:
    """Build the targets of one image for scale index ``scale``.

    Boxes are clipped to the image; empty ones are ignored. Each object goes to one scale
    (:func:`assign_scales`) and to the cell containing its centre. Objects sharing a cell
    get different predictors, best match first: IoU of the object's shape with the
    predictor's prior; without priors the IoU with that predictor's current box
    (``pred_boxes``, YOLOv1), or predictor order when it is not given. Larger objects win
    ties. Objects left over when a cell has more than B of them are dropped at this scale.

    Args:
        boxes (Tensor[K, 4]): ``xyxy`` in input pixels.
        labels (Tensor[K]): int64 class indices in ``[0, C)``.
        img_size: network input side in pixels (default ``config.img_size``).
        pred_boxes (Tensor[S, S, B, 4] | None): decoded predictions (xyxy px) of this scale.

    Returns:
        :class:`YoloTarget` with leading dims (S, S).
    """
    size = img_size or config.img_size
    S, B, C = size // config.strides[scale], config.boxes_per_cell, config.num_classes
    dtype = boxes.dtype if boxes.is_floating_point() else torch.float32
    tgt = YoloTarget.empty(S, B, C, dtype, boxes.device)
    boxes = clip_boxes(boxes.to(dtype).reshape(-1, 4), size, size)
    wh = (boxes[:, 2:] - boxes[:, :2]) / size  # (K, 2) relative to the image
    valid = (wh > 0).all(dim=1)
    if labels.numel() and (labels.min() < 0 or labels.max() >= C):
        raise ValueError(f"labels must be in [0, {C})")
    mine = torch.nonzero(valid).flatten()
    mine = mine[assign_scales(wh[mine], config, size) == scale]
    if mine.numel() == 0:
        return tgt
    stride = size / S
    centre = (boxes[mine, :2] + boxes[mine, 2:]) / 2 / stride  # (k, 2) in cell units
    cell = centre.floor().long().clamp(0, S - 1)  # (k, 2) as (col, row)
    cell_ids = cell[:, 1] * S + cell[:, 0]  # (k,)
    cell_preds = None if pred_boxes is None else pred_boxes[cell[:, 1], cell[:, 0]]
    match = _match_scores(boxes[mine], wh[mine], _prior_tensor(config, scale, boxes), cell_preds, B)
    pos, b = _assign_predictors(cell_ids, wh[mine, 0] * wh[mine, 1], match)
    r, c = cell[pos, 1], cell[pos, 0]
    # One indexed write per field instead of one per object: this runs every training step.
    i, lab = mine[pos], labels[mine[pos]].to(torch.int64)
    tgt.obj_mask[r, c, b] = True
    tgt.box[r, c, b] = torch.cat((centre[pos] - cell[pos].to(dtype), wh[i]), dim=1)
    tgt.box_xyxy[r, c, b] = boxes[i]
    tgt.labels[r, c, b] = lab
    tgt.cls_mask[r, c] = True
    tgt.cls_target.index_put_((r, c, lab), torch.ones_like(r, dtype=dtype), accumulate=True)
    tgt.cls_target /= tgt.cls_target.sum(-1, keepdim=True).clamp(min=1)
    return tgt


# ----------------------------------------------------------------------------- loss
def _paired_iou(a: Tensor, b: Tensor) -> Tensor:
    """Elementwise IoU of xyxy boxes (..., 4) x (..., 4) -> (...)."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter / (area_a + area_b - inter).clamp(min=1e-9)


def _scale_loss(
    raw: Tensor, tgt: YoloTarget, config: YoloConfig, scale: int, img_size: int
) -> dict[str, Tensor]:
    """Unweighted loss sums of one scale: raw (N, S, S, B*5+C), batched targets."""
    box, cls_logits = _split(raw, config)  # (N, S, S, B, 5), (N, S, S, C)
    obj = tgt.obj_mask
    xy_err = (torch.sigmoid(box[..., 0:2]) - tgt.box[..., 0:2]).pow(2).sum(-1)
    prior = _prior_tensor(config, scale, raw)
    if prior is None:  # YOLOv1: squared error on sqrt(w), sqrt(h)
        wh_err = (torch.sigmoid(box[..., 2:4]) - tgt.box[..., 2:4].sqrt()).pow(2).sum(-1)
    else:  # YOLOv2: squared error on log(w / prior)
        t_wh = torch.log(tgt.box[..., 2:4].clamp(min=1e-9) / prior)
        wh_err = (box[..., 2:4] - t_wh).pow(2).sum(-1)
    with torch.no_grad():  # the confidence target is a label, not a path for gradients
        pred = decode_boxes(raw.detach(), config, scale, img_size)
        iou = _paired_iou(pred, tgt.box_xyxy)  # (N, S, S, B)
    conf = box[..., 4]
    log_p = F.log_softmax(cls_logits, dim=-1)
    return {
        "coord": (xy_err + wh_err)[obj].sum(),
        "conf_obj": F.binary_cross_entropy_with_logits(conf[obj], iou[obj], reduction="sum"),
        "conf_noobj": F.binary_cross_entropy_with_logits(
            conf[~obj], torch.zeros_like(conf[~obj]), reduction="sum"
        ),
        "cls": -(tgt.cls_target * log_p).sum(-1)[tgt.cls_mask].sum(),
    }


def yolo_loss(
    raw_outputs: Sequence[Tensor],
    targets: Sequence[dict[str, Tensor]],
    config: YoloConfig,
    img_size: int | None = None,
) -> dict[str, Tensor]:
    """YOLO loss of a batch.

    Args:
        raw_outputs: per scale, Tensor[N, S, S, B*5+C].
        targets: per image ``{"boxes": Tensor[K, 4] xyxy px, "labels": Tensor[K] int64}``.
        img_size: network input side in pixels (default ``config.img_size``).

    Returns:
        Scalars ``coord`` (x lambda_coord), ``conf_obj`` (x lambda_obj), ``conf_noobj``
        (x lambda_noobj), ``cls`` (x lambda_cls), each summed over the batch and divided by
        N, and their sum ``loss``.
    """
    size = img_size or config.img_size
    n = raw_outputs[0].shape[0]
    weights = {"coord": config.lambda_coord, "conf_obj": config.lambda_obj}
    weights.update(conf_noobj=config.lambda_noobj, cls=config.lambda_cls)
    totals = {k: raw_outputs[0].new_zeros(()) for k in weights}
    for scale, raw in enumerate(raw_outputs):
        # Without priors, YOLOv1 matches objects to predictors by their current boxes.
        pred = decode_boxes(raw.detach(), config, scale, size) if config.priors is None else None
        per_image = []
        for i, t in enumerate(targets):
            boxes, labels = t["boxes"].to(raw.device, raw.dtype), t["labels"].to(raw.device)
            p = None if pred is None else pred[i]
            per_image.append(encode_targets(boxes, labels, config, scale, size, p))
        terms = _scale_loss(raw, YoloTarget.stack(per_image), config, scale, size)
        for k in totals:
            totals[k] = totals[k] + terms[k]
    out = {k: weights[k] * v / n for k, v in totals.items()}
    out["loss"] = sum(out.values(), raw_outputs[0].new_zeros(()))
    return out


# ----------------------------------------------------------------------------- checkpoints
def save_detector(path: str | Path, model: YoloDetector) -> str:
    """Write ``model`` (weights + config) as a safetensors checkpoint of kind "detector".

    Returns:
        sha256 hex digest of the written file.
    """
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return save_checkpoint(path, tensors, kind=CHECKPOINT_KIND, config=model.config.to_dict())


def load_detector(
    path: str | Path,
    device: str | torch.device | None = None,
    expected_sha256: str | None = None,
) -> YoloDetector:
    """Load a detector written by :func:`save_detector`, in eval mode.

    Args:
        device: where to put it; default from :func:`inference.runtime.pick_device`.
        expected_sha256: refuse the file unless its digest matches.

    Raises:
        CheckpointError: unreadable file, wrong kind, or config/weights that do not fit.
    """
    ckpt = load_checkpoint(path, expected_kind=CHECKPOINT_KIND, expected_sha256=expected_sha256)
    try:
        model = YoloDetector(YoloConfig.from_dict(ckpt.config))
        model.load_state_dict(ckpt.tensors, strict=True)
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{path}: detector config/weights are incompatible: {exc}") from exc
    target = device if isinstance(device, torch.device) else pick_device(device)
    return model.to(target).eval()
