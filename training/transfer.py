"""Transfer learning (the notes: train on task A, then tune the last or several layers on
task B): start from other weights, freeze the first blocks, retrain the rest (pure).

Weights come from a model version of ours or from a file the user brings — torchvision's
ImageNet ``resnet18`` / ``mobilenet_v3_small`` as ``.pth`` or ``.safetensors`` — read
without running code (``torch.load(weights_only=True)`` or safetensors) and mapped by
name and shape onto the detector, with a report of what matched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from inference.runtime import CheckpointError
from inference.yolo import YoloDetector

# The notes' rule of thumb: little data for task B, retrain only the last layers; more
# data, retrain more; a lot, retrain everything. Below SMALL images the backbone stays
# frozen; from LARGE up nothing is frozen; in between, its first half.
SMALL_SET = 500
LARGE_SET = 10_000


@dataclass
class MatchReport:
    """Which of the file's tensors went where."""

    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # model tensors the file did not have
    unexpected: list[str] = field(default_factory=list)  # file tensors with no place
    prefix: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "matched": len(self.matched),
            "missing": len(self.missing),
            "unexpected": len(self.unexpected),
            "prefix": self.prefix,
            "examples": {
                "matched": self.matched[:5],
                "missing": self.missing[:5],
                "unexpected": self.unexpected[:5],
            },
        }


def read_weights(path: str | Path) -> dict[str, Tensor]:
    """A state dict from a ``.safetensors`` or ``.pth``/``.pt`` file, without running code.

    Raises:
        CheckpointError: unreadable, not a mapping of tensors, or a pickle that needs code.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: object = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses pickled code with an UnpicklingError
        raise CheckpointError(
            f"{path.name} is not a weights file we can read safely: {exc}"
        ) from None
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if isinstance(state, Mapping) and "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path.name} holds no tensors by name (a state dict).")
    return {str(k): v for k, v in state.items()}


def load_into(
    model: nn.Module,
    weights: Mapping[str, Tensor],
    *,
    prefix: str = "",
    reinit_mismatched: bool = False,
) -> MatchReport:
    """Copy ``weights`` into ``model`` where a name (under ``prefix``) and a shape agree.

    A name that matches with another shape is an error naming the tensor (loading it would
    silently train from the wrong start), unless ``reinit_mismatched``: fine-tuning one of
    our detectors on other classes keeps its random new heads (listed as missing).
    """
    own = model.state_dict()
    report = MatchReport(prefix=prefix)
    update: dict[str, Tensor] = {}
    for name, tensor in weights.items():
        target = prefix + name
        if target not in own:
            report.unexpected.append(name)
            continue
        if own[target].shape != tensor.shape:
            if reinit_mismatched:
                report.unexpected.append(name)
                continue
            raise CheckpointError(
                f"{name}: the file's tensor is {tuple(tensor.shape)}, the model's "
                f"{target} is {tuple(own[target].shape)}; this file does not fit this backbone."
            )
        update[target] = tensor.to(own[target].dtype)
        report.matched.append(name)
    scope = [k for k in own if k.startswith(prefix)] if prefix else list(own)
    report.missing = [k for k in scope if k not in update]
    model.load_state_dict({**own, **update})
    return report


def load_backbone_file(model: YoloDetector, path: str | Path) -> MatchReport:
    """A torchvision backbone file onto the detector's torchvision backbone.

    Raises:
        CheckpointError: the detector has our own backbone, nothing matched, or a shape
            does not fit.
    """
    if model.backbone is None:
        raise CheckpointError(
            "This detector uses our own backbone: a torchvision file needs backbone "
            "'resnet18' or 'mobilenet_v3_small'."
        )
    report = load_into(model, read_weights(path), prefix="backbone.")
    if not report.matched:
        raise CheckpointError(f"No tensor of {Path(path).name} fits the detector's backbone.")
    return report


def default_frozen_blocks(model: YoloDetector, images: int) -> int:
    """How many of the first blocks to freeze when fine-tuning on ``images`` images."""
    backbone = sum(1 for name, _ in model.blocks() if name not in ("neck", "heads"))
    if images < SMALL_SET:
        return backbone
    if images < LARGE_SET:
        return backbone // 2
    return 0


def freeze_blocks(model: YoloDetector, n: int) -> list[str]:
    """Freeze the first ``n`` blocks (no gradient; batch norm keeps its running statistics);
    return their names. The rest train."""
    names = []
    for name, modules in model.blocks()[:n]:
        names.append(name)
        for module in modules:
            for p in module.parameters():
                p.requires_grad_(False)
            for sub in module.modules():
                if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                    sub.eval()
                    sub.train = _stay_in_eval.__get__(sub)  # type: ignore[method-assign]
    return names


def _stay_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    # A frozen batch norm keeps the statistics it was trained with: model.train() must not
    # switch it back to updating them from the new data.
    return nn.Module.train(self, False)
