"""Fit a trained detector's working threshold and score calibration on a VOC split.

Training does this itself (``training.services``); this script does it for a checkpoint
trained before, such as the shipped BCCD detector, and writes the result into its model
card (``load_demo`` copies the card's metrics into the model version)::

    .venv/bin/python -m training.experiments.calibrate_detector \\
        --model demo/models/detector-bccd.safetensors --data ../shared/data/bccd --write

It predicts the split (authors' ``ImageSets/Main/<split>.txt``, read with
``training.formats.voc.read_voc``) at the evaluation floor, fits the calibration and the
max-F1 threshold on those matches (:func:`inference.calibration.fit_working_scores`), and
reports precision / recall / F1 at that threshold on the fit split and on ``--report``
splits (default test), which are never fitted on. Without ``--write`` it only prints.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from inference.calibration import WorkingScores, fit_working_scores
from inference.runtime import sha256_file
from inference.yolo import load_detector
from training.detection import (
    EVAL_SCORE_THRESHOLD,
    evaluate_detector,
    report_at_threshold,
    samples_from_records,
)
from training.formats.voc import read_voc

BCCD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "bccd"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="a detector .safetensors")
    p.add_argument("--card", type=Path, help="model card to update (default: --model's .json)")
    p.add_argument("--data", type=Path, default=BCCD, help="a VOC folder with ImageSets/Main")
    p.add_argument("--split", default="val", help="split to fit on (default val)")
    p.add_argument("--report", default="test", help="comma-separated splits to report on")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--write", action="store_true", help="write the card (default: print)")
    return p.parse_args(argv)


def _line(name: str, report: dict[str, Any]) -> str:
    return (
        f"{name}: mAP@0.5 {report['map50']:.3f}  at {report['score_threshold']:.3f} "
        f"({report['score_scale']}): precision {report['precision']:.3f}  "
        f"recall {report['recall']:.3f}  F1 {report['f1']:.3f}"
    )


def calibrate(args: argparse.Namespace) -> tuple[WorkingScores, dict[str, dict[str, Any]]]:
    """Fit on ``args.split``; returns the fit and a compact report per split (no curves)."""
    model = load_detector(args.model, device="cpu")
    data = read_voc(args.data)
    by_stem = {r.stem: r for r in data.records}
    if list(data.class_names) != list(model.config.class_names):
        sys.exit(f"classes differ: data {data.class_names}, model {model.config.class_names}")
    reports: dict[str, dict[str, Any]] = {}
    working: WorkingScores | None = None
    for split in [args.split, *[s for s in args.report.split(",") if s]]:
        if split not in data.splits:
            sys.exit(f"{args.data} has no split {split!r} (it has {sorted(data.splits)})")
        samples = samples_from_records(by_stem[s] for s in data.splits[split])
        metrics = evaluate_detector(model, samples, model.config.img_size)
        if working is None:
            working = fit_working_scores(
                metrics.matched, split=split, score_floor=EVAL_SCORE_THRESHOLD
            )
            if working is None:
                sys.exit(f"no detection on {split} is a true positive: nothing to calibrate")
        report = report_at_threshold(metrics, working.serving())
        report.pop("pr_curves")  # one point per detection: too big for a model card
        reports[split] = {**report, "images": len(samples)}
        print(_line(split, reports[split]), flush=True)
    assert working is not None
    return working, reports


def main(argv: list[str] | None = None) -> None:
    """Fit, print, and with ``--write`` update the card's metrics."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    working, reports = calibrate(args)
    names = load_detector(args.model, device="cpu").config.class_names
    for c, point in working.per_class.items():
        print(f"  {names[c]}: own max-F1 threshold {point.threshold:.3f} (F1 {point.f1:.3f})")
    card_path = args.card or args.model.with_suffix(".json")
    if not args.write:
        print(json.dumps(working.to_metrics()))
        return
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    if card.get("sha256") not in (None, sha256_file(args.model)):
        sys.exit(f"{card_path} describes another checkpoint (sha256 differs)")
    given = sys.argv[1:] if argv is None else argv
    command = ["python", "-m", "training.experiments.calibrate_detector", *given]
    metrics = {**card.get("metrics", {}), **reports, **working.to_metrics()}
    card["metrics"] = metrics
    card["calibration_command"] = shlex.join(command)
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {card_path}")


if __name__ == "__main__":
    main()
