"""Label-error benchmark: does the ranking of possible label errors find injected ones?

A copy of BCCD's validation split (the authors' ``ImageSets/Main/val.txt``) gets label
errors injected, seeded: 5% of the boxes dropped (a missing label), 5% shifted by half their
width or height along one axis, sign and axis at random, clipped to the image (a badly
drawn box: IoU 1/3 with where it was), and 5% given another class at random (a swapped
class), each box in at most one of the three. The shipped detector predicts the images
through the serving ``Predictor`` at the evaluation floor; its score calibration and
working threshold come from its model card, as the app serves them. Every image is matched
and scored exactly as an evaluation job does (``inference.error_cases.match_image``,
``inference.label_errors.score_cases``), and the cases of the whole split are ranked by
their label-error score.

An injected error is **found** when one of the top K cases, K = the number injected, points
at it: for a dropped box, a case whose predicted box overlaps the dropped box at IoU > 0.5;
for a shifted or swapped box, a case whose label is that box. "right kind" also asks that
the case's suspected kind is the injected one (missing label, bad box, swapped class).

Baselines in the same run, on the same cases and K: a **random** order of the cases
(seeded; its expected recall is K / cases), and **confidence only**: cases ordered by the
calibrated confidence of the prediction involved (a missed label by that of the nearest
prediction, 0 when none), i.e. "confident mistakes first" without the label-error logic.

Usage (from the repository root; ``make bench-label-errors``)::

    .venv/bin/python -m bench.label_errors
    .venv/bin/python -m bench.label_errors --seed 1 --rate 0.05 --data VOC_FOLDER

Writes ``bench/out/label_errors.md`` and every number to ``bench/out/label_errors.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from bench.detector import machine, write_report
from inference.calibration import ServingScores, serving_scores
from inference.error_cases import DetectionCase, match_image
from inference.label_errors import (
    BAD_BOX,
    MISSING_LABEL,
    SWAPPED_CLASS,
    ImagePredictions,
    rank_label_errors,
)
from inference.metrics import iou_matrix
from inference.predict import Predictor
from inference.preprocess import load_rgb
from training.detection import EVAL_SCORE_THRESHOLD
from training.formats.records import Record
from training.formats.voc import read_voc

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
KINDS = ("dropped", "shifted", "swapped")
EXPECTED_KIND = {"dropped": MISSING_LABEL, "shifted": BAD_BOX, "swapped": SWAPPED_CLASS}
TARGET = 0.5
Json = dict[str, Any]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=REPO / "demo/models/detector-bccd.safetensors")
    p.add_argument("--card", type=Path, help="model card (default: --model's .json)")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared/data/bccd")
    p.add_argument("--split", default="val")
    p.add_argument("--rate", type=float, default=0.05, help="share of boxes per error kind")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=BENCH / "out")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- injection
@dataclass(frozen=True)
class Injected:
    """One injected error: the image, the kind, and the box involved.

    ``index`` is the box's index in the noisy labels (shifted, swapped) or in the clean
    ones (dropped, which is no longer in the noisy labels); ``box`` is the original box.
    """

    image: int
    kind: str
    index: int
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Noisy:
    """One image's labels after injection."""

    boxes: npt.NDArray[np.float64]
    labels: npt.NDArray[np.int64]


def _shifted(box: npt.NDArray[np.float64], record: Record, rng: np.random.Generator) -> Any:
    """The box moved by half its width or height along one axis, clipped to the image."""
    w, h = box[2] - box[0], box[3] - box[1]
    axis, sign = int(rng.integers(2)), float(rng.choice([-1.0, 1.0]))
    delta = np.array([w / 2, 0, w / 2, 0] if axis == 0 else [0, h / 2, 0, h / 2]) * sign
    moved = box + delta
    moved[0::2] = np.clip(moved[0::2], 0, record.width)
    moved[1::2] = np.clip(moved[1::2], 0, record.height)
    return moved


def inject(
    records: Sequence[Record], num_classes: int, rate: float, seed: int
) -> tuple[list[Noisy], list[Injected]]:
    """Drop, shift and swap ``rate`` of all boxes each (disjoint sets), seeded."""
    rng = np.random.default_rng(seed)
    where = [(i, j) for i, r in enumerate(records) for j in range(len(r.labels))]
    k = round(rate * len(where))
    order = rng.permutation(len(where))
    kind_of = {int(order[n]): KINDS[n // k] for n in range(3 * k)}
    noisy: list[Noisy] = []
    injected: list[Injected] = []
    flat = 0
    for i, record in enumerate(records):
        boxes: list[npt.NDArray[np.float64]] = []
        labels: list[int] = []
        for j in range(len(record.labels)):
            box = np.asarray(record.boxes[j], np.float64)
            label = int(record.labels[j])
            kind = kind_of.get(flat)
            flat += 1
            original = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
            if kind == "dropped":
                injected.append(Injected(i, kind, j, original))
                continue
            if kind == "shifted":
                box = _shifted(box, record, rng)
            elif kind == "swapped":
                label = int(rng.choice([c for c in range(num_classes) if c != label]))
            if kind is not None:
                injected.append(Injected(i, kind, len(boxes), original))
            boxes.append(box)
            labels.append(label)
        noisy.append(Noisy(np.array(boxes, np.float64).reshape(-1, 4), np.array(labels, np.int64)))
    return noisy, injected


# ----------------------------------------------------------------------------- ranking
@dataclass(frozen=True)
class Ranked:
    """One case of the split with its label-error score and kind."""

    image: int
    case: DetectionCase
    score: float
    kind: str
    confidence: float  # the "confidence only" baseline's key


def rank_cases(
    noisy: Sequence[Noisy], predictions: Sequence[Json], serving: ServingScores
) -> list[Ranked]:
    """Every case of every image, scored as an evaluation does (match all, then score)."""
    num_classes = int(predictions[0]["num_classes"]) if predictions else 0
    confidences = [serving.confidences(p["scores"], p["labels"]) for p in predictions]
    matches = []
    for labels, pred, conf in zip(noisy, predictions, confidences, strict=True):
        keep = conf >= serving.threshold
        matches.append(
            match_image(
                labels.boxes,
                labels.labels,
                pred["boxes"][keep],
                pred["labels"][keep],
                conf[keep],
                num_classes,
            )
        )
    evidence = [
        ImagePredictions(labels.boxes, labels.labels, pred["boxes"], pred["labels"], conf)
        for labels, pred, conf in zip(noisy, predictions, confidences, strict=True)
    ]
    scored, _ = rank_label_errors(matches, evidence, num_classes)
    out: list[Ranked] = []
    for i, (found, suspicions) in enumerate(zip(matches, scored, strict=True)):
        for case, s in zip(found.cases, suspicions, strict=True):
            out.append(Ranked(i, case, s.score, s.kind, float(case.score or 0.0)))
    return out


def points_at(item: Ranked, error: Injected) -> bool:
    """Does this case point at this injected error?"""
    if item.image != error.image:
        return False
    if error.kind == "dropped":
        if item.case.predicted_box is None:
            return False
        iou = iou_matrix(np.array([item.case.predicted_box]), np.array([error.box]))
        return bool(iou[0, 0] > 0.5)
    return item.case.truth == error.index


def recall_at_k(ranking: Sequence[Ranked], injected: Sequence[Injected], k: int) -> Json:
    """Share of injected errors found in ``ranking[:k]``, overall and per kind."""
    top = ranking[:k]
    found = {kind: 0 for kind in KINDS}
    right_kind = {kind: 0 for kind in KINDS}
    total = {kind: 0 for kind in KINDS}
    for error in injected:
        total[error.kind] += 1
        hits = [item for item in top if points_at(item, error)]
        found[error.kind] += bool(hits)
        right_kind[error.kind] += any(h.kind == EXPECTED_KIND[error.kind] for h in hits)
    share = {kind: found[kind] / total[kind] if total[kind] else 0.0 for kind in KINDS}
    return {
        "k": k,
        "found": found,
        "right_kind": right_kind,
        "total": total,
        "recall": share,
        "recall_overall": sum(found.values()) / max(1, sum(total.values())),
        "right_kind_overall": sum(right_kind.values()) / max(1, sum(total.values())),
    }


# ----------------------------------------------------------------------------- run
def predict(records: Sequence[Record], model: Path) -> tuple[list[Json], float]:
    """Predictions at the evaluation floor (raw scores) and the seconds they took."""
    predictor = Predictor.from_checkpoint(model, device="cpu")
    began = time.perf_counter()
    out: list[Json] = []
    for start in range(0, len(records), 8):
        chunk = [load_rgb(r.image_path) for r in records[start : start + 8]]
        for d in predictor.predict(chunk, score_threshold=EVAL_SCORE_THRESHOLD):
            out.append(
                {
                    "boxes": d.boxes.astype(np.float64),
                    "scores": d.scores.astype(np.float64),
                    "labels": d.labels,
                    "num_classes": len(predictor.class_names),
                }
            )
    return out, time.perf_counter() - began


def run(args: argparse.Namespace) -> Json:
    """Every number of the report."""
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    card = json.loads((args.card or args.model.with_suffix(".json")).read_text())
    serving = serving_scores(card.get("metrics"), card.get("config"))
    data = read_voc(args.data)
    by_stem = {r.stem: r for r in data.records}
    records = [by_stem[s] for s in data.splits[args.split]]
    noisy, injected = inject(records, len(data.class_names), args.rate, args.seed)
    predictions, predict_seconds = predict(records, args.model)
    if predictions and predictions[0]["num_classes"] != len(data.class_names):
        sys.exit("the model's classes differ from the data's")
    began = time.perf_counter()
    cases = rank_cases(noisy, predictions, serving)
    score_seconds = time.perf_counter() - began
    k = len(injected)
    ours = sorted(cases, key=lambda c: -c.score)
    by_confidence = sorted(cases, key=lambda c: -c.confidence)
    shuffled = [cases[i] for i in np.random.default_rng(args.seed).permutation(len(cases))]
    return {
        "split": args.split,
        "images": len(records),
        "boxes": sum(len(r.labels) for r in records),
        "injected": {kind: sum(e.kind == kind for e in injected) for kind in KINDS},
        "cases": len(cases),
        "working_threshold": serving.threshold,
        "score_scale": serving.scale,
        "ours": recall_at_k(ours, injected, k),
        "confidence_only": recall_at_k(by_confidence, injected, k),
        "random": recall_at_k(shuffled, injected, k),
        "suspected_kinds": {
            kind: sum(c.kind == kind for c in ours[:k]) for kind in sorted({c.kind for c in ours})
        },
        "predict_seconds": predict_seconds,
        "score_seconds": score_seconds,
        "seed": args.seed,
        "rate": args.rate,
        "machine": machine(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "args": {k: str(v) for k, v in vars(args).items()},
    }


# ----------------------------------------------------------------------------- report
def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _verdict(share: float) -> str:
    if share >= TARGET:
        return "PASS"
    return f"FALL SHORT by {100 * (TARGET - share):.1f} points"


def render(r: Json) -> str:
    """The markdown report."""
    ours, conf, rand = r["ours"], r["confidence_only"], r["random"]
    lines = [
        f"Label errors injected into BCCD {r['split']} ({r['images']} images, {r['boxes']} "
        f"boxes; seed {r['seed']}, {_pct(r['rate'])} per kind): "
        + ", ".join(f"{n} {kind}" for kind, n in r["injected"].items())
        + f". {r['cases']} error cases at the working threshold {r['working_threshold']:.3f} "
        f"({r['score_scale']}); K = {ours['k']}.",
        "",
        _row(
            "injected",
            "errors",
            "found in top K (ours)",
            "with the right kind",
            "confidence only",
            "random",
            "ours / confidence only",
            "target",
            "result",
        ),
        _row(*["---"] * 9),
    ]
    for kind in (*KINDS, "overall"):
        if kind == "overall":
            share, base, chance = (
                ours["recall_overall"],
                conf["recall_overall"],
                rand["recall_overall"],
            )
            n, right = sum(ours["total"].values()), ours["right_kind_overall"]
        else:
            share, base, chance = ours["recall"][kind], conf["recall"][kind], rand["recall"][kind]
            n = ours["total"][kind]
            right = ours["right_kind"][kind] / n if n else 0.0
        ratio = f"{share / base:.2f}" if base else "n/a"
        lines.append(
            _row(
                f"**{kind}**" if kind == "overall" else kind,
                str(n),
                _pct(share),
                _pct(right),
                _pct(base),
                _pct(chance),
                ratio,
                "≥ 50%",
                _verdict(share),
            )
        )
    kinds = ", ".join(f"{kind or 'none'} {n}" for kind, n in r["suspected_kinds"].items())
    lines += [
        "",
        f"- Suspected kinds among the top K: {kinds}.",
        f"- Prediction {r['predict_seconds']:.1f} s, matching and scoring "
        f"{r['score_seconds']:.2f} s; {r['machine']}; load average {r['load_before']:.2f} "
        f"before, {r['load_after']:.2f} after; {r['date']}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Run, print the table, write ``label_errors.md`` and ``label_errors.json``."""
    args = parse_args(argv)
    result = run(args)
    write_report(args.out, "label_errors", render(result), result)


if __name__ == "__main__":
    main()
