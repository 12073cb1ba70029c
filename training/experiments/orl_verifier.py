"""People-disjoint k-fold cross-validation of the Siamese verifier on ORL (AT&T faces).

Run from the repository root, e.g.::

    .venv/bin/python -m training.experiments.orl_verifier   # the defaults, ~8 min on 1 thread
    .venv/bin/python -m training.experiments.orl_verifier --minutes 3 --folds 5 \\
        --input-size 64 --widths 16,32,64,128 --label "64px, 3 min/fold"

``--epochs`` sets the cosine schedule's length too: match it to the budget (about 28
epochs per minute at the defaults on one thread) so the rate has decayed when time runs out.

Each fold trains on the other folds' people (minus a validation share for early stopping)
and is tested on the fold's people, whom the net never saw. Prints one line per fold, then
mean ± std of EER, AUC and TAR at FAR 1% / 0.1% next to the same folds' raw-pixel baseline
(Euclidean distance between the standardised crops, no learning), and appends both as
Markdown rows to ``training/experiments/VERIFIER_RESULTS.md`` (``--no-record`` to skip).
Reference: dlib's pretrained embeddings on all ORL pairs reach EER 9.7%, TAR@FAR=1% 83.6%.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from inference.faces import FACE_MARGIN, crop_face, to_gray, to_tensor
from inference.pairs import all_eval_pairs
from inference.preprocess import load_rgb
from inference.verification_metrics import Calibration, calibrate
from training.crossval import SUMMARY_METRICS, CrossValidation, FoldResult, cross_validate
from training.formats.folders import FaceSample, load_identity_folder
from training.options import add_fit_arguments, fit_config_from_args, parse_ints
from training.verification import (
    DEFAULT_FACE_AUGMENT,
    DEFAULT_VERIFIER_EMBEDDING_CONFIG,
    DEFAULT_VERIFIER_FIT_CONFIG,
    DEFAULT_VERIFIER_TRAIN_CONFIG,
    VerifierTrainConfig,
)

ORL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "att_faces" / "faces"
RESULTS = Path(__file__).resolve().parent / "VERIFIER_RESULTS.md"
_HEADER = (
    "| date | setup | folds | min/fold | epochs (best) | EER | AUC | TAR@FAR=1% | TAR@FAR=0.1% |\n"
    "|---|---|---|---|---|---|---|---|---|\n"
)


def parse_args() -> argparse.Namespace:
    """Command-line overrides of the default configs."""
    emb, train = DEFAULT_VERIFIER_EMBEDDING_CONFIG, DEFAULT_VERIFIER_TRAIN_CONFIG
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--data", type=Path, default=ORL)
    p.add_argument("--folds", type=int, default=5)
    add_fit_arguments(p, DEFAULT_VERIFIER_FIT_CONFIG)  # --minutes is the budget per fold
    p.add_argument("--input-size", type=int, default=emb.input_size)
    p.add_argument("--widths", default=",".join(map(str, emb.widths)))
    p.add_argument("--dim", type=int, default=emb.embedding_dim)
    p.add_argument("--dropout", type=float, default=emb.dropout)
    p.add_argument("--margin", type=float, default=train.margin)
    p.add_argument("--pairs", type=int, default=train.pairs_per_epoch, help="pairs per epoch")
    p.add_argument("--no-hard-negatives", dest="hard_negatives", action="store_false")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--rotation", type=float, default=DEFAULT_FACE_AUGMENT.max_rotation)
    p.add_argument("--val-fraction", type=float, default=0.2, help="of each fold's people")
    p.add_argument("--members", type=int, default=train.members)
    p.add_argument("--sampler", choices=("batch", "pairs"), default=train.sampler)
    p.add_argument("--pooling", choices=("avg", "flatten"), default=emb.pooling)
    p.add_argument("--people", type=int, default=train.people_per_batch, help="people per batch")
    p.add_argument("--faces", type=int, default=train.faces_per_person, help="faces per person")
    p.add_argument("--no-flip-average", dest="flip_average", action="store_false")
    p.add_argument("--tta-shift", type=int, default=emb.tta_shift)
    p.add_argument("--batches", type=int, default=train.batches_per_epoch, help="per epoch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--label", default="")
    p.add_argument("--no-record", action="store_true", help="do not append to the results file")
    return p.parse_args()


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _mean_std(values: Sequence[float], scale: float = 100.0, unit: str = "%") -> str:
    array = np.asarray(values, dtype=np.float64) * scale
    digits = 1 if unit else 3
    return f"{array.mean():.{digits}f} ± {array.std():.{digits}f}{unit}"


def summary(tests: Sequence[Calibration]) -> dict[str, str]:
    """Mean ± std over folds of each reported metric, as text (rates in percent)."""
    out = {name: _mean_std([getattr(t, name) for t in tests]) for name in SUMMARY_METRICS}
    out["auc"] = _mean_std([t.auc for t in tests], scale=1.0, unit="")
    return out


def fold_line(f: FoldResult) -> str:
    """One line for a finished fold: people, time, epochs, val and test metrics."""
    t = f.test
    return (
        f"fold {f.fold}: {len(f.train_people)} train / {len(f.val_people)} val / "
        f"{len(f.test_people)} test people  {f.seconds / 60:.1f} min  "
        f"{f.epochs} epochs (best {f.best_epoch + 1}, {f.stopped_reason})  "
        f"val EER {_pct(f.val.eer)}  test EER {_pct(t.eer)}  AUC {t.auc:.3f}  "
        f"TAR@1% {_pct(t.tar_at_far_1pct)}  TAR@0.1% {_pct(t.tar_at_far_01pct)}  "
        f"({t.n_same} same / {t.n_different} different pairs)"
    )


def print_fold(f: FoldResult) -> None:
    """Print :func:`fold_line` at once (folds take minutes)."""
    print(fold_line(f), flush=True)


def table_row(setup: str, tests: Sequence[Calibration], minutes: str, epochs: str) -> str:
    """A Markdown row for ``VERIFIER_RESULTS.md``."""
    m = summary(tests)
    return (
        f"| {datetime.date.today()} | {setup} | {len(tests)} | {minutes} | {epochs} "
        f"| {m['eer']} | {m['auc']} | {m['tar_at_far_1pct']} | {m['tar_at_far_01pct']} |"
    )


def pixel_baseline(
    samples: Sequence[FaceSample], cv: CrossValidation, size: int
) -> list[Calibration]:
    """Each fold's test metrics for the distance between standardised crops (no learning).

    The same crops and the same pairs (seeded ``seed + fold`` as in ``cross_validate``) as the
    trained net's test, so the difference is what training bought.
    """
    tests = []
    for fold in cv.folds:
        people = sorted(fold.test_people)
        faces = [s for s in samples if s.identity in set(people)]
        crops = [
            crop_face(to_gray(load_rgb(s.image_path)), s.box, margin=FACE_MARGIN, size=size)
            for s in faces
        ]
        x = to_tensor(crops).flatten(1)  # (N, S*S)
        labels = np.array([people.index(s.identity) for s in faces])
        idx1, idx2, y = all_eval_pairs(labels, np.random.default_rng(fold.seed))
        distances = (x[idx1] - x[idx2]).norm(dim=1).double().numpy()
        tests.append(calibrate(distances, y == 0))
    return tests


def _config(args: argparse.Namespace) -> VerifierTrainConfig:
    """The training config the command line asks for."""
    emb = dataclasses.replace(
        DEFAULT_VERIFIER_EMBEDDING_CONFIG,
        input_size=args.input_size,
        widths=parse_ints(args.widths),
        embedding_dim=args.dim,
        dropout=args.dropout,
        pooling=args.pooling,
        flip_average=args.flip_average,
        tta_shift=args.tta_shift,
    )
    augment = dataclasses.replace(DEFAULT_FACE_AUGMENT, max_rotation=args.rotation)
    return VerifierTrainConfig(
        embedding_config=emb,
        fit_config=fit_config_from_args(DEFAULT_VERIFIER_FIT_CONFIG, args),
        margin=args.margin,
        sampler=args.sampler,
        people_per_batch=args.people,
        faces_per_person=args.faces,
        batches_per_epoch=args.batches,
        pairs_per_epoch=args.pairs,
        hard_negatives=args.hard_negatives,
        augment=None if args.no_augment else augment,
        members=args.members,
    )


def _setup_text(args: argparse.Namespace, config: VerifierTrainConfig) -> str:
    emb, fit = config.embedding_config, config.fit_config
    return args.label or (
        f"{emb.input_size}px w{args.widths} d{emb.embedding_dim} drop {emb.dropout:g}, "
        f"lr {fit.learning_rate:g}, "
        + (
            f"in-batch pairs {config.people_per_batch}x{config.faces_per_person}, "
            f"{config.batches_per_epoch} batches/epoch"
            if config.sampler == "batch"
            else f"batch {fit.batch_size}, {config.pairs_per_epoch} pairs/epoch"
        )
        + f", {emb.pooling} pool{', flip avg' if emb.flip_average else ''}"
        + (f", tta shift {emb.tta_shift}px" if emb.tta_shift else "")
        + (f", ensemble of {config.members}" if config.members > 1 else "")
        + (f", rotation ±{args.rotation:g}°" if args.rotation else "")
        + (f", val fraction {args.val_fraction:g}" if args.val_fraction != 0.2 else "")
        + f", m {config.margin:g}"
        + f"{', hard neg' if config.hard_negatives else ''}"
        + f"{', no aug' if config.augment is None else ''}"
        f", {fit.max_minutes:g} min/fold, {fit.max_epochs} epochs max, seed {args.seed}"
        f", {args.threads} thread(s)"
    )


def main() -> None:
    """Load ORL, cross-validate, print per-fold and summary lines, record table rows."""
    args = parse_args()
    torch.set_num_threads(args.threads)
    samples = load_identity_folder(args.data)
    config = _config(args)
    cv = cross_validate(
        samples,
        args.folds,
        config,
        seed=args.seed,
        val_fraction=args.val_fraction,
        on_fold=print_fold,
    )
    tests = [f.test for f in cv.folds]
    size = config.embedding_config.input_size
    baseline = pixel_baseline(samples, cv, size)
    for name, text in summary(tests).items():
        print(f"{name:18s} {text}   (raw pixels: {summary(baseline)[name]})")
    minutes = f"{sum(f.seconds for f in cv.folds) / 60 / len(cv.folds):.1f}"
    epochs = "/".join(f"{f.epochs}({f.best_epoch + 1})" for f in cv.folds)
    rows = [
        table_row(_setup_text(args, config), tests, minutes, epochs),
        table_row(f"same folds, raw {size}px standardised pixels", baseline, "0", "-"),
    ]
    print("\n".join(rows))
    if not args.no_record:
        new_file = not RESULTS.exists()
        with RESULTS.open("a", encoding="utf-8") as out:
            out.write(_HEADER if new_file else "")
            out.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
