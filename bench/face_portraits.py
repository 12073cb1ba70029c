"""Face detection on portraits: is a face found in every frontal portrait, in any light?

Two face detectors in one run, the candidate against a named baseline (by default the
candidate is ``demo/models/face-detector`` and the baseline the detector shipped before it):

- **ORL, all 400 photos** (92x112 grey portraits of 40 people): the share in which serving's
  face search (:func:`inference.face_pipeline.detect_faces`, the photo as it is and zoomed
  out, boxes scoring at least the serving bar) finds a face. The candidate saw ORL's
  train-split people's photos as whole-image faces in training, so the share on the 12
  other people (val + test of the app's split by person) is printed on its own row too.
- **ORL side-lit**: the same photos darkened from one side (left, right, top, bottom in
  turn, the dark side at 20%), light as in the stranger set that found the gap.
- **Portraits from face_mask's test split**: every face at least 40 px on its longer side,
  cut out with the face filling 60% of a square and resized to 256 px: a face found when a
  box overlaps the true one with IoU >= 0.5. The test split is the app importer's, which
  neither detector trained on. The **frontal** ones are those dlib's frontal-face detector
  also finds (many face_mask faces are turned or half hidden by a mask).
- **face_mask test AP@0.5** (all faces, our metric) and the **median time per photo**.

Usage::

    .venv/bin/python -m bench.face_portraits --ours demo/models/face-detector.safetensors \\
        --baseline PATH/TO/old-face-detector.safetensors
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from bench.detector import score, test_records
from bench.voc_to_yolo import convert
from inference.calibration import raw_working_threshold
from inference.face_pipeline import detect_faces
from inference.metrics import iou_matrix
from inference.predict import Predictor
from inference.preprocess import load_rgb
from training.augment import shade
from training.formats.records import Record
from training.splits import deterministic_split

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
FACE_CLASSES = {"with_mask": "face", "without_mask": "face", "mask_weared_incorrect": "face"}
PORTRAIT_MIN_PX = 40
PORTRAIT_FILL = 0.6
PORTRAIT_SIZE = 256
SIDE_LIGHT = 0.2


def log(message: str) -> None:
    print(f"[face_portraits] {message}", flush=True)


def orl_photos(root: Path) -> list[tuple[str, np.ndarray]]:
    return [(p.parent.name, load_rgb(p)) for p in sorted(root.glob("s*/*.pgm"))]


def held_out_people(root: Path) -> set[str]:
    """ORL's val + test people under the app's split by person (the folders importer's)."""
    people = sorted(p.name for p in root.iterdir() if p.is_dir())
    splits = deterministic_split(people)
    return set(splits["val"]) | set(splits["test"])


def test_split(face_mask: Path, work: Path) -> list[Record]:
    """face_mask's test split as the app's VOC importer splits it (classes merged)."""
    layout = convert(
        face_mask, work / "yolo", class_map=FACE_CLASSES, split_seed=0, drop_duplicates=True
    )
    return test_records(layout)


def portraits(records: Sequence[Record]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(256 px portrait, its face box)`` for every large face of the test split."""
    out = []
    for record in records:
        image = load_rgb(record.image_path)
        height, width = image.shape[:2]
        for box in record.boxes:
            bw, bh = box[2] - box[0], box[3] - box[1]
            if max(bw, bh) < PORTRAIT_MIN_PX:
                continue
            side = max(bw, bh) / PORTRAIT_FILL
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            x0, y0 = round(cx - side / 2), round(cy - side / 2)
            x1, y1 = round(cx + side / 2), round(cy + side / 2)
            pad = max(0, -x0, -y0, x1 - width, y1 - height)
            padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
            window = padded[y0 + pad : y1 + pad, x0 + pad : x1 + pad]
            scale = PORTRAIT_SIZE / window.shape[1]
            resized = cv2.resize(window, (PORTRAIT_SIZE, round(window.shape[0] * scale)))
            face = (np.array(box, np.float32) - [x0, y0, x0, y0]) * scale
            out.append((np.ascontiguousarray(resized), face.astype(np.float32)))
    return out


def frontal(items: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The portraits whose face dlib's frontal-face detector (HOG, upsampled once) also finds
    (IoU >= 0.3): a definition of "frontal" that neither detector under test had a say in."""
    import dlib

    hog = dlib.get_frontal_face_detector()
    out = []
    for photo, face in items:
        found = hog(np.ascontiguousarray(photo), 1)
        boxes = np.array(
            [[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in found], np.float64
        ).reshape(-1, 4)
        if len(boxes) and iou_matrix(boxes, face[None].astype(np.float64)).max() >= 0.3:
            out.append((photo, face))
    return out


def serving_bar(path: Path, detector: Predictor) -> float:
    """The raw score serving asks of a face box: the working threshold recorded beside the
    checkpoint (``NAME.json``, as ``load_demo`` registers it), else the checkpoint's own."""
    meta = path.with_suffix(".json")
    metrics = json.loads(meta.read_text()).get("metrics") if meta.is_file() else None
    return raw_working_threshold(metrics, detector.config.to_dict())


def found_share(
    detector: Predictor, photos: Sequence[np.ndarray], bar: float
) -> tuple[float, list[float]]:
    """Share of photos with a face at the serving bar, and the seconds of each photo."""
    hits, seconds = 0, []
    for photo in photos:
        start = time.perf_counter()
        boxes = detect_faces(detector, photo, bar)
        seconds.append(time.perf_counter() - start)
        hits += bool(boxes)
    return hits / max(1, len(photos)), seconds


def portrait_share(
    detector: Predictor, items: Sequence[tuple[np.ndarray, np.ndarray]], bar: float
) -> float:
    hits = 0
    for photo, face in items:
        boxes = detect_faces(detector, photo, bar)
        if boxes:
            found = np.array([b for b, _ in boxes], np.float64)
            hits += bool((iou_matrix(found, face[None].astype(np.float64)) >= 0.5).any())
    return hits / max(1, len(items))


def face_mask_ap(detector: Predictor, records: Sequence[Record]) -> float:
    """AP@0.5 on the test split, predictions at score >= 0.001 (as bench.faces scores)."""
    predictions = []
    for record in records:
        result = detector.predict([load_rgb(record.image_path)], score_threshold=0.001)[0]
        predictions.append(
            {"boxes": result.boxes, "scores": result.scores, "labels": result.labels}
        )
    return float(score(predictions, records).map50)


def measure(path: Path, args: argparse.Namespace, data: dict[str, Any]) -> dict[str, float]:
    detector = Predictor.from_checkpoint(path, device="cpu")
    bar = serving_bar(path, detector)
    orl = data["orl"]
    share, seconds = found_share(detector, [image for _, image in orl], bar)
    held = [image for person, image in orl if person in data["held_out"]]
    held_share, _ = found_share(detector, held, bar)
    sides = ("left", "right", "top", "bottom")
    lit = [shade(image, sides[i % 4], SIDE_LIGHT) for i, (_, image) in enumerate(orl)]
    lit_share, _ = found_share(detector, lit, bar)
    return {
        "score_bar": bar,
        "orl_found": share,
        "orl_held_out_found": held_share,
        "orl_side_lit_found": lit_share,
        "portraits_found": portrait_share(detector, data["portraits"], bar),
        "frontal_found": portrait_share(detector, data["frontal"], bar),
        "face_mask_ap50": face_mask_ap(detector, data["test"]),
        "ms_per_photo": 1000 * statistics.median(seconds),
    }


ROWS = (
    ("score_bar", "serving's face bar (raw score: max F1 on the version's own val)", "ap", None),
    ("orl_found", "ORL: photos with a face found (all 400)", "pct", 0.99),
    ("orl_held_out_found", "ORL: the 12 people no detector trained on (120 photos)", "pct", 0.99),
    ("orl_side_lit_found", "ORL side-lit (one side at 20%), all 400", "pct", None),
    ("portraits_found", "face_mask test portraits: face found, IoU >= 0.5", "pct", None),
    (
        "frontal_found",
        "the frontal ones (dlib's frontal detector finds them too), IoU >= 0.5",
        "pct",
        0.99,
    ),
    ("face_mask_ap50", "face_mask test AP@0.5 (every face)", "ap", 0.695),
    ("ms_per_photo", "median ms per ORL photo (2 views, 1 thread)", "ms", None),
)


def _fmt(value: float, kind: str) -> str:
    if kind == "pct":
        return f"{100 * value:.1f}%"
    return f"{value:.1f}" if kind == "ms" else f"{value:.3f}"


def render(ours: dict[str, float], baseline: dict[str, float], counts: dict[str, int]) -> str:
    lines = [
        f"Portraits: {counts['portraits']} from face_mask's test split ({counts['frontal']} "
        f"frontal); ORL {counts['orl']} photos.",
        "",
        "| measure | ours | baseline | ratio ours / baseline | target | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for key, label, kind, target in ROWS:
        a, b = ours[key], baseline[key]
        ratio = f"{a / b:.3f}" if b else "—"
        verdict = ""
        if target is not None:
            verdict = "PASS" if a >= target else "FAIL"
            target_text = f"≥ {100 * target:.0f}%" if kind == "pct" else f"≥ {target}"
        else:
            target_text = ""
        lines.append(
            f"| {label} | {_fmt(a, kind)} | {_fmt(b, kind)} | {ratio} | {target_text} | {verdict} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ours", type=Path, default=REPO / "demo/models/face-detector.safetensors")
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--orl", type=Path, default=DATA / "att_faces" / "faces")
    parser.add_argument("--face-mask", type=Path, default=DATA / "face_mask")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-face-portraits"))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    log("reading ORL and cutting portraits out of face_mask's test split")
    records = test_split(args.face_mask, args.work)
    cut = portraits(records)
    data: dict[str, Any] = {
        "orl": orl_photos(args.orl),
        "held_out": held_out_people(args.orl),
        "test": records,
        "portraits": cut,
        "frontal": frontal(cut),
    }
    log("measuring ours")
    ours = measure(args.ours, args, data)
    log("measuring the baseline")
    baseline = measure(args.baseline, args, data)
    counts = {
        "orl": len(data["orl"]),
        "portraits": len(data["portraits"]),
        "frontal": len(data["frontal"]),
    }
    table = render(ours, baseline, counts)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "face_portraits.md").write_text(table + "\n")
    (args.out / "face_portraits.json").write_text(
        json.dumps({"ours": ours, "baseline": baseline, "counts": counts}, indent=2)
    )


if __name__ == "__main__":
    main()
