"""Train and evaluate the Siamese face verifier on people held out from training.

Pure numeric code (no Django). The pipeline, top to bottom:

1. ``training.formats.folders.load_identity_folder`` lists ``root/<person>/<image>`` as
   ``FaceSample`` s (or ``training.samples.face_samples`` reads them from a dataset).
2. :class:`_FaceCache` decodes every image once, keeps the exact evaluation crop
   (``crop_face`` + the model's input size) and a small context window for augmentation.
3. :func:`train_verifier` (configured by a :class:`VerifierTrainConfig`) draws each
   epoch's faces (groups of people for in-batch pairs, or independent pairs from
   ``inference.pairs.sample_pairs``), augments every face with :func:`augment_face`
   *before* ``crop_face`` / ``to_tensor`` (so training crops are made by the same code as
   serving crops), and runs ``training.fit.fit`` with the contrastive loss, early-stopping
   on the validation EER.
4. :func:`evaluate_verifier` measures a model on every same-person pair of some people plus
   as many different-person pairs (``inference.pairs.all_eval_pairs``).
5. ``training.crossval.cross_validate`` repeats 3-4 over people-disjoint folds:
   verification is always measured on people the network never saw.

Label convention (the notes'): ``y = 0`` same person, ``y = 1`` different people.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from inference.face_backbones import BackboneSpec, BackboneVerifier, FaceBackbone
from inference.faces import FACE_MARGIN, UInt8Array, crop_face, expand_box, to_gray, to_tensor
from inference.pairs import PairArrays, all_eval_pairs, sample_pairs
from inference.preprocess import load_rgb
from inference.siamese import (
    AnyVerifier,
    EmbeddingConfig,
    EmbeddingEnsemble,
    EmbeddingNet,
    SiameseNet,
    contrastive_loss,
    euclidean_distance,
)
from inference.verification_metrics import Calibration, calibrate
from training.fit import ADAM_COSINE, EpochRecord, FitConfig, Progress, StopReason, fit
from training.formats.folders import FaceSample

Box = tuple[float, float, float, float]
PairBatch = tuple[Tensor, Tensor, Tensor]  # x1 (B, 1, S, S), x2 (B, 1, S, S), y (B,)

# Extra context kept around the crop for augmentation: shifts and zoom-outs then show real
# pixels instead of being clipped at the cache's edge.
_CONTEXT_MARGIN = 0.35
# The cached context is shrunk when its face region is larger than this many model input
# sizes: a 1000 px face from a phone photo would otherwise cost 1 MB per image for detail
# the model's small crop cannot use. Evaluation crops are cut from the full image, never from this.
_MAX_CONTEXT_ZOOM = 3.0

# Chosen by ORL experiments (rows in training/experiments/VERIFIER_RESULTS.md; 5
# people-disjoint folds, 26 train / 6 val / 8 test people each, one CPU thread, a busy box).
# The decisive change was the sampler: "in-batch pairs" (16 people x 4 faces per batch, every
# pair of the batch) reached 5-fold EER 11.3% in ~15 s per fold where 64 independent pairs
# per step needed 30 s for 16.5%; each face is embedded once and serves in ~60 pairs.
# Then, on the in-batch sampler (each a 5-fold mean; std over folds ~2 points, so only
# differences of a few points are real):
# - hard negatives (the closest different-person pairs, as many as positives) + mirror
#   averaging at inference: EER 10.7%, TAR@FAR=1% 55.7%; margin 1.4 (different people at
#   least ~90 degrees apart on the unit sphere) instead of 1: 10.4%, 55.7%;
# - every negative of the batch weighted as much as the positives: worse (fold EERs 14-18%);
# - flatten pooling (keeps the layout): 15.6% vs 11.3% for average pooling at 1 min/fold;
# - 48 px input, wider nets (16..128), 8 people x 8 faces, 24 people, weight decay 5e-3, lr
#   1e-3, and adding 1,783 unlabelled face_mask faces as one-face "people": no better, and
#   the longer runs were worse: validation EER keeps improving while unseen people get
#   worse (26 people are easy to memorise), so patience 15 epochs of 16 batches picks an
#   early epoch (typically 5-20) and the cosine schedule is set for 40.
DEFAULT_VERIFIER_FIT_CONFIG = dataclasses.replace(
    ADAM_COSINE,
    weight_decay=5e-4,
    batch_size=64,
    max_epochs=40,
    max_minutes=6.0,
    patience=15,
    metric="eer",
    mode="min",
)
# For the older independent-pairs sampler (sampler="pairs"): 16 steps of 64 pairs.
DEFAULT_PAIRS_PER_EPOCH = 1024
# 32 px, four stages, global average pooling, 64 dimensions, no dropout, mirror averaging,
# and 2-pixel shifted views at inference (same training; 4 of 5 folds compared: TAR@FAR=1%
# 66% vs 58%, EER unchanged), 10 views per face, about 1 ms per face on one core.
# Larger inputs and nets cost more per step and did not generalise better to new people
# within CPU minutes (above). The config is saved with each checkpoint, so serving crops at
# this size automatically.
DEFAULT_VERIFIER_EMBEDDING_CONFIG = EmbeddingConfig(
    input_size=32,
    widths=(8, 16, 32, 64),
    embedding_dim=64,
    dropout=0.0,
    flip_average=True,
    tta_shift=2,
)
DEFAULT_VERIFIER_MARGIN = 1.4
# Three nets from different initialisations, averaged (EmbeddingEnsemble): on 4 folds with
# 1 minute per member under load, the ensemble's EER was 9.6% against 12.5% for its
# average member and 11.4% for its best; TAR@FAR=1% 65% vs 56%. The budget is shared.
DEFAULT_VERIFIER_MEMBERS = 3


# ----------------------------------------------------------------------------- augmentation
@dataclass(frozen=True)
class FaceAugmentConfig:
    """Ranges for :func:`augment_face`; all draws are uniform.

    Attributes:
        flip_p: probability of a horizontal mirror (faces are near left-right symmetric; a
            vertical flip is not a face any camera takes, so there is none).
        max_shift: the crop window's centre moves by up to this fraction of its side.
        scale_range: the crop window's side is multiplied by a factor in this range (< 1
            zooms in, > 1 zooms out).
        brightness: added to pixel values in [0, 1], up to +/- this.
        contrast: pixel values are stretched around mid-grey by a factor in
            ``[1 - contrast, 1 + contrast]``.
        gamma: ``v ** g`` with ``log g`` in ``[-log(1 + gamma), log(1 + gamma)]``. ``to_tensor``
            standardises each crop, which undoes most of a linear brightness/contrast change
            (only clipping survives); a gamma curve is non-linear and still changes what the
            net sees, like a different camera response or lighting.
        max_rotation: the image turns about the window's centre by up to this many degrees
            either way (a tilted head), edges repeated; 0 turns it off.
    """

    flip_p: float = 0.5
    max_shift: float = 0.06
    scale_range: tuple[float, float] = (0.85, 1.1)
    brightness: float = 0.1
    contrast: float = 0.2
    gamma: float = 0.3
    max_rotation: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_rotation <= 45.0:
            raise ValueError(f"max_rotation must be in [0, 45] degrees, got {self.max_rotation}")
        if not 0.0 <= self.flip_p <= 1.0:
            raise ValueError(f"flip_p must be in [0, 1], got {self.flip_p}")
        low, high = self.scale_range
        if not 0.0 < low <= high:
            raise ValueError(f"scale_range must be 0 < low <= high, got {self.scale_range}")
        if min(self.max_shift, self.brightness, self.gamma) < 0 or not 0 <= self.contrast < 1:
            raise ValueError(f"jitter ranges must be >= 0 (contrast < 1): {self}")


DEFAULT_FACE_AUGMENT = FaceAugmentConfig()


Sampler = Literal["batch", "pairs"]


@dataclass(frozen=True)
class VerifierTrainConfig:
    """Everything that shapes training a verifier; the command and the experiments override it.

    Attributes:
        embedding_config: the net's shape.
        fit_config: optimiser, schedule, budget (``training.fit.FitConfig``); its metric is
            forced to ``eer`` / ``min``. With several members ``max_minutes`` is shared.
        margin: contrastive margin ``m`` in embedding-distance units.
        sampler: ``"batch"``: each epoch is ``batches_per_epoch`` batches of
            ``people_per_batch`` people x ``faces_per_person`` augmented faces, and the loss
            runs over every same-person pair in the batch plus as many different-person
            pairs (:func:`in_batch_pairs`). ``"pairs"``: each epoch draws
            ``pairs_per_epoch`` independent pairs (half same-person) in mini-batches of
            ``fit_config.batch_size``.
        people_per_batch, faces_per_person, batches_per_epoch: the ``"batch"`` sampler.
        pairs_per_epoch: the ``"pairs"`` sampler.
        hard_negatives: ``"batch"``: the closest different-person pairs of the batch;
            ``"pairs"``: half of the negatives mined as the nearest other-person face under
            the embeddings at the start of each epoch.
        augment: augmentation ranges; ``None`` trains on the plain evaluation crops.
        members: independently initialised nets averaged into one verifier (1 = one net).
    """

    embedding_config: EmbeddingConfig = DEFAULT_VERIFIER_EMBEDDING_CONFIG
    fit_config: FitConfig = DEFAULT_VERIFIER_FIT_CONFIG
    margin: float = DEFAULT_VERIFIER_MARGIN
    sampler: Sampler = "batch"
    people_per_batch: int = 16
    faces_per_person: int = 4
    batches_per_epoch: int = 16
    pairs_per_epoch: int = DEFAULT_PAIRS_PER_EPOCH
    hard_negatives: bool = True
    augment: FaceAugmentConfig | None = DEFAULT_FACE_AUGMENT
    members: int = DEFAULT_VERIFIER_MEMBERS

    def __post_init__(self) -> None:
        if self.members < 1:
            raise ValueError(f"members must be >= 1, got {self.members}")
        if self.sampler not in ("batch", "pairs"):
            raise ValueError(f"sampler must be 'batch' or 'pairs', got {self.sampler!r}")


DEFAULT_VERIFIER_TRAIN_CONFIG = VerifierTrainConfig()


def _photometric_lut(rng: np.random.Generator, config: FaceAugmentConfig) -> UInt8Array:
    """A 256-entry grey-level table applying gamma, then contrast and brightness."""
    gamma = math.exp(rng.uniform(-1.0, 1.0) * math.log1p(config.gamma))
    contrast = 1.0 + rng.uniform(-config.contrast, config.contrast)
    brightness = rng.uniform(-config.brightness, config.brightness)
    v = np.linspace(0.0, 1.0, 256) ** gamma
    v = (v - 0.5) * contrast + 0.5 + brightness
    return np.asarray(np.clip(np.rint(v * 255.0), 0, 255), dtype=np.uint8)


def _jitter_region(
    region: Box, width: int, height: int, rng: np.random.Generator, config: FaceAugmentConfig
) -> Box:
    """Randomly shift and scale a crop window, clipped to the image."""
    x1, y1, x2, y2 = region
    w, h = x2 - x1, y2 - y1
    scale = rng.uniform(*config.scale_range)
    cx = (x1 + x2) / 2 + rng.uniform(-config.max_shift, config.max_shift) * w
    cy = (y1 + y2) / 2 + rng.uniform(-config.max_shift, config.max_shift) * h
    half_w, half_h = scale * w / 2, scale * h / 2
    nx1, ny1 = max(0.0, cx - half_w), max(0.0, cy - half_h)
    nx2, ny2 = min(float(width), cx + half_w), min(float(height), cy + half_h)
    if nx2 - nx1 < 1.0 or ny2 - ny1 < 1.0:  # shifted off the image: keep the original window
        return region
    return nx1, ny1, nx2, ny2


def augment_face(
    image: np.ndarray,
    region: Box | None,
    rng: np.random.Generator,
    config: FaceAugmentConfig = DEFAULT_FACE_AUGMENT,
) -> tuple[UInt8Array, Box]:
    """Randomly mirror, re-light and move the crop window of one face, before cropping.

    Feed the result to ``crop_face(image, region, margin=0.0, size=S)``: ``region`` is the
    final crop window (any face margin is already in it), so the crop is made by the same
    function serving uses.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` uint8 (see ``inference.faces.to_gray``).
        region: crop window ``(x1, y1, x2, y2)`` in pixels, or None for the whole image.
        rng: the only source of randomness: the same generator state gives the same output.
        config: the jitter ranges.

    Returns:
        ``(H, W)`` uint8 grey image (a new array) and the jittered window inside it.
    """
    grey = to_gray(image)
    height, width = grey.shape
    window: Box = region if region is not None else (0.0, 0.0, float(width), float(height))
    if rng.random() < config.flip_p:
        grey = grey[:, ::-1]
        window = (width - window[2], window[1], width - window[0], window[3])
    if config.max_rotation > 0:
        angle = rng.uniform(-config.max_rotation, config.max_rotation)
        centre = ((window[0] + window[2]) / 2, (window[1] + window[3]) / 2)
        matrix = cv2.getRotationMatrix2D(centre, angle, 1.0)
        grey = np.asarray(
            cv2.warpAffine(
                np.ascontiguousarray(grey), matrix, (width, height), borderMode=cv2.BORDER_REPLICATE
            ),
            dtype=np.uint8,
        )
    window = _jitter_region(window, width, height, rng, config)
    out = cv2.LUT(np.ascontiguousarray(grey), _photometric_lut(rng, config))
    return np.asarray(out, dtype=np.uint8), window


# ----------------------------------------------------------------------------- image cache
@dataclass(frozen=True)
class _CachedFace:
    context: UInt8Array  # (h, w) grey pixels around the face, for augmentation
    region: Box  # the evaluation crop window inside `context`


def _cache_face(sample: FaceSample, size: int) -> tuple[UInt8Array, _CachedFace]:
    """Decode one sample: its exact evaluation crop ``(S, S)`` and its augmentation context."""
    grey = to_gray(load_rgb(sample.image_path))  # the decoder serving uses (EXIF, 16-bit, ...)
    height, width = grey.shape
    crop = crop_face(grey, sample.box, margin=FACE_MARGIN, size=size)
    x1, y1, x2, y2 = expand_box(sample.box, width, height, margin=FACE_MARGIN)
    cx1, cy1, cx2, cy2 = expand_box(sample.box, width, height, margin=_CONTEXT_MARGIN)
    context = grey[cy1:cy2, cx1:cx2]
    region: Box = (x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1)
    zoom = _MAX_CONTEXT_ZOOM * size / max(x2 - x1, y2 - y1)
    if zoom < 1.0:
        new_size = (max(1, round(context.shape[1] * zoom)), max(1, round(context.shape[0] * zoom)))
        context = np.asarray(
            cv2.resize(context, new_size, interpolation=cv2.INTER_AREA), dtype=np.uint8
        )
        region = (region[0] * zoom, region[1] * zoom, region[2] * zoom, region[3] * zoom)
    return crop, _CachedFace(np.ascontiguousarray(context), region)


def _people_labels(samples: Sequence[FaceSample]) -> tuple[list[str], npt.NDArray[np.int64]]:
    """The sorted people and each sample's index among them ``(N,)``."""
    identities = sorted({s.identity for s in samples})
    index = {identity: i for i, identity in enumerate(identities)}
    return identities, np.array([index[s.identity] for s in samples], dtype=np.int64)


class _FaceCache:
    """Every sample decoded once: ``crops (N, S, S)`` uint8, contexts, integer labels.

    ORL (400 faces) takes about 4 MB of contexts and decodes in ~0.4 s; an epoch reads each
    face ~5 times (1024 pairs x 2 sides), so decoding per use would cost seconds per epoch.
    """

    def __init__(self, samples: Sequence[FaceSample], size: int) -> None:
        if not samples:
            raise ValueError("no face samples")
        self.size = size
        self.identities, self.labels = _people_labels(samples)
        decoded = [_cache_face(s, size) for s in samples]
        self.crops = np.stack([crop for crop, _ in decoded])  # (N, S, S) uint8
        self.faces = [face for _, face in decoded]

    def __len__(self) -> int:
        return len(self.faces)

    def inputs(
        self,
        indices: npt.NDArray[np.int64],
        rng: np.random.Generator,
        config: FaceAugmentConfig | None,
    ) -> Tensor:
        """``(B, 1, S, S)`` network input for the faces ``indices``, each freshly augmented.

        With ``config`` None: the plain evaluation crops (``rng`` is not drawn from).
        """
        if config is None:
            return to_tensor(self.crops[indices])
        crops = []
        for i in indices:
            face = self.faces[int(i)]
            image, window = augment_face(face.context, face.region, rng, config)
            crops.append(crop_face(image, window, margin=0.0, size=self.size))
        return to_tensor(crops)


class _FeatureCache:
    """A frozen backbone's features of every sample, computed once: the backbone never
    changes while its head trains, so each face costs one backbone pass (two with the
    mirror view that augmentation draws from) however many epochs follow.

    ``crops`` holds the plain features ``(N, D)`` float32: evaluation feeds them to the head
    as :class:`_FaceCache` feeds its crops to a net.
    """

    def __init__(
        self, samples: Sequence[FaceSample], backbone: FaceBackbone, *, mirrored: bool
    ) -> None:
        if not samples:
            raise ValueError("no face samples")
        self.identities, self.labels = _people_labels(samples)
        views = _backbone_views(samples, backbone, mirrored=mirrored)
        self.crops = np.stack([plain for plain, _ in views])  # (N, D)
        self.mirrored = np.stack([m for _, m in views if m is not None]) if mirrored else None

    def __len__(self) -> int:
        return len(self.labels)

    def inputs(
        self,
        indices: npt.NDArray[np.int64],
        rng: np.random.Generator,
        config: FaceAugmentConfig | None,
    ) -> Tensor:
        """``(B, D)`` features of ``indices``; with augmentation each face is its mirror
        image with probability ``config.flip_p``."""
        x = self.crops[indices]
        if config is not None and self.mirrored is not None:
            flip = rng.random(len(indices)) < config.flip_p
            x = np.where(flip[:, None], self.mirrored[indices], x)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


_Cache = _FaceCache | _FeatureCache
_ViewKey = tuple[str, str, Box | None]
_View = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None]
# Backbone features by (backbone, image, box): cross-validation folds and repeated trainings
# on one dataset embed each face once per process. Bounded: the oldest go first.
_VIEWS: collections.OrderedDict[_ViewKey, _View] = collections.OrderedDict()
_MAX_VIEWS = 50_000


def _backbone_views(
    samples: Sequence[FaceSample], backbone: FaceBackbone, *, mirrored: bool
) -> list[_View]:
    """``(features (D,), mirrored features (D,) or None)`` of each sample, memoised."""
    out: list[_View | None] = []
    todo: list[int] = []
    for i, sample in enumerate(samples):
        key = (repr(backbone.spec), str(sample.image_path), sample.box)
        view = _VIEWS.get(key)
        if view is None or (mirrored and view[1] is None):
            todo.append(i)
            out.append(None)
        else:
            _VIEWS.move_to_end(key)
            out.append(view)
    for start in range(0, len(todo), 64):
        part = todo[start : start + 64]
        chips = [backbone.make_crop(load_rgb(samples[i].image_path), samples[i].box) for i in part]
        plain = backbone.features(chips)
        flipped = (
            backbone.features([np.ascontiguousarray(c[:, ::-1]) for c in chips])
            if mirrored
            else None
        )
        for k, i in enumerate(part):
            view = (plain[k], None if flipped is None else flipped[k])
            key = (repr(backbone.spec), str(samples[i].image_path), samples[i].box)
            _VIEWS[key] = view
            out[i] = view
    while len(_VIEWS) > _MAX_VIEWS:
        _VIEWS.popitem(last=False)
    return [v for v in out if v is not None]


def _cache_for(
    net: AnyVerifier, samples: Sequence[FaceSample], *, mirrored: bool = False
) -> _Cache:
    if isinstance(net, BackboneVerifier):
        return _FeatureCache(samples, net.backbone, mirrored=mirrored)
    return _FaceCache(samples, net.input_size)


# ----------------------------------------------------------------------------- evaluation
def _embedding_net(model: SiameseNet | AnyVerifier) -> AnyVerifier:
    return model.embedding if isinstance(model, SiameseNet) else model


def _embed(net: AnyVerifier, crops: npt.NDArray[Any], batch_size: int = 256) -> Tensor:
    """``(N, d)`` embeddings of ``(N, S, S)`` uint8 crops (or of ``(N, D)`` float32 backbone
    features for a backbone verifier), in eval mode and without gradients.

    The caller's train/eval mode is restored, so this is safe in the middle of training.
    """
    was_training = net.training
    device = next(net.parameters()).device

    def tensor(part: npt.NDArray[Any]) -> Tensor:
        if part.dtype == np.uint8:
            return to_tensor(part)
        return torch.from_numpy(np.ascontiguousarray(part, dtype=np.float32))

    net.eval()
    try:
        with torch.no_grad():
            parts = [
                net(tensor(crops[i : i + batch_size]).to(device)).cpu()
                for i in range(0, len(crops), batch_size)
            ]
    finally:
        net.train(was_training)
    return torch.cat(parts)


def _pair_distances(embeddings: Tensor, pairs: PairArrays) -> npt.NDArray[np.float64]:
    """``(P,)`` Euclidean distances of the pairs ``(idx1, idx2, y)`` under ``embeddings``."""
    idx1, idx2, _ = pairs
    d = euclidean_distance(embeddings[torch.from_numpy(idx1)], embeddings[torch.from_numpy(idx2)])
    return d.double().numpy()


def _calibrate_cached(
    model: SiameseNet | AnyVerifier, cache: _Cache, pairs: PairArrays
) -> Calibration:
    distances = _pair_distances(_embed(_embedding_net(model), cache.crops), pairs)
    return calibrate(distances, pairs[2] == 0)


def evaluate_verifier(
    model: SiameseNet | AnyVerifier, samples: Sequence[FaceSample], *, rng_seed: int = 0
) -> Calibration:
    """Verification metrics on every same-person pair of ``samples`` plus as many others.

    Args:
        model: the trained verifier (its ``config.input_size`` sets the crop size).
        samples: faces of people the model was not trained on, >= 2 people, one with >= 2
            faces.
        rng_seed: seeds the choice of different-person pairs.

    Returns:
        ``inference.verification_metrics.Calibration`` (EER, AUC, TAR at FAR 1% / 0.1%, the
        thresholds as distances, ROC and histograms).
    """
    cache = _cache_for(_embedding_net(model), samples)
    pairs = all_eval_pairs(cache.labels, np.random.default_rng(rng_seed))
    return _calibrate_cached(model, cache, pairs)


# ----------------------------------------------------------------------------- training
@dataclass
class VerifierTrainingResult:
    """What :func:`train_verifier` produced.

    Attributes:
        model: the ``SiameseNet`` with the BEST epoch's weights, in eval mode.
        calibration: validation metrics and thresholds of those weights.
        history: one ``training.fit.EpochRecord`` per epoch (loss; val eer, auc, tar_at_far_1pct).
        best_epoch: 0-based index of the kept epoch; -1 when a backbone head kept the
            untrained identity (the backbone alone was best on the validation people).
        elapsed_seconds: wall-clock seconds of the whole call (decoding, fit, calibration).
        stopped_reason: "early_stopping", "max_epochs", "time_budget" or "cancelled".
        embedding_config, fit_config: the configurations actually used (per member).
        margin: the contrastive loss margin (distance units).
        members: nets in the model (an ``EmbeddingEnsemble`` when > 1).
        backbone: the pretrained backbone under the trained head, or None (our own net).
    """

    model: SiameseNet
    calibration: Calibration
    history: list[EpochRecord]
    best_epoch: int
    elapsed_seconds: float
    stopped_reason: StopReason
    embedding_config: EmbeddingConfig
    fit_config: FitConfig
    margin: float
    members: int = 1
    backbone: BackboneSpec | None = None


GroupBatch = tuple[Tensor, Tensor]  # x (B, 1, S, S), person labels (B,)


@dataclass
class _Batches:
    """Each epoch's training batches from the cache, by the configured sampler.

    "pairs": independent pairs, half of them same-person (``inference.pairs.sample_pairs``),
    both faces augmented. "batch": ``people_per_batch`` people x ``faces_per_person``
    augmented faces; every face of the batch is embedded once and *all* pairs inside the
    batch become candidates (:func:`in_batch_pairs`): a batch of 16 people x 4 faces costs
    64 forward passes and yields 96 same-person and 1,920 different-person pairs, where
    independent pairs cost two forward passes each. On a CPU that is the difference between
    seeing a few thousand pairs and a few hundred thousand in the same minutes.
    """

    cache: _Cache
    net: AnyVerifier  # mines hard negatives for the "pairs" sampler
    config: VerifierTrainConfig
    batch_size: int  # pairs per batch for the "pairs" sampler
    seed: int

    def epoch(self, epoch: int) -> Iterator[PairBatch] | Iterator[GroupBatch]:
        """The epoch's batches; everything random is seeded by ``(seed, epoch)``."""
        rng = np.random.default_rng([self.seed, epoch])
        return self._pairs(rng) if self.config.sampler == "pairs" else self._groups(rng)

    def _pairs(self, rng: np.random.Generator) -> Iterator[PairBatch]:
        config, augment = self.config, self.config.augment
        # Hard negatives are mined with the weights at the start of the epoch: re-embedding
        # every step would cost as much as training on the embedded faces.
        embeddings = _embed(self.net, self.cache.crops).numpy() if config.hard_negatives else None
        idx1, idx2, y = sample_pairs(
            self.cache.labels,
            config.pairs_per_epoch,
            rng,
            hard_negatives=config.hard_negatives,
            embeddings=embeddings,
        )
        for start in range(0, len(y), self.batch_size):
            sl = slice(start, start + self.batch_size)
            if len(y[sl]) < 2:  # one pair gives batch norm a degenerate batch; drop it
                continue
            x1 = self.cache.inputs(idx1[sl], rng, augment)
            yield x1, self.cache.inputs(idx2[sl], rng, augment), torch.from_numpy(y[sl])

    def _groups(self, rng: np.random.Generator) -> Iterator[GroupBatch]:
        config, labels = self.config, self.cache.labels
        by_person = [np.flatnonzero(labels == p) for p in range(len(self.cache.identities))]
        eligible = [i for i, members in enumerate(by_person) if len(members) >= 2]
        n_people = min(config.people_per_batch, len(eligible))
        for _ in range(config.batches_per_epoch):
            people = rng.choice(len(eligible), size=n_people, replace=False)
            chosen = []
            for p in people:
                members = by_person[eligible[int(p)]]
                k = min(config.faces_per_person, len(members))
                chosen.append(rng.choice(members, size=k, replace=False))
            indices = np.concatenate(chosen).astype(np.int64)
            x = self.cache.inputs(indices, rng, config.augment)
            yield x, torch.from_numpy(labels[indices])


def in_batch_pairs(
    labels: Tensor, distances: Tensor, *, hard_negatives: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """Balanced pairs from one batch: every same-person pair and as many different-person ones.

    Args:
        labels: ``(B,)`` person of each face.
        distances: ``(B, B)`` Euclidean distances between the batch's embeddings.
        hard_negatives: take the closest different-person pairs (the ones the net confuses
            most; pairs already past the margin add nothing to the loss) instead of a random
            draw among them.

    Returns:
        ``i (P,)``, ``j (P,)`` with ``i < j`` and ``y (P,)`` (0 same person, 1 different),
        the positives first.
    """
    n = len(labels)
    i, j = torch.triu_indices(n, n, offset=1, device=labels.device)
    same = labels[i] == labels[j]
    pos_i, pos_j = i[same], j[same]
    neg_i, neg_j = i[~same], j[~same]
    n_neg = min(len(pos_i), len(neg_i)) if len(pos_i) else min(len(neg_i), n)
    if hard_negatives:
        order = torch.argsort(distances[neg_i, neg_j].detach())[:n_neg]
    else:
        order = torch.randperm(len(neg_i), device=labels.device)[:n_neg]
    ii = torch.cat([pos_i, neg_i[order]])
    jj = torch.cat([pos_j, neg_j[order]])
    y = torch.cat(
        [torch.zeros(len(pos_i), dtype=torch.int64), torch.ones(len(order), dtype=torch.int64)]
    ).to(labels.device)
    return ii, jj, y


def pairwise_distances(h: Tensor) -> Tensor:
    """``(B, B)`` Euclidean distances between the rows of ``h (B, d)``; exactly 0 on the diagonal.

    Computed from differences (not the ``|a|^2 + |b|^2 - 2ab`` expansion) so small distances
    keep their precision and the gradient stays finite where two embeddings coincide.
    """
    diff = h[:, None, :] - h[None, :, :]  # (B, B, d)
    squared = diff.pow(2).sum(dim=2)
    tiny = torch.finfo(squared.dtype).tiny
    return torch.where(squared > tiny, squared.clamp_min(tiny).sqrt(), torch.zeros_like(squared))


def _check_people(train: Sequence[FaceSample], val: Sequence[FaceSample]) -> None:
    shared = {s.identity for s in train} & {s.identity for s in val}
    if shared:
        # Validation on people seen in training measures recognition, not verification,
        # and would early-stop on an optimistic EER.
        raise ValueError(f"train and val share people: {sorted(shared)[:5]}")


def train_verifier(
    train: Sequence[FaceSample],
    val: Sequence[FaceSample],
    config: VerifierTrainConfig = DEFAULT_VERIFIER_TRAIN_CONFIG,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    seed: int = 0,
    device: torch.device | None = None,
    backbone: FaceBackbone | None = None,
) -> VerifierTrainingResult:
    """Train a Siamese verifier with the contrastive loss: from scratch, or with a frozen
    pretrained ``backbone`` under our :class:`~inference.face_backbones.ResidualHead`.

    With ``config.members > 1`` it trains that many nets one after the other, each from its
    own initialisation (seed ``seed + 1000 * k``) for ``1 / members`` of the time budget,
    and returns them as one :class:`~inference.siamese.EmbeddingEnsemble`. Every member sees
    the same people and early-stops on the same validation people.

    Args:
        train, val: see :func:`_train_one` (people-disjoint).
        config: what to train and how (:class:`VerifierTrainConfig`).
        on_progress: forwarded to ``training.fit.fit`` (may raise ``FitCancelled``).
        seed: seeds everything random.
        device: where to train (default CPU).
        backbone: train only a head on this frozen backbone (``config.members`` and
            ``config.embedding_config`` are not read; one head).

    Returns:
        :class:`VerifierTrainingResult`: the (ensemble) model in eval mode, its validation
        calibration, the members' histories one after the other.
    """
    if backbone is not None:
        return _train_head(train, val, config, backbone, on_progress, seed, device)
    members = config.members
    if members == 1:
        return _train_one(train, val, config, on_progress=on_progress, seed=seed, device=device)
    start = time.monotonic()
    fcfg = config.fit_config
    share = dataclasses.replace(
        config,
        fit_config=dataclasses.replace(
            fcfg, max_minutes=None if fcfg.max_minutes is None else fcfg.max_minutes / members
        ),
    )
    results = [
        _train_one(train, val, share, on_progress=on_progress, seed=seed + 1000 * k, device=device)
        for k in range(members)
    ]
    nets = [r.model.embedding for r in results]
    model = SiameseNet(EmbeddingEnsemble([n for n in nets if isinstance(n, EmbeddingNet)])).eval()
    history = [record for r in results for record in r.history]
    last = results[-1]
    return dataclasses.replace(
        last,
        model=model,
        calibration=evaluate_verifier(model, val, rng_seed=seed),
        history=history,
        best_epoch=len(history) - len(last.history) + last.best_epoch,
        elapsed_seconds=time.monotonic() - start,
        fit_config=fcfg,
        members=members,
    )


def _train_one(
    train: Sequence[FaceSample],
    val: Sequence[FaceSample],
    config: VerifierTrainConfig,
    *,
    on_progress: Callable[[Progress], None] | None,
    seed: int,
    device: torch.device | None,
) -> VerifierTrainingResult:
    """Train one Siamese net from scratch with the contrastive loss.

    Each epoch's batches come from the configured sampler (:class:`_Batches`). After
    each epoch the validation EER over all same-person pairs of ``val`` (plus as many fixed
    different-person pairs) decides early stopping and the best weights.

    Args:
        train: faces of the training people (>= 2 people, some with >= 2 faces).
        val: faces of OTHER people (people-disjoint from ``train``), same requirement.
        config: its ``fit_config``'s metric is forced to ``eer`` / ``min`` and its seed to
            ``seed``; ``members`` is not read here.
        on_progress: forwarded to ``training.fit.fit`` (may raise ``FitCancelled``).
        seed: seeds the initialisation, the pairs, the augmentation and dropout.
        device: where to train (default CPU).

    Returns:
        :class:`VerifierTrainingResult` with the best epoch's weights loaded.
    """
    start = time.monotonic()
    _check_people(train, val)
    fcfg = dataclasses.replace(config.fit_config, metric="eer", mode="min", seed=seed)
    device = device or torch.device("cpu")
    torch.manual_seed(seed)  # the initialisation; fit seeds dropout itself from fcfg.seed
    model = SiameseNet(EmbeddingNet(config.embedding_config)).to(device)
    size = config.embedding_config.input_size
    train_cache, val_cache = _FaceCache(train, size), _FaceCache(val, size)
    # Fixed validation pairs, so epoch-to-epoch changes of the EER come from the weights only.
    val_pairs = all_eval_pairs(val_cache.labels, np.random.default_rng(seed))
    epochs = _Batches(train_cache, model.embedding, config, fcfg.batch_size, seed).epoch

    def evaluate(m: nn.Module) -> dict[str, float]:
        cal = _calibrate_cached(model, val_cache, val_pairs)
        return {"eer": cal.eer, "auc": cal.auc, "tar_at_far_1pct": cal.tar_at_far_1pct}

    step = _loss_step(config, model, device)
    result = fit(model, epochs, step, evaluate, fcfg, on_progress)
    if result.best_state is not None:
        model.load_state_dict(result.best_state)
    model.eval()
    return VerifierTrainingResult(
        model=model,
        calibration=_calibrate_cached(model, val_cache, val_pairs),
        history=result.history,
        best_epoch=result.best_epoch,
        elapsed_seconds=time.monotonic() - start,
        stopped_reason=result.stopped_reason,
        embedding_config=config.embedding_config,
        fit_config=fcfg,
        margin=config.margin,
    )


def _train_head(
    train: Sequence[FaceSample],
    val: Sequence[FaceSample],
    config: VerifierTrainConfig,
    backbone: FaceBackbone,
    on_progress: Callable[[Progress], None] | None,
    seed: int,
    device: torch.device | None,
) -> VerifierTrainingResult:
    """Train our head on a frozen backbone's features (the notes' transfer learning).

    The same Siamese loop as :func:`_train_one` (in-batch pairs, contrastive loss, early
    stopping on the validation people's EER), on features computed once. The head starts as
    the identity, and if no epoch beats the backbone's own embedding on the validation
    people the identity is kept: training on the user's people never leaves the verifier
    worse on people it has not seen than the backbone alone.
    """
    start = time.monotonic()
    _check_people(train, val)
    fcfg = dataclasses.replace(config.fit_config, metric="eer", mode="min", seed=seed)
    config = dataclasses.replace(config, sampler="batch")  # features: no per-pair re-embedding
    device = device or torch.device("cpu")
    torch.manual_seed(seed)
    verifier = BackboneVerifier(backbone)
    model = SiameseNet(verifier).to(device)
    train_cache = _FeatureCache(train, backbone, mirrored=config.augment is not None)
    val_cache = _FeatureCache(val, backbone, mirrored=False)
    val_pairs = all_eval_pairs(val_cache.labels, np.random.default_rng(seed))
    model.eval()
    identity = _calibrate_cached(model, val_cache, val_pairs)
    epochs = _Batches(train_cache, verifier, config, fcfg.batch_size, seed).epoch

    def evaluate(m: nn.Module) -> dict[str, float]:
        cal = _calibrate_cached(model, val_cache, val_pairs)
        return {"eer": cal.eer, "auc": cal.auc, "tar_at_far_1pct": cal.tar_at_far_1pct}

    step = _loss_step(config, model, device)
    result = fit(model, epochs, step, evaluate, fcfg, on_progress)
    if result.best_state is not None:
        model.load_state_dict(result.best_state)
    model.eval()
    calibration = _calibrate_cached(model, val_cache, val_pairs)
    kept_identity = (calibration.eer, -calibration.auc) >= (identity.eer, -identity.auc)
    if kept_identity:
        verifier.head.reset_parameters()
        calibration = identity
    return VerifierTrainingResult(
        model=model,
        calibration=calibration,
        history=result.history,
        best_epoch=-1 if kept_identity else result.best_epoch,
        elapsed_seconds=time.monotonic() - start,
        stopped_reason=result.stopped_reason,
        embedding_config=config.embedding_config,
        fit_config=fcfg,
        margin=config.margin,
        backbone=backbone.spec,
    )


def _loss_step(
    config: VerifierTrainConfig, model: SiameseNet, device: torch.device
) -> Callable[[nn.Module, Any], dict[str, Tensor]]:
    """The contrastive loss of one batch of the configured sampler."""
    margin, hard_negatives = config.margin, config.hard_negatives

    def step(m: nn.Module, batch: Any) -> dict[str, Tensor]:
        if config.sampler == "pairs":
            x1, x2, y = batch
            _, _, distance = m(x1.to(device), x2.to(device))  # (B,)
            return {"loss": contrastive_loss(distance, y.to(device), margin)}
        x, labels = batch
        h = model.embedding(x.to(device))  # (B, d): the one shared net embeds every face
        distances = pairwise_distances(h)  # (B, B)
        i, j, y = in_batch_pairs(labels.to(device), distances, hard_negatives=hard_negatives)
        return {"loss": contrastive_loss(distances[i, j], y, margin)}

    return step
