"""Detector training pipeline: samples -> augmented, letterboxed batches -> fit -> metrics.

Pure numeric code (no Django): ``training.samples.split_samples`` turns a dataset's rows
into :class:`DetectionSample` s and ``training.services.train_detector_version`` (what
``manage.py train_detector`` runs) calls :func:`train_detector`; progress goes out through
the ``on_progress`` callback of :func:`training.fit.fit`.

Coordinates: samples carry boxes in ORIGINAL image pixels (``xyxy`` float32). Augmentation
works on the original image, then :func:`inference.preprocess.letterbox` (the same function
serving uses) brings image and boxes to the model's square input. Evaluation maps
predictions back to original pixels before comparing them with the ground truth, so the
reported mAP is the one a user of the predictor sees.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn
from torch.utils.data import Dataset

from inference.calibration import ServingScores, operating_point
from inference.metrics import DetectionMetrics, evaluate_detections
from inference.preprocess import Letterboxed, letterbox, load_rgb, to_tensor, unletterbox_boxes
from inference.yolo import YoloConfig, YoloDetector, decode
from training.augment import AugmentConfig, DetectionAugment
from training.fit import (
    ADAM_COSINE,
    EpochRecord,
    FitConfig,
    GeneratorState,
    Progress,
    StopReason,
    fit,
    load_training_state,
)
from training.transfer import default_frozen_blocks, freeze_blocks, load_backbone_file, load_into

__all__ = [
    "DEFAULT_AUGMENT_CONFIG",
    "DEFAULT_DETECTOR_CONFIG",
    "DEFAULT_FIT_CONFIG",
    "EVAL_SCORE_THRESHOLD",
    "FACE_AUGMENT_CONFIG",
    "FACE_DETECTOR_CONFIG",
    "DetectionDataset",
    "DetectionSample",
    "DetectorTrainingResult",
    "collate",
    "evaluate_detector",
    "report_at_threshold",
    "samples_from_records",
    "train_detector",
]

Target = dict[str, Tensor]
Batch = tuple[Tensor, list[Target]]

# Chosen on BCCD (authors' splits, shared 2-core CPU); the runs are in
# training/experiments/RESULTS.md. The machine was heavily oversubscribed during the runs, so
# wall-clock results were noisy and the choices below rest on mAP reached per epoch too.
# * 416 px, strides (32, 16), 3 predictors with priors (~1.07 GFLOPs): without priors val
#   mAP@0.5 after 3 epochs was 0.50 vs 0.55 with them, and Platelets AP stayed at 0.
# * num_classes / class_names are filled in by train_detector from the data.
DEFAULT_DETECTOR_CONFIG = YoloConfig(img_size=416, strides=(32, 16), boxes_per_cell=3)
# A face detector adds the stride-8 scale: most faces in crowd photos are 10-40 px (the
# shipped face detector's architecture, demo/models/README.md).
FACE_DETECTOR_CONFIG = YoloConfig(img_size=416, strides=(32, 16, 8), boxes_per_cell=3)

# * Adam at 3e-3: ahead of 1e-3 at every epoch compared (val mAP@0.5 0.64 vs 0.55 after 3
#   epochs, 0.67 vs 0.62 after 5) and stable (no divergence), so short budgets gain most.
# * Batch 16: batch 8 learns more per epoch (twice the updates: val 0.60 vs 0.40 after 2
#   epochs) but its epochs cost more wall time on CPU and after ~5 minutes it ended lower
#   (0.61 vs 0.65). Inconclusive under the load; 16 also gives steadier batch-norm statistics.
# * Cosine decay over max_epochs, FINISHED: run G (14 epochs, rate decayed to 1e-5) reached
#   test mAP@0.5 0.817 in 9.8 minutes, while runs cut by the clock before the rate decayed
#   stayed at 0.60-0.67. 30 epochs take ~8 minutes on an idle 2-core CPU (~15 s each) and
#   still fit the 20-minute budget at 40 s per epoch under load; the budget is the backstop.
# * Early stopping on val mAP@0.5 with patience 20: mAP on 87 images is noisy.
DEFAULT_FIT_CONFIG = dataclasses.replace(
    ADAM_COSINE, batch_size=16, max_epochs=30, max_minutes=20.0, patience=20, metric="map50"
)

# Detections kept when evaluating: 0.001 as COCO-style mAP does (a higher threshold cuts the
# tail of the PR curve and under-reports AP). It is also the floor the score calibration is
# fitted above, so serving never returns a box scoring below it.
EVAL_SCORE_THRESHOLD = 0.001

# The augment module's defaults: crop, mirror and colour shift, no grayscale (BCCD is colour).
DEFAULT_AUGMENT_CONFIG = AugmentConfig()
# For face detectors meant to work on portraits as well as crowds: zoom onto one face so a
# face in a crowd becomes portrait-sized, and strong light changes (gamma, contrast, light
# from one side) with a quarter of the images grey, so studio and side-lit photos work.
# Occlusion (a band across one face) stays off: trained with occlude_p=0.3, the same run
# scored val AP@0.5 0.735 against 0.728 and found every frontal val portrait either way,
# but found fewer test portraits (frontal 94.2% against 97.1%, all 79.1% against 82.5%);
# a run asks for it with augment "occlude".
FACE_AUGMENT_CONFIG = AugmentConfig(
    zoom_p=0.35,
    gamma_p=0.4,
    contrast_p=0.3,
    shade_p=0.4,
    grayscale_p=0.25,
)


@dataclass(frozen=True, eq=False)
class DetectionSample:
    """One annotated image.

    Attributes:
        image_path: the image file (any format :func:`inference.preprocess.load_rgb` reads).
        boxes: ``float32 (N, 4)`` xyxy pixels of the original image.
        labels: ``int64 (N,)`` class indices.
    """

    image_path: Path
    boxes: NDArray[np.float32]
    labels: NDArray[np.int64]


class _Record(Protocol):
    """What :func:`samples_from_records` needs of a record (e.g. a VOC record)."""

    @property
    def image_path(self) -> Path: ...
    @property
    def boxes(self) -> NDArray[np.float32]: ...
    @property
    def labels(self) -> NDArray[np.int64]: ...


def samples_from_records(records: Iterable[_Record]) -> list[DetectionSample]:
    """Records with ``image_path``, ``boxes`` and ``labels`` (e.g. ``VocRecord``) -> samples."""
    return [
        DetectionSample(
            Path(r.image_path),
            np.asarray(r.boxes, np.float32).reshape(-1, 4),
            np.asarray(r.labels, np.int64).reshape(-1),
        )
        for r in records
    ]


class DetectionDataset(Dataset[tuple[Tensor, Target]]):
    """Samples as model inputs: ``(Tensor[3, S, S] float 0..1, {"boxes", "labels"})``.

    Decoded originals are cached in memory on first use (BCCD: 364 x 640x480x3 bytes,
    ~335 MB), so later epochs never decode a JPEG again. Without augmentation the
    letterboxed image is cached instead, which is all evaluation needs. Use it with
    ``num_workers=0`` (the default): worker processes would each fill their own cache.

    Args:
        samples: the images and their boxes in original pixels.
        img_size: side of the square model input, pixels.
        augment: applied to the original image before letterboxing; ``None`` for none.
    """

    def __init__(
        self,
        samples: Sequence[DetectionSample],
        img_size: int,
        augment: DetectionAugment | None = None,
    ) -> None:
        self.samples = list(samples)
        self.img_size = img_size
        self.augment = augment
        self._originals: dict[int, NDArray[np.uint8]] = {}
        self._letterboxed: dict[int, Letterboxed] = {}
        self._sizes: dict[int, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def original(self, index: int) -> NDArray[np.uint8]:
        """The decoded original image ``uint8 (H, W, 3)`` (cached; do not modify it)."""
        if index not in self._originals:
            self._originals[index] = load_rgb(self.samples[index].image_path)
        return self._originals[index]

    def original_size(self, index: int) -> tuple[int, int]:
        """``(width, height)`` of sample ``index``'s original image in pixels."""
        if index not in self._sizes:
            height, width = self.original(index).shape[:2]
            self._sizes[index] = (width, height)
        return self._sizes[index]

    def letterboxed(self, index: int) -> tuple[Letterboxed, NDArray[np.int64]]:
        """Letterboxed image and boxes of sample ``index`` (augmented when configured), and
        the labels of the boxes that survived augmentation."""
        sample = self.samples[index]
        if self.augment is None:
            if index not in self._letterboxed:
                image = load_rgb(sample.image_path)  # not kept: the letterboxed one is enough
                self._sizes[index] = (image.shape[1], image.shape[0])
                self._letterboxed[index] = letterbox(image, self.img_size, sample.boxes)
            return self._letterboxed[index], sample.labels
        image, boxes, labels = self.augment(self.original(index), sample.boxes, sample.labels)
        return letterbox(image, self.img_size, boxes), labels

    def __getitem__(self, index: int) -> tuple[Tensor, Target]:
        """``(Tensor[3, S, S] float32 0..1, {"boxes": float32[N, 4] xyxy input px,
        "labels": int64[N]})``."""
        boxed, labels = self.letterboxed(index)
        target = {
            "boxes": torch.from_numpy(np.array(boxed.boxes, np.float32)),
            "labels": torch.from_numpy(np.array(labels, np.int64)),
        }
        return to_tensor([boxed.image])[0], target


def collate(items: Sequence[tuple[Tensor, Target]]) -> Batch:
    """Stack images to ``Tensor[N, 3, S, S]``; targets stay a list (box counts differ)."""
    return torch.stack([image for image, _ in items]), [target for _, target in items]


# ----------------------------------------------------------------------------- evaluation
def predict_letterboxed(
    model: YoloDetector, images: Tensor, config: YoloConfig
) -> list[dict[str, Tensor]]:
    """Detections on a letterboxed batch, post-processed with ``config``'s thresholds.

    Decoding with an explicit config (not ``model.config``) lets callers lower the score
    threshold for mAP without mutating the model shared with other callers.

    Args:
        images (Tensor[N, 3, S, S]): float 0..1, on the model's device.

    Returns:
        Per image ``{"boxes": Tensor[D, 4] xyxy input px, "scores", "labels"}``.
    """
    raw = model.raw_outputs(images)
    return decode(raw, config, images.shape[-1])


def evaluate_detector(
    model: YoloDetector,
    samples: Sequence[DetectionSample] | DetectionDataset,
    img_size: int,
    *,
    batch_size: int = 16,
    score_threshold: float = EVAL_SCORE_THRESHOLD,
) -> DetectionMetrics:
    """Val/test metrics of ``model`` on ``samples``, boxes compared in original pixels.

    Args:
        samples: the ground truth, or a non-augmenting :class:`DetectionDataset` (its cache
            of letterboxed images is reused across epochs).
        img_size: input side used for inference, pixels.
        batch_size: images per forward pass.
        score_threshold: detections kept for the PR curves (see
            :data:`EVAL_SCORE_THRESHOLD`).

    Returns:
        :class:`DetectionMetrics` (precision/recall/F1 at the model's own raw score
        threshold; :func:`report_at_threshold` gives them at a working threshold), with
        every kept detection's outcome in ``matched``.
    """
    data: DetectionDataset
    if isinstance(samples, DetectionDataset) and (samples.img_size, samples.augment) == (
        img_size,
        None,
    ):
        data = samples  # reuse its cache of letterboxed images
    else:
        items = samples.samples if isinstance(samples, DetectionDataset) else list(samples)
        data = DetectionDataset(items, img_size)
    device = next(model.parameters()).device
    config = dataclasses.replace(model.config, score_threshold=score_threshold)
    preds: list[dict[str, NDArray[np.generic]]] = []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(data), batch_size):
                idx = range(start, min(start + batch_size, len(data)))
                boxed = [data.letterboxed(i)[0] for i in idx]
                images = to_tensor([b.image for b in boxed]).to(device)
                dets = predict_letterboxed(model, images, config)
                for det, b, i in zip(dets, boxed, idx, strict=True):
                    preds.append(_to_original(det, b, data.original_size(i)))
    finally:
        model.train(was_training)
    gts = [{"boxes": s.boxes, "labels": s.labels} for s in data.samples]
    return evaluate_detections(preds, gts, score_threshold=model.config.score_threshold)


def report_at_threshold(metrics: DetectionMetrics, serving: ServingScores) -> dict[str, Any]:
    """``metrics.to_dict()`` with precision, recall and F1 at ``serving``'s threshold.

    The detections' raw scores are mapped to ``serving``'s scale (calibrated when it has a
    calibration) and cut at its working threshold, overall (micro) and per class.

    Returns:
        JSON-ready; ``precision``, ``recall``, ``f1`` and ``score_threshold`` are those at
        the working threshold, with ``score_scale`` ("calibrated" / "raw"),
        ``threshold_rule``, ``raw_threshold_metrics`` (the same three at the model's own raw
        ``score_threshold``, as reported before) and ``per_class_at_threshold`` (class
        index -> :class:`inference.calibration.OperatingPoint` dict).
    """
    matched = metrics.matched
    scores = serving.confidences(matched.scores, matched.labels)
    hit, threshold = matched.true_positive, serving.threshold
    point = operating_point(scores, hit, matched.total_gt, threshold)
    per_class = {
        str(c): operating_point(
            scores[matched.labels == c], hit[matched.labels == c], n_gt, threshold
        ).to_dict()
        for c, n_gt in sorted(matched.n_gt.items())
        if n_gt > 0
    }
    return {
        **metrics.to_dict(),
        "precision": point.precision,
        "recall": point.recall,
        "f1": point.f1,
        "score_threshold": threshold,
        "score_scale": serving.scale,
        "threshold_rule": serving.rule,
        "raw_threshold_metrics": {
            "score_threshold": metrics.score_threshold,
            "precision": metrics.precision,
            "recall": metrics.recall,
            "f1": metrics.f1,
        },
        "per_class_at_threshold": per_class,
    }


def _to_original(
    det: dict[str, Tensor], boxed: Letterboxed, size: tuple[int, int]
) -> dict[str, NDArray[np.generic]]:
    """One image's detections from input pixels to original pixels (size = (w, h))."""
    boxes = unletterbox_boxes(
        det["boxes"].cpu().numpy(), boxed.scale, boxed.pad_x, boxed.pad_y, *size
    )
    return {
        "boxes": boxes,
        "scores": det["scores"].cpu().numpy(),
        "labels": det["labels"].cpu().numpy(),
    }


# ----------------------------------------------------------------------------- training
@dataclass
class DetectorTrainingResult:
    """What :func:`train_detector` produced.

    Attributes:
        model: the detector with the BEST epoch's weights, in eval mode, on the CPU/device
            it was trained on.
        metrics: validation :class:`DetectionMetrics` of those weights.
        history: one :class:`training.fit.EpochRecord` per epoch (losses, val mAP, seconds).
        best_epoch: 0-based index of the reported epoch.
        elapsed_seconds: wall-clock seconds of the whole call (fit plus final evaluation).
        stopped_reason: "early_stopping", "max_epochs", "time_budget" or "cancelled".
        model_config, fit_config, augment_config: the configurations actually used
            (augment ``None``: no augmentation).
    """

    model: YoloDetector
    metrics: DetectionMetrics
    history: list[EpochRecord]
    best_epoch: int
    elapsed_seconds: float
    stopped_reason: StopReason
    model_config: YoloConfig
    fit_config: FitConfig
    augment_config: AugmentConfig | None
    transfer: dict[str, Any] | None = None
    resumed_after_epoch: int | None = None


@dataclass(frozen=True)
class TransferStart:
    """Where a detector starts instead of random weights, and what stays frozen.

    Attributes:
        state: a state dict of a detector of the same architecture (one of our versions);
            loaded by name and shape.
        backbone_file: a torchvision backbone file the user brought (for the resnet18 and
            mobilenet_v3_small backbones).
        freeze: the first N blocks stay frozen; None: the notes' rule of thumb by the number
            of training images (:func:`training.transfer.default_frozen_blocks`).
    """

    state: Mapping[str, Tensor] | None = None
    backbone_file: Path | None = None
    freeze: int | None = None

    def apply(self, model: YoloDetector, images: int) -> dict[str, Any]:
        """Load the weights, freeze the blocks; return the report for the run."""
        report: dict[str, Any] = {}
        if self.state is not None:
            report["weights"] = load_into(model, self.state, reinit_mismatched=True).to_dict()
        if self.backbone_file is not None:
            report["backbone"] = load_backbone_file(model, self.backbone_file).to_dict()
        n = self.freeze if self.freeze is not None else default_frozen_blocks(model, images)
        report["frozen"] = freeze_blocks(model, n)
        return report


def _batches(data: DetectionDataset, batch_size: int, seed: int) -> Iterator[Batch]:
    """One epoch of shuffled mini-batches; the order depends only on ``seed``."""
    order = np.random.default_rng(seed).permutation(len(data))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        # A batch of one gives batch norm a zero variance estimate; skip that remainder.
        if len(idx) < 2 and len(order) > 1:
            continue
        yield collate([data[int(i)] for i in idx])


def _model_config(base: YoloConfig | None, class_names: Sequence[str]) -> YoloConfig:
    """``base`` (or the default) with the data's classes filled in."""
    base = base or DEFAULT_DETECTOR_CONFIG
    if base.num_classes == len(class_names) and list(base.class_names) == list(class_names):
        return base
    return dataclasses.replace(base, num_classes=len(class_names), class_names=list(class_names))


def train_detector(
    train_samples: Sequence[DetectionSample],
    val_samples: Sequence[DetectionSample],
    class_names: Sequence[str],
    *,
    model_config: YoloConfig | None = None,
    fit_config: FitConfig | None = None,
    augment_config: AugmentConfig | None = DEFAULT_AUGMENT_CONFIG,
    on_progress: Callable[[Progress], None] | None = None,
    seed: int = 0,
    device: torch.device | None = None,
    start: TransferStart | None = None,
    checkpoint_path: Path | None = None,
) -> DetectorTrainingResult:
    """Train a :class:`YoloDetector` from scratch, early-stopping on val mAP@0.5.

    Args:
        train_samples, val_samples: images with boxes in original pixels.
        class_names: C names; sample labels index into them.
        model_config: architecture and post-processing (``num_classes``/``class_names`` are
            set from ``class_names``); default :data:`DEFAULT_DETECTOR_CONFIG`.
        fit_config: optimiser, batch size, schedule, budget; default
            :data:`DEFAULT_FIT_CONFIG`. Its metric is forced to ``map50`` / ``max``.
        augment_config: augmentation of training images; ``None`` disables it.
        on_progress: forwarded to :func:`training.fit.fit` (may raise ``FitCancelled``).
        seed: seeds the initialisation, the batch order and the augmentation.
        device: where to train (default CPU; the caller picks it with ``pick_device``).
        start: transfer learning: weights to start from (a version's state dict or a
            backbone file) and how many first blocks to freeze.
        checkpoint_path: the whole training state is saved there after every epoch; if a
            state is already there (the worker that ran this died), training resumes from it.

    Returns:
        :class:`DetectorTrainingResult` with the best epoch's weights loaded.
    """
    began = time.monotonic()
    cfg = _model_config(model_config, class_names)
    fcfg = dataclasses.replace(
        fit_config or DEFAULT_FIT_CONFIG, metric="map50", mode="max", seed=seed
    )
    device = device or torch.device("cpu")
    torch.manual_seed(seed)  # the initialisation; fit seeds its own randomness with fcfg.seed
    model = YoloDetector(cfg)
    transfer = start.apply(model, len(train_samples)) if start else None
    model = model.to(device)
    rng = np.random.default_rng(seed)
    augment = None if augment_config is None else DetectionAugment(augment_config, rng)
    train_data = DetectionDataset(train_samples, cfg.img_size, augment)
    val_data = DetectionDataset(val_samples, cfg.img_size)

    def step(m: nn.Module, batch: Batch) -> dict[str, Tensor]:
        images, targets = batch
        out = m(images.to(device), [{k: v.to(device) for k, v in t.items()} for t in targets])
        assert isinstance(out, dict)
        return out

    def evaluate(m: nn.Module) -> dict[str, float]:
        assert isinstance(m, YoloDetector)
        metrics = evaluate_detector(m, val_data, cfg.img_size)
        return {"map50": metrics.map50, "map50_95": metrics.map50_95}

    resume = None
    if checkpoint_path is not None and checkpoint_path.exists():
        resume = load_training_state(checkpoint_path)
    result = fit(
        model,
        lambda epoch: _batches(train_data, fcfg.batch_size, seed * 100_003 + epoch),
        step,
        evaluate,
        fcfg,
        on_progress,
        checkpoint_path=checkpoint_path,
        resume_from=resume,
        stateful={"augment": GeneratorState(rng)},
    )
    if result.best_state is not None:
        model.load_state_dict(result.best_state)
    model.eval()
    metrics = evaluate_detector(model, val_data, cfg.img_size)
    return DetectorTrainingResult(
        model=model,
        metrics=metrics,
        history=result.history,
        best_epoch=result.best_epoch,
        elapsed_seconds=time.monotonic() - began,
        stopped_reason=result.stopped_reason,
        model_config=cfg,
        fit_config=fcfg,
        augment_config=augment_config,
        transfer=transfer,
        resumed_after_epoch=result.resumed_after_epoch,
    )
