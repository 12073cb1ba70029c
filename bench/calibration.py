"""Calibration benchmark: does a detector's served confidence mean what it says?

The shipped detector's score calibration and working threshold were fitted on the BCCD
authors' VAL split (``training.experiments.calibrate_detector``, stored in the model card).
This bench predicts the TEST split (never fitted on) through the serving ``Predictor`` at
the evaluation floor, matches the boxes with our metric (greedy by score, IoU >= 0.5), and
prints:

* a reliability table: calibrated-confidence bins vs the observed share of true positives,
  with the expected calibration error (ECE), next to the same table for the raw scores
  (the baseline, measured in the same run);
* what a client's ``min_confidence`` keeps, raw (before) vs calibrated (after): recall and
  precision at 0.25 / 0.4 / 0.5 / 0.7, and F1 at the working threshold vs the best F1 any
  single threshold reaches on the test split.

Usage (from the repository root; ``make bench-calibration``)::

    .venv/bin/python -m bench.calibration
    .venv/bin/python -m bench.calibration --model CKPT --card CARD.json --data VOC_FOLDER

Writes ``bench/out/calibration.md`` and every number to ``bench/out/calibration.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.detector import MAX_DETS, machine, write_report
from inference.calibration import ServingScores, best_f1, operating_point, serving_scores
from inference.metrics import MatchedDetections, evaluate_detections
from inference.predict import Predictor
from inference.preprocess import load_rgb
from training.detection import EVAL_SCORE_THRESHOLD
from training.formats.voc import read_voc

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CLIENT_THRESHOLDS = (0.25, 0.4, 0.5, 0.7)
Json = dict[str, Any]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=REPO / "demo/models/detector-bccd.safetensors")
    p.add_argument("--card", type=Path, help="model card (default: --model's .json)")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared/data/bccd")
    p.add_argument("--split", default="test")
    p.add_argument("--bins", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=BENCH / "out")
    return p.parse_args(argv)


def matched_detections(args: argparse.Namespace) -> tuple[MatchedDetections, list[str], int]:
    """The split's detections at the evaluation floor with their outcomes; class names."""
    data = read_voc(args.data)
    by_stem = {r.stem: r for r in data.records}
    records = [by_stem[s] for s in data.splits[args.split]]
    predictor = Predictor.from_checkpoint(args.model, device="cpu")
    if predictor.class_names != list(data.class_names):
        sys.exit(f"classes differ: {predictor.class_names} vs {data.class_names}")
    images = [load_rgb(r.image_path) for r in records]
    dets = predictor.predict(images, score_threshold=EVAL_SCORE_THRESHOLD)
    preds = [{"boxes": d.boxes, "scores": d.scores, "labels": d.labels} for d in dets]
    gts = [{"boxes": r.boxes, "labels": r.labels} for r in records]
    matched = evaluate_detections(preds, gts, max_dets=MAX_DETS).matched
    return matched, list(data.class_names), len(records)


def reliability(confidence: np.ndarray, hit: np.ndarray, bins: int) -> Json:
    """Equal-width bins of ``confidence (D,)``: count, mean confidence, share of hits; ECE.

    ECE = sum over bins of (boxes in bin / all boxes) * |share of hits - mean confidence|.
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        mine = index == b
        n = int(mine.sum())
        mean = float(confidence[mine].mean()) if n else float("nan")
        share = float(hit[mine].mean()) if n else float("nan")
        if n:
            ece += n / len(confidence) * abs(share - mean)
        rows.append(
            {"low": edges[b], "high": edges[b + 1], "boxes": n, "mean": mean, "hits": share}
        )
    return {"bins": rows, "ece": ece, "boxes": len(confidence)}


def thresholds(raw: np.ndarray, calibrated: np.ndarray, matched: MatchedDetections) -> Json:
    """What each client threshold keeps on either scale, and the working point."""
    hit, n_gt = matched.true_positive, matched.total_gt
    return {
        "clients": [
            {
                "min_confidence": t,
                "raw": operating_point(raw, hit, n_gt, t).to_dict(),
                "calibrated": operating_point(calibrated, hit, n_gt, t).to_dict(),
            }
            for t in CLIENT_THRESHOLDS
        ],
        "best_raw": best_f1(raw, hit, n_gt).to_dict(),
        "best_calibrated": best_f1(calibrated, hit, n_gt).to_dict(),
    }


def run(args: argparse.Namespace) -> Json:
    """Every number of the report."""
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    card = json.loads((args.card or args.model.with_suffix(".json")).read_text())
    serving: ServingScores = serving_scores(card.get("metrics"), card.get("config"))
    if serving.calibration is None:
        sys.exit("the model card has no readable score calibration")
    matched, names, images = matched_detections(args)
    raw = matched.scores
    calibrated = serving.confidences(raw, matched.labels)
    hit = matched.true_positive
    served = calibrated >= 0.1  # the range clients threshold in (and a raw-scale twin)
    working = operating_point(calibrated, hit, matched.total_gt, serving.threshold)
    return {
        "split": args.split,
        "images": images,
        "objects": matched.total_gt,
        "class_names": names,
        "working_threshold": serving.threshold,
        "working": working.to_dict(),
        "per_class_working": per_class_points(calibrated, matched, serving.threshold, names),
        "reliability_calibrated": reliability(calibrated, hit, args.bins),
        "reliability_raw": reliability(raw, hit, args.bins),
        "ece_at_least_0_1": {
            "calibrated": reliability(calibrated[served], hit[served], args.bins)["ece"],
            "raw": reliability(raw[raw >= 0.1], hit[raw >= 0.1], args.bins)["ece"],
        },
        "thresholds": thresholds(raw, calibrated, matched),
        "machine": machine(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def per_class_points(
    calibrated: np.ndarray, matched: MatchedDetections, threshold: float, names: list[str]
) -> Json:
    """Each class's precision and recall at the (one) working threshold."""
    out = {}
    for c, n_gt in sorted(matched.n_gt.items()):
        mine = matched.labels == c
        point = operating_point(calibrated[mine], matched.true_positive[mine], n_gt, threshold)
        out[names[c]] = point.to_dict()
    return out


# ----------------------------------------------------------------------------- report
def _f(x: float, digits: int = 3) -> str:
    return "" if x != x else f"{x:.{digits}f}"  # nan (an empty bin) prints as nothing


def table_row(*cells: str) -> str:
    """One markdown table row (no pipes inside cells)."""
    return "| " + " | ".join(cells) + " |"


def _pass(ok: bool, short: str) -> str:
    return "PASS" if ok else f"FALL SHORT: {short}"


def reliability_rows(r: Json) -> list[str]:
    """One row per bin: calibrated next to raw; gap = |observed precision - mean|."""
    cal, raw = r["reliability_calibrated"], r["reliability_raw"]
    rows = [
        table_row(
            "bin",
            "boxes",
            "mean confidence",
            "observed precision",
            "gap",
            "boxes (raw)",
            "mean raw score",
            "observed precision (raw)",
            "gap (raw)",
        ),
        table_row(*["---"] * 9),
    ]
    for c, w in zip(cal["bins"], raw["bins"], strict=True):
        rows.append(
            table_row(
                f"[{c['low']:.1f}, {c['high']:.1f})",
                str(c["boxes"]),
                _f(c["mean"]),
                _f(c["hits"]),
                _f(abs(c["hits"] - c["mean"])),
                str(w["boxes"]),
                _f(w["mean"]),
                _f(w["hits"]),
                _f(abs(w["hits"] - w["mean"])),
            )
        )
    return rows


def ece_rows(r: Json) -> list[str]:
    """ECE of the calibrated confidence against the raw score's, over two sets of boxes."""
    cal, raw, low = r["reliability_calibrated"], r["reliability_raw"], r["ece_at_least_0_1"]
    rows = [
        table_row("expected calibration error", "calibrated", "raw score", "calibrated / raw"),
        table_row(*["---"] * 4),
    ]
    for name, a, b in (
        (f"all {cal['boxes']} boxes", cal["ece"], raw["ece"]),
        ("boxes at >= 0.1 (on each scale)", low["calibrated"], low["raw"]),
    ):
        rows.append(table_row(name, f"**{a:.4f}**", f"{b:.4f}", f"{a / b:.2f}"))
    return rows


def threshold_rows(r: Json) -> list[str]:
    """Client thresholds before / after, the DeepStack target and the working point."""
    t = r["thresholds"]
    rows = [
        table_row(
            "min_confidence",
            "raw score (before): recall / precision",
            "calibrated (after): recall / precision",
            "target",
            "result",
        ),
        table_row(*["---"] * 5),
    ]
    for c in t["clients"]:
        raw, cal, m = c["raw"], c["calibrated"], c["min_confidence"]
        target, ok = f"precision >= {m}", cal["precision"] >= m
        if m == 0.4:
            target = "DeepStack's 0.4: recall >= 0.70, precision >= 0.60"
            ok = cal["recall"] >= 0.70 and cal["precision"] >= 0.60
        rows.append(
            table_row(
                f"{m}",
                f"{raw['recall']:.3f} / {raw['precision']:.3f}",
                f"{cal['recall']:.3f} / {cal['precision']:.3f}",
                target,
                _pass(ok, f"recall {cal['recall']:.3f}, precision {cal['precision']:.3f}"),
            )
        )
    w, best = r["working"], max(t["best_calibrated"]["f1"], t["best_raw"]["f1"])
    rows.append(
        table_row(
            f"none (working threshold {r['working_threshold']:.3f}, calibrated)",
            f"best single threshold: F1 {t['best_raw']['f1']:.3f} "
            f"(raw {t['best_raw']['threshold']:.3f})",
            f"F1 {w['f1']:.3f} (recall {w['recall']:.3f} / precision {w['precision']:.3f}); "
            f"best calibrated F1 {t['best_calibrated']['f1']:.3f} "
            f"at {t['best_calibrated']['threshold']:.3f}",
            "F1 >= best - 0.02",
            _pass(w["f1"] >= best - 0.02, f"{best - w['f1']:.3f} below the best"),
        )
    )
    return rows


def render(r: Json) -> str:
    """The markdown report."""
    per_class = ", ".join(
        f"{name} {p['recall']:.3f} / {p['precision']:.3f}"
        for name, p in r["per_class_working"].items()
    )
    lines = [
        f"Reliability on the BCCD {r['split']} split ({r['images']} images, {r['objects']} "
        f"objects; {r['reliability_calibrated']['boxes']} boxes at raw score >= "
        f"{EVAL_SCORE_THRESHOLD}), calibration fitted on val:",
        "",
        *reliability_rows(r),
        "",
        *ece_rows(r),
        "",
        *threshold_rows(r),
        "",
        f"- Per class at the working threshold, recall / precision: {per_class}.",
        f"- {r['machine']}; load average {r['load_before']:.2f} before, "
        f"{r['load_after']:.2f} after; {r['date']}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Run, print the tables, write ``calibration.md`` and ``calibration.json``."""
    args = parse_args(argv)
    result = run(args)
    write_report(args.out, "calibration", render(result), result)


if __name__ == "__main__":
    main()
