"""Train the detector on BCCD (authors' splits) within a wall-clock budget and report mAP.

Run from the repository root, e.g.::

    .venv/bin/python -m training.experiments.bccd_detector --minutes 6 --epochs 30
    .venv/bin/python -m training.experiments.bccd_detector --minutes 6 --lr 3e-3 --batch-size 8
    .venv/bin/python -m training.experiments.bccd_detector --no-priors --no-augment

Prints one line per epoch (seconds, loss, val mAP@0.5), then val/test mAP and per-class AP,
and a Markdown table row for ``RESULTS.md``. ``--save /tmp/x.safetensors`` keeps the model
(never save checkpoints into the repository).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from inference.metrics import DetectionMetrics
from inference.yolo import count_flops, save_detector
from training.detection import (
    DEFAULT_AUGMENT_CONFIG,
    DEFAULT_DETECTOR_CONFIG,
    DEFAULT_FIT_CONFIG,
    evaluate_detector,
    samples_from_records,
    train_detector,
)
from training.fit import Progress
from training.formats.voc import read_voc
from training.options import add_fit_arguments, fit_config_from_args, parse_ints

BCCD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "bccd"


def parse_args() -> argparse.Namespace:
    """Command-line overrides of the default configs."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=BCCD)
    add_fit_arguments(p, DEFAULT_FIT_CONFIG)
    p.add_argument("--img-size", type=int, default=DEFAULT_DETECTOR_CONFIG.img_size)
    p.add_argument("--strides", default=",".join(map(str, DEFAULT_DETECTOR_CONFIG.strides)))
    p.add_argument("--width", type=float, default=DEFAULT_DETECTOR_CONFIG.width_mult)
    p.add_argument("--no-priors", action="store_true")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--save", type=Path, default=None)
    p.add_argument("--label", default="")
    return p.parse_args()


def ap_text(metrics: DetectionMetrics, names: list[str]) -> str:
    """``Platelets 0.41, RBC 0.80, WBC 0.97``."""
    return ", ".join(f"{names[c]} {ap:.3f}" for c, ap in sorted(metrics.per_class_ap50.items()))


def main() -> None:
    """Read BCCD, train within the budget, evaluate on val and test, print a table row."""
    args = parse_args()
    torch.set_num_threads(args.threads)
    data = read_voc(args.data)
    by_stem = {r.stem: r for r in data.records}
    split = {k: samples_from_records(by_stem[s] for s in v) for k, v in data.splits.items()}
    model_cfg = dataclasses.replace(
        DEFAULT_DETECTOR_CONFIG,
        img_size=args.img_size,
        strides=parse_ints(args.strides),
        width_mult=args.width,
        use_priors=not args.no_priors,
        priors=None,
    )
    fit_cfg = fit_config_from_args(DEFAULT_FIT_CONFIG, args)

    def progress(p: Progress) -> None:
        if p.phase == "eval":
            print(
                f"epoch {p.epoch + 1:3d}  {p.elapsed_seconds:6.0f}s  lr {p.lr:.2e}  "
                f"loss {p.losses.get('loss', float('nan')):7.3f}  "
                f"val mAP50 {p.metrics.get('map50', float('nan')):.3f}",
                flush=True,
            )

    result = train_detector(
        split["train"],
        split["val"],
        data.class_names,
        model_config=model_cfg,
        fit_config=fit_cfg,
        augment_config=None if args.no_augment else DEFAULT_AUGMENT_CONFIG,
        on_progress=progress,
        seed=args.seed,
    )
    t0 = time.monotonic()
    test = evaluate_detector(result.model, split["test"], model_cfg.img_size)
    test_s = time.monotonic() - t0
    names = data.class_names
    epochs = len(result.history)
    epoch_s = [round(h.seconds, 1) for h in result.history]
    gflops = count_flops(result.model) / 1e9
    print(f"{gflops:.2f} GFLOPs; epoch seconds {epoch_s}; test eval {test_s:.1f}s")
    print(f"stopped: {result.stopped_reason} after {epochs} epochs, best epoch {result.best_epoch}")
    print(f"val  mAP50 {result.metrics.map50:.3f}  mAP50-95 {result.metrics.map50_95:.3f}")
    print(f"test mAP50 {test.map50:.3f}  mAP50-95 {test.map50_95:.3f}  ({ap_text(test, names)})")
    minutes = result.elapsed_seconds / 60
    print(
        f"| {args.label or vars(args)} | {minutes:.1f} | {epochs} (best {result.best_epoch + 1}) "
        f"| {result.metrics.map50:.3f} | {test.map50:.3f} | {test.map50_95:.3f} "
        f"| {ap_text(test, names)} |"
    )
    if args.save is not None:
        print("saved", args.save, save_detector(args.save, result.model))


if __name__ == "__main__":
    main()
