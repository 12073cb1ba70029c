"""Serving a trained detector: images of any size in, boxes in their own pixels out.

A :class:`Predictor` holds one loaded :class:`~inference.yolo.YoloDetector` in eval mode on
one device. Each call letterboxes the images with :mod:`inference.preprocess` (the same
function training used), runs one forward pass per batch under ``torch.inference_mode()``,
decodes with the explicit post-processing chain of :func:`inference.yolo.decode`, and maps
boxes back to each original image.

Per-call threshold overrides are applied to a *copy* of the model's config handed to the
decoder: the shared model is never mutated, so one call's override cannot leak into the
next (or into another thread using the same predictor).

Backends: on the CPU the network runs through ONNX Runtime when it is installed (the
benchmark measures it 2-3x faster than eager PyTorch there); on CUDA, PyTorch. Decoding is
PyTorch for both, so they share one post-processing chain.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from inference.onnx_backend import OnnxRunner, onnx_available
from inference.preprocess import (
    Letterboxed,
    as_rgb_uint8,
    letterbox,
    to_tensor,
    unletterbox_boxes,
)
from inference.yolo import YoloConfig, YoloDetector, decode, decode_dense, load_detector

__all__ = ["Detections", "Predictor", "Timings"]


@dataclass(frozen=True)
class Detections:
    """Detections of one image, in that image's original pixels.

    Attributes:
        boxes: ``float32 (D, 4)`` xyxy pixels, clipped to ``[0, W] x [0, H]``.
        scores: ``float32 (D,)`` class-specific confidences in ``[0, 1]``, decreasing
            within a class.
        labels: ``int64 (D,)`` class indices.
        class_names: ``D`` names, ``class_names[i]`` is the name of ``labels[i]``.
        inference_ms: this image's share of its batch's wall time (preprocess, forward and
            decode divided by the batch size), milliseconds.
    """

    boxes: NDArray[np.float32]
    scores: NDArray[np.float32]
    labels: NDArray[np.int64]
    class_names: tuple[str, ...]
    inference_ms: float

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


@dataclass(frozen=True)
class Timings:
    """Wall-clock milliseconds of one :meth:`Predictor.predict` call, summed over batches.

    Attributes:
        preprocess_ms: RGB conversion, letterbox and tensor stacking (plus the copy to the
            device).
        forward_ms: the network (``raw_outputs``).
        decode_ms: decoding, score threshold, top-k, NMS and the mapping back to original
            pixels.
        images: images in the call.
    """

    preprocess_ms: float = 0.0
    forward_ms: float = 0.0
    decode_ms: float = 0.0
    images: int = 0

    @property
    def total_ms(self) -> float:
        """Sum of the three stages."""
        return self.preprocess_ms + self.forward_ms + self.decode_ms

    @property
    def decode_share(self) -> float:
        """Fraction of the total spent in decode + NMS (0 when nothing ran)."""
        return self.decode_ms / self.total_ms if self.total_ms > 0 else 0.0


class Predictor:
    """A loaded detector ready to serve.

    Args:
        model: a :class:`YoloDetector`; it is put in eval mode and must already be on its
            device (``load_detector`` does both).

    Attributes:
        model, config: the detector and its (shared, never mutated) config.
        device: where the model runs.
        timings: :class:`Timings` of the latest :meth:`predict` call.
    """

    def __init__(self, model: YoloDetector, backend: str = "auto") -> None:
        self.model = model.eval()
        self.config: YoloConfig = model.config
        self.device = next(model.parameters()).device
        self.timings = Timings()
        self.backend = _choose_backend(backend, self.device)
        self._onnx = OnnxRunner(model) if self.backend == "onnx" else None

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device | None = None,
        expected_sha256: str | None = None,
        backend: str = "auto",
    ) -> Predictor:
        """Load a checkpoint written by :func:`inference.yolo.save_detector`.

        Args:
            device: "cpu", "cuda", ... or ``None`` for :func:`inference.runtime.pick_device`.
            expected_sha256: refuse the file unless its digest matches.
            backend: "torch", "onnx" (CPU only) or "auto" (ONNX on the CPU when available).

        Raises:
            inference.runtime.CheckpointError: unreadable or incompatible file.
        """
        model = load_detector(path, device=device, expected_sha256=expected_sha256)
        return cls(model, backend=backend)

    @property
    def class_names(self) -> list[str]:
        """The model's C class names, indexed by label."""
        return list(self.config.class_names)

    def _decode_config(
        self, score_threshold: float | None, iou_threshold: float | None
    ) -> YoloConfig:
        """A per-call copy of the config with the overrides; the shared one stays as is."""
        cfg = self.config
        score = cfg.score_threshold if score_threshold is None else float(score_threshold)
        iou = cfg.iou_threshold if iou_threshold is None else float(iou_threshold)
        if (score, iou) == (cfg.score_threshold, cfg.iou_threshold):
            return cfg
        return dataclasses.replace(cfg, score_threshold=score, iou_threshold=iou)

    def predict(
        self,
        images: Sequence[NDArray[np.generic]],
        *,
        score_threshold: float | None = None,
        iou_threshold: float | None = None,
        batch_size: int = 8,
    ) -> list[Detections]:
        """Detect objects in each image.

        Args:
            images: RGB ``uint8 (H, W, 3)`` arrays of any sizes (grey, RGBA and 16-bit
                arrays are converted as :func:`inference.preprocess.as_rgb_uint8` does).
            score_threshold: minimum score for this call only (default: the model's).
            iou_threshold: NMS IoU for this call only (default: the model's).
            batch_size: images per forward pass.

        Returns:
            One :class:`Detections` per image, in order. :attr:`timings` is updated.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        config = self._decode_config(score_threshold, iou_threshold)
        results: list[Detections] = []
        totals = np.zeros(3)  # preprocess, forward, decode in seconds
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            dets, seconds = self._predict_batch(chunk, config)
            totals += seconds
            share_ms = 1000.0 * float(seconds.sum()) / len(chunk)
            results.extend(dataclasses.replace(d, inference_ms=share_ms) for d in dets)
        ms = (1000.0 * totals).tolist()
        self.timings = Timings(ms[0], ms[1], ms[2], images=len(images))
        return results

    def _predict_batch(
        self, images: Sequence[NDArray[np.generic]], config: YoloConfig
    ) -> tuple[list[Detections], NDArray[np.float64]]:
        """One forward pass; returns the detections and the three stage times (s)."""
        t0 = time.perf_counter()
        rgb = [as_rgb_uint8(image) for image in images]
        boxed = [letterbox(image, config.img_size) for image in rgb]
        batch = to_tensor([b.image for b in boxed]).to(self.device)
        t1 = time.perf_counter()
        with torch.inference_mode():
            if self._onnx is not None:  # the graph already decodes boxes and scores
                dense = self._onnx(batch)
                t2 = time.perf_counter()
                decoded = decode_dense(*dense, config, config.img_size)
            else:
                raw = self.model.raw_outputs(batch)
                if self.device.type == "cuda":  # kernels are async: time work, not launch
                    torch.cuda.synchronize(self.device)
                t2 = time.perf_counter()
                decoded = decode(raw, config, config.img_size)
        sizes = [(image.shape[1], image.shape[0]) for image in rgb]
        dets = [self._to_original(d, b, s) for d, b, s in zip(decoded, boxed, sizes, strict=True)]
        t3 = time.perf_counter()
        return dets, np.array([t1 - t0, t2 - t1, t3 - t2])

    def _to_original(
        self, det: dict[str, torch.Tensor], boxed: Letterboxed, size: tuple[int, int]
    ) -> Detections:
        """Input-pixel detections of one image -> :class:`Detections` in original pixels."""
        boxes = unletterbox_boxes(
            det["boxes"].cpu().numpy(), boxed.scale, boxed.pad_x, boxed.pad_y, *size
        )
        labels = det["labels"].cpu().numpy().astype(np.int64)
        names = self.config.class_names
        return Detections(
            boxes=boxes,
            scores=det["scores"].cpu().numpy().astype(np.float32),
            labels=labels,
            class_names=tuple(names[int(i)] for i in labels),
            inference_ms=0.0,
        )


def _choose_backend(requested: str, device: torch.device) -> str:
    """Resolve "auto" and refuse combinations that cannot run."""
    if requested not in ("auto", "torch", "onnx"):
        raise ValueError(f"backend must be auto, torch or onnx, got {requested!r}")
    if requested == "onnx" and (device.type != "cpu" or not onnx_available()):
        raise ValueError("the onnx backend needs onnxruntime and a model on the CPU")
    if requested == "auto":
        return "onnx" if device.type == "cpu" and onnx_available() else "torch"
    return requested
