"""Detector benchmark: our default detector vs Ultralytics YOLOv8n trained from scratch.

Both are scored on the BCCD authors' TEST split with OUR metric code
(:func:`inference.metrics.evaluate_detections`), YOLOv8n having trained on the authors'
train split for the same wall-clock budget our checkpoint took; then both are timed on the
same letterboxed test image on this CPU. Prints one markdown table and writes it to
``bench/out/detector.md``, every number to ``bench/out/detector.json``.

Ultralytics never enters the app's venv: it lives in ``bench/.venv-ultralytics`` (created on
first use) and runs in a child process, ``bench/ultralytics_side.py``, that exchanges JSON.

Usage (from the repository root)::

    .venv/bin/python -m bench.detector --ours CKPT                  # budget = our training time
    .venv/bin/python -m bench.detector --ours CKPT --quick          # smoke test, ~5 minutes
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from bench.voc_to_yolo import YoloLayout, convert
from inference.metrics import DetectionMetrics, evaluate_detections
from inference.onnx_backend import OnnxRunner
from inference.predict import Predictor
from inference.preprocess import letterbox, load_rgb, to_tensor
from inference.runtime import load_checkpoint
from inference.yolo import YoloDetector, count_flops, decode, decode_dense, load_detector
from training.formats.voc import VocRecord

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV = BENCH / ".venv-ultralytics"
SIDE = BENCH / "ultralytics_side.py"
TORCH_PINS = ("torch==2.14.1", "torchvision==0.29.1")
EVAL_SCORE_THRESHOLD = 0.001  # COCO-style mAP keeps the tail of the PR curve
MAX_DETS = 100  # per image and class, COCOeval's default; BCCD has at most 30 boxes an image
Json = dict[str, Any]
COLUMNS = 6  # metric, ours, theirs, ratio, target, result


@dataclasses.dataclass(frozen=True)
class SharedSettings:
    """What both benchmarks (this one and ``bench.faces``) take from their command lines.

    The Ultralytics functions here read only these, so ``bench.faces`` reuses them.

    Attributes:
        work: scratch folder (YOLO layout, the sides' inputs, outputs and logs).
        out: where the table and the JSON go.
        threads: torch threads on our side and theirs.
        runs, warmup: timed runs (median) and untimed ones before them.
        quick: a smoke test (short budgets, few runs): numbers are not meaningful.
        budget_minutes: YOLOv8n's training budget (default: our detector's training time).
        ours_train_seconds: our detector's training wall time, if known.
        theirs_weights: best.pt of an earlier YOLOv8n run, reused instead of training.
        theirs_workers: their dataloader workers.
        imgsz: YOLOv8n's train/val/predict size: our detector's input size.
    """

    work: Path
    out: Path
    threads: int
    runs: int
    warmup: int
    quick: bool
    budget_minutes: float
    ours_train_seconds: float | None
    theirs_weights: Path | None
    theirs_workers: int
    imgsz: int


@dataclasses.dataclass(frozen=True)
class Settings(SharedSettings):
    """Everything a run depends on, resolved from the command line."""

    ours: Path
    data: Path

    @property
    def matmul_repeats(self) -> int:
        """Best-of repeats of the matmul peak measurement."""
        return 3 if self.quick else 10


# ----------------------------------------------------------------------------- helpers
def log(message: str) -> None:
    """Progress goes to stderr so stdout carries only the table."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """Best fp32 ``size x size @ size x size`` rate on the current torch threads, GFLOP/s."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(a, b)  # warm-up: thread pool start, page faults
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def timed_medians(
    steps: Sequence[Callable[[Any], Any]], first_input: Any, runs: int, warmup: int
) -> list[float]:
    """Median seconds of each step of a pipeline (step i gets step i-1's output)."""
    times: list[list[float]] = [[] for _ in steps]
    for i in range(warmup + runs):
        value = first_input
        for k, step in enumerate(steps):
            t0 = time.perf_counter()
            value = step(value)
            if i >= warmup:
                times[k].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


# ----------------------------------------------------------------------------- Ultralytics side
def bench_venv(venv: Path, *installs: Sequence[str]) -> Path:
    """The python of a bench-only venv; a missing venv is created, then each install is run.

    Args:
        venv: where the venv lives (``bench/.venv-*``, never the app's venv).
        installs: pip requirement lists, installed one after the other, in order.
    """
    python = venv / "bin" / "python"
    if not python.exists():
        log(f"creating {venv} (then pip install: {' ; '.join(' '.join(i) for i in installs)})")
        subprocess.run(["python3.11", "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        for packages in installs:
            subprocess.run([*pip, *packages], check=True)
    return python


def ensure_venv() -> Path:
    """The Ultralytics venv's python, creating the venv (torch pinned first) if missing."""
    # torch first, from this machine's disk; the pins repeated with ultralytics so its own
    # torch requirement cannot pull another build.
    python = bench_venv(VENV, TORCH_PINS, ("ultralytics", *TORCH_PINS))
    # Metadata only: importing ultralytics here would write its settings outside the work dir.
    probe = "from importlib.metadata import version as v; print(v('torch'), v('ultralytics'))"
    found = subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True)
    torch_version = found.stdout.split()[0]
    if not torch_version.startswith(TORCH_PINS[0].split("==")[1]):
        raise RuntimeError(f"{VENV} has torch {torch_version}, expected {TORCH_PINS[0]}")
    return python


def run_side(python: Path, mode: str, settings: SharedSettings, *args: str) -> Json:
    """Run one mode of ``ultralytics_side.py`` offline; its output goes to a log file."""
    result = settings.work / f"ultralytics_{mode}.json"
    logfile = settings.work / f"ultralytics_{mode}.log"
    env = dict(os.environ)
    env.update(
        YOLO_OFFLINE="1",
        YOLO_AUTOINSTALL="False",
        YOLO_CONFIG_DIR=str(settings.work / "ultralytics-config"),
        MPLCONFIGDIR=str(settings.work / "ultralytics-config" / "matplotlib"),
    )
    cmd = [str(python), str(SIDE), mode, "--result", str(result), "--threads"]
    cmd += [str(settings.threads), *args]
    return run_child(cmd, env, logfile, result)


def run_child(cmd: Sequence[str], env: Mapping[str, str], logfile: Path, result: Path) -> Json:
    """Run a side process (``python SIDE MODE ...``), its output to ``logfile``.

    Returns:
        The JSON it wrote to ``result``.

    Raises:
        RuntimeError: it failed; the message ends with the log's last 30 lines.
    """
    with logfile.open("w") as fh:
        done = subprocess.run(
            list(cmd), env=dict(env), stdout=fh, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        tail = "".join(logfile.read_text(errors="replace").splitlines(keepends=True)[-30:])
        raise RuntimeError(f"{Path(cmd[1]).stem} {cmd[2]} failed ({logfile}):\n{tail}")
    data: Json = json.loads(result.read_text())
    return data


def theirs_train_and_eval(python: Path, settings: SharedSettings, layout: YoloLayout) -> Json:
    """Train YOLOv8n (unless weights were given), then their val + raw test predictions."""
    project = settings.work / "ultralytics-runs"
    out: Json = {}
    weights = settings.theirs_weights
    if weights is None:
        log(f"training YOLOv8n from scratch for {settings.budget_minutes:.1f} min")
        out["train"] = run_side(
            python,
            "train",
            settings,
            *("--data", str(layout.data_yaml), "--project", str(project)),
            *("--budget-minutes", str(settings.budget_minutes)),
            *("--workers", str(settings.theirs_workers), "--imgsz", str(settings.imgsz)),
        )
        weights = Path(out["train"]["weights"])
    out["weights"] = str(weights)
    records = test_records(layout)
    images = settings.work / "test_images.json"
    images.write_text(json.dumps([[r.stem, str(r.image_path)] for r in records]))
    log("YOLOv8n: Ultralytics val on the test split + raw predictions")
    out["evaluate"] = run_side(
        python,
        "evaluate",
        settings,
        *("--weights", str(weights), "--data", str(layout.data_yaml)),
        *("--project", str(project), "--images", str(images)),
        *("--imgsz", str(settings.imgsz)),
    )
    return out


# ----------------------------------------------------------------------------- accuracy
def test_records(layout: YoloLayout) -> list[VocRecord]:
    """The layout's test split (the authors' unless it was converted with a split seed)."""
    by_stem = {r.stem: r for r in layout.dataset.records}
    return [by_stem[s] for s in layout.split_stems["test"]]


def score(preds: Sequence[dict[str, Any]], records: Sequence[VocRecord]) -> DetectionMetrics:
    """OUR metric, the same call for both models."""
    gts = [{"boxes": r.boxes, "labels": r.labels} for r in records]
    return evaluate_detections(preds, gts, max_dets=MAX_DETS, score_threshold=0.25)


def label_map(model_names: Sequence[str], data_names: Sequence[str]) -> NDArray[np.int64]:
    """Model label -> data label by class name (identity when the model has no real names)."""
    if set(model_names) == set(data_names):
        return np.array([list(data_names).index(n) for n in model_names], dtype=np.int64)
    if len(model_names) == len(data_names):
        log(f"model classes {list(model_names)} are not {list(data_names)}: assuming that order")
        return np.arange(len(data_names), dtype=np.int64)
    raise ValueError(f"model classes {list(model_names)} do not match the data's {data_names}")


def ours_metrics(checkpoint: Path, layout: YoloLayout) -> DetectionMetrics:
    """Our checkpoint through the serving Predictor at score 0.001, scored on the test split."""
    records = test_records(layout)
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    images = [load_rgb(r.image_path) for r in records]
    dets = predictor.predict(images, score_threshold=EVAL_SCORE_THRESHOLD, batch_size=8)
    mapping = label_map(predictor.class_names, layout.class_names)
    preds = [{"boxes": d.boxes, "scores": d.scores, "labels": mapping[d.labels]} for d in dets]
    return score(preds, records)


def theirs_metrics(theirs: Json, layout: YoloLayout) -> DetectionMetrics:
    """YOLOv8n's exported predictions (original pixels) scored by OUR metric."""
    records = test_records(layout)
    raw = theirs["evaluate"]["predictions"]
    preds = [
        {
            "boxes": np.asarray(raw[r.stem]["boxes"], np.float32).reshape(-1, 4),
            "scores": np.asarray(raw[r.stem]["scores"], np.float32),
            "labels": np.asarray(raw[r.stem]["labels"], np.int64),
        }
        for r in records
    ]
    return score(preds, records)


def compare_detectors(
    python: Path, settings: SharedSettings, layout: YoloLayout, ours_checkpoint: Path
) -> Json:
    """Train (or reuse) YOLOv8n, then score both detectors on the layout's test split.

    Returns:
        ``{"ours": {"metrics", "train_seconds"}, "theirs": {"train"?, "weights",
        "evaluate", "metrics"}}``, metrics as ``DetectionMetrics.to_dict()`` without the PR
        curves, their raw predictions left out.
    """
    theirs = theirs_train_and_eval(python, settings, layout)
    log(f"our detector on the test split ({len(test_records(layout))} images)")
    ours = ours_metrics(ours_checkpoint, layout).to_dict()
    theirs_scored = theirs_metrics(theirs, layout).to_dict()
    for metrics in (ours, theirs_scored):
        metrics.pop("pr_curves", None)
    theirs["evaluate"].pop("predictions")
    return {
        "ours": {"metrics": ours, "train_seconds": settings.ours_train_seconds},
        "theirs": {**theirs, "metrics": theirs_scored},
    }


# ----------------------------------------------------------------------------- speed
def latency_input(layout: YoloLayout, size: int, path: Path) -> NDArray[np.uint8]:
    """The first test image letterboxed to ``size``; saved as .npy for the other side."""
    image = letterbox(load_rgb(test_records(layout)[0].image_path), size).image
    np.save(path, image)
    return image


def ours_latency(model: YoloDetector, image: NDArray[np.uint8], settings: Settings) -> Json:
    """Median forward and decode + NMS seconds per call at batch 1 and 8 (serving config).

    "batches" times the CPU serving path (the network through ONNX Runtime, as the
    Predictor runs it on a CPU); "eager" the same network in PyTorch eager mode.
    """
    config, size = model.config, model.config.img_size
    out: Json = {"threads": torch.get_num_threads(), "batches": {}, "eager": {}}
    one = to_tensor([image])
    # As served: on the CPU the graph (ONNX Runtime) ends with the dense boxes and scores,
    # so what remains is threshold + NMS; eager PyTorch (as on CUDA) decodes in Python.
    runner = OnnxRunner(model)
    backends: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
        "batches": (runner, lambda dense: decode_dense(dense[0], dense[1], config, size)),
        "eager": (model.raw_outputs, lambda raw: decode(raw, config, size)),
    }
    with torch.inference_mode():
        for key, (forward_fn, decode_fn) in backends.items():
            for n in (1, 8):
                x = one.expand(n, -1, -1, -1).contiguous()
                forward, dec = timed_medians(
                    [forward_fn, decode_fn], x, settings.runs, settings.warmup
                )
                out[key][str(n)] = {
                    "total_s": forward + dec,
                    "forward_s": forward,
                    "nms_s": dec,
                    "runs": settings.runs,
                }
    return out


def speed(settings: Settings, python: Path, layout: YoloLayout, weights: str) -> Json:
    """Peak matmul rate, our latency and FLOPs, then theirs on the same input, back to back."""
    model = load_detector(settings.ours, device="cpu")
    image = latency_input(layout, model.config.img_size, settings.work / "latency_input.npy")
    log("fp32 matmul peak")
    peak = matmul_gflops(repeats=settings.matmul_repeats)
    log("our latency")
    ours = ours_latency(model, image, settings)
    ours["flops"] = count_flops(model)
    log("YOLOv8n latency")
    theirs = run_side(
        python,
        "latency",
        settings,
        *("--weights", weights, "--image", str(settings.work / "latency_input.npy")),
        *("--runs", str(settings.runs), "--warmup", str(settings.warmup)),
    )
    return {"matmul_gflops": peak, "ours": ours, "theirs": theirs, "img_size": image.shape[0]}


# ----------------------------------------------------------------------------- report
def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _ratio(a: float, b: float) -> str:
    # Latencies and FLOPs: any positive number makes a ratio.
    return f"{a / b:.2f}" if abs(b) > 1e-6 else "n/a"


def rate_ratio(a: float, b: float) -> str:
    """``a / b`` of two rates or APs in [0, 1]; "n/a" where ``b`` is too small to divide by."""
    # An untrained model's AP of ~1e-5 makes the ratio noise, not a number.
    return f"{a / b:.2f}" if abs(b) >= 1e-3 else "n/a"


def target_map(ours: float, theirs: float) -> str:
    """mAP@0.5: ours >= theirs at the same budget."""
    if ours >= theirs:
        return f"PASS (+{ours - theirs:.3f})"
    return f"FALL SHORT by {theirs - ours:.3f} mAP ({_pct(1 - ours / theirs)} below theirs)"


def target_latency(ours: float, theirs: float) -> str:
    """Latency: ours <= 0.5 x theirs; when short, the cut needed in ms and in % of ours."""
    if ours <= 0.5 * theirs:
        return f"PASS ({ours / theirs:.2f}x)"
    cut = ours - 0.5 * theirs
    return f"FALL SHORT: {ours / theirs:.2f}x; needs -{1000 * cut:.1f} ms (-{_pct(cut / ours)})"


def target_share(decode_s: float, forward_s: float) -> str:
    """Decode + NMS <= 5% of our (forward + decode) latency."""
    share = decode_s / (forward_s + decode_s)
    if share <= 0.05:
        return f"PASS ({_pct(share)})"
    allowed = 0.05 / 0.95 * forward_s  # decode time that would make the share exactly 5%
    return (
        f"FALL SHORT: {_pct(share)}; decode must drop "
        f"{1000 * decode_s:.2f} -> {1000 * allowed:.2f} ms"
    )


def table_row(*cells: str) -> str:
    """One markdown table row, padded to :data:`COLUMNS` cells."""
    padded = [*cells, *[""] * (COLUMNS - len(cells))]
    return "| " + " | ".join(padded) + " |"


def detection_rows(d: Json, subject: str, class_names: Sequence[str] = ()) -> list[str]:
    """Training time, mAP@0.5 (target: ours >= theirs), mAP@[.5:.95], per class, their val.

    Args:
        d: ``{"ours": {"metrics", "train_seconds"}, "theirs": {"metrics", "evaluate",
            "train"?}}`` as :func:`compare_detectors` returns it.
        subject: what was measured where, e.g. ``"BCCD test split (72 images)"``.
        class_names: per-class AP@0.5 rows for these (none for a one-class detector).
    """
    o, t = d["ours"]["metrics"], d["theirs"]["metrics"]
    train, seconds = d["theirs"].get("train"), d["ours"]["train_seconds"]
    theirs_time = (
        f"{train['train_call_seconds'] / 60:.1f} min, {train['epochs_completed']} epoch(s) "
        f"(budget {train['budget_seconds'] / 60:.1f})"
        if train
        else "reused weights (--skip-train-theirs)"
    )
    ours_time = f"{seconds / 60:.1f} min" if seconds else "unknown"
    rows = [
        table_row("training wall time (theirs: YOLOv8n from scratch)", ours_time, theirs_time),
        table_row(
            f"mAP@0.5, {subject}, our metric",
            f"{o['map50']:.3f}",
            f"{t['map50']:.3f}",
            rate_ratio(o["map50"], t["map50"]),
            "ours ≥ theirs",
            target_map(o["map50"], t["map50"]),
        ),
        table_row(
            "mAP@[.5:.95], same",
            f"{o['map50_95']:.3f}",
            f"{t['map50_95']:.3f}",
            rate_ratio(o["map50_95"], t["map50_95"]),
        ),
    ]
    for i, name in enumerate(class_names):
        a, b = o["per_class_ap50"].get(str(i), 0.0), t["per_class_ap50"].get(str(i), 0.0)
        rows.append(table_row(f"AP@0.5 {name}", f"{a:.3f}", f"{b:.3f}", rate_ratio(a, b)))
    own = d["theirs"]["evaluate"]["own_val_test"]
    mine = f"{own['map50']:.3f} / {own['map50_95']:.3f}"
    rows.append(table_row("their own `val` on the same images, mAP@0.5 / @[.5:.95]", "", mine))
    return rows


def speed_rows(s: Json) -> list[str]:
    """Latency, decode share and FLOP/s rows."""
    rows: list[str] = []
    ours, theirs, peak = s["ours"], s["theirs"], s["matmul_gflops"]
    for n in ("1", "8"):
        a, b = ours["batches"][n], theirs["batches"][n]
        per = int(n)
        rows.append(
            table_row(
                f"latency batch {n}, ms per image (forward + decode/NMS); ours as served "
                "(ONNX Runtime on CPU)",
                f"{1000 * a['total_s'] / per:.1f}",
                f"{1000 * b['total_s'] / per:.1f}",
                _ratio(a["total_s"], b["total_s"]),
                "≤ 0.50",
                target_latency(a["total_s"], b["total_s"]),
            )
        )
        e = ours["eager"][n]
        rows.append(
            table_row(
                f"latency batch {n}, ms per image; ours in PyTorch eager (as on CUDA)",
                f"{1000 * e['total_s'] / per:.1f}",
                f"{1000 * b['total_s'] / per:.1f}",
                _ratio(e["total_s"], b["total_s"]),
                "",
                "",
            )
        )
    for n in ("1", "8"):
        a, b = ours["batches"][n], theirs["batches"][n]
        rows.append(
            table_row(
                f"decode + NMS share, batch {n}",
                _pct(a["nms_s"] / a["total_s"]),
                _pct(b["nms_s"] / b["total_s"]),
                "",
                "≤ 5%",
                target_share(a["nms_s"], a["forward_s"]),
            )
        )
    gf_o, gf_t = ours["flops"] / 1e9, theirs["flops"] / 1e9
    rows.append(table_row("GFLOPs per image", f"{gf_o:.2f}", f"{gf_t:.2f}", _ratio(gf_o, gf_t)))
    for n in ("1", "8"):
        fo = gf_o * int(n) / ours["batches"][n]["forward_s"]
        ft = gf_t * int(n) / theirs["batches"][n]["forward_s"]
        rows.append(
            table_row(
                f"achieved GFLOP/s, forward batch {n} (% of matmul peak)",
                f"{fo:.1f} ({_pct(fo / peak)})",
                f"{ft:.1f} ({_pct(ft / peak)})" if gf_t else "n/a (no thop count)",
            )
        )
    rows.append(table_row("fp32 matmul peak, 2048², GFLOP/s", f"{peak:.1f}", "(same machine)"))
    return rows


def render(r: Json, class_names: Sequence[str]) -> str:
    """The one markdown table plus the notes needed to read it."""
    theirs = f"YOLOv8n (Ultralytics {r['versions']['ultralytics']})"
    head = [
        table_row("metric", "ours", theirs, "ours / theirs", "target", "result"),
        table_row(*["---"] * COLUMNS),
    ]
    title = "## Detector benchmark: BCCD authors' test split (72 images), CPU"
    if r["quick"]:
        title += " (QUICK SMOKE TEST: numbers are not meaningful)"
    accuracy = detection_rows(r, "BCCD authors' test split", class_names)
    lines = [title, "", *head, *accuracy, *speed_rows(r["speed"]), ""]
    lines += notes(r)
    return "\n".join(lines) + "\n"


def notes(r: Json) -> list[str]:
    """How each number was taken, and what could skew it."""
    s = r["speed"]
    attempts = r["theirs_network_attempts"]
    return [
        f"- {r['machine']}; torch {r['versions']['torch']}, {s['ours']['threads']} threads; "
        f"load average {r['load_before']:.2f} before, {r['load_after']:.2f} after "
        "(anything well above 0 means other work shared the cores).",
        "- mAP: both models' test predictions at score ≥ 0.001 (theirs: conf 0.001, "
        "NMS IoU 0.7, max_det 300, boxes in original pixels) scored by "
        f"`inference.metrics.evaluate_detections` (max_dets {MAX_DETS}); ours through "
        "`Predictor`.",
        f"- Latency: median of {s['ours']['batches']['1']['runs']} runs after "
        f"{r['warmup']} warm-up, PyTorch eager, on one test image letterboxed to "
        f"{s['img_size']}² (copied N times for batch N), from tensor to detections at the "
        "serving thresholds (ours: the checkpoint's config; theirs: conf 0.25, IoU 0.7). "
        "Theirs: `model.model` Conv+BN-fused as their `predict` runs it, "
        "+ `ultralytics.utils.nms.non_max_suppression`; ours as served on CPU: the ONNX Runtime "
        "graph (network + box/score decoding, as their Detect head decodes in its forward) "
        "+ `decode_dense` (threshold, top-k, clip, NMS); ours eager: `raw_outputs` + `decode`.",
        "- Ratios are ours / theirs (below 1 is faster or smaller for latency and FLOPs; "
        "above 1 is better for mAP).",
        f"- Ultralytics network attempts (refused): {', '.join(attempts) or 'none'}.",
    ]


# ----------------------------------------------------------------------------- main
def add_shared_arguments(parser: argparse.ArgumentParser, work: Path) -> None:
    """The options of :class:`SharedSettings` (``work``: the default scratch folder)."""
    p = parser
    p.add_argument("--ours-train-seconds", type=float, help="overrides the detector's extra")
    p.add_argument("--budget-minutes", type=float, help="YOLOv8n budget (default: ours)")
    p.add_argument("--skip-train-theirs", action="store_true")
    p.add_argument("--theirs-weights", type=Path, help="best.pt of an earlier YOLOv8n run")
    p.add_argument("--quick", action="store_true", help="short budgets, 5 timing runs")
    p.add_argument("--work", type=Path, default=work)
    p.add_argument("--out", type=Path, default=BENCH / "out")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--theirs-workers", type=int, default=0, help="their dataloader workers")


def parse_shared(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, detector: str
) -> tuple[argparse.Namespace, dict[str, Any]]:
    """Parse ``argv`` and check the shared options (see :func:`add_shared_arguments`).

    Args:
        detector: the option naming our detector checkpoint, whose training time is
            YOLOv8n's budget by default (e.g. ``"ours"``).

    Returns:
        The parsed options and the fields of :class:`SharedSettings`, as keywords for a
        subclass's constructor.
    """
    args = parser.parse_args(argv)
    shared = shared_settings(parser, args, getattr(args, detector))
    return args, dataclasses.asdict(shared)


def shared_settings(
    parser: argparse.ArgumentParser, args: argparse.Namespace, detector: Path
) -> SharedSettings:
    """Check the shared options; YOLOv8n's budget defaults to ``detector``'s training time."""
    if args.skip_train_theirs != (args.theirs_weights is not None):
        parser.error("--skip-train-theirs and --theirs-weights go together")
    seconds = args.ours_train_seconds or checkpoint_training_seconds(detector)
    budget = args.budget_minutes or (1.0 if args.quick else None)
    if budget is None and seconds:
        budget = float(seconds) / 60
    if budget is None:
        parser.error("no training_seconds in the detector checkpoint: pass --budget-minutes")
    config = load_checkpoint(detector, expected_kind="detector").config
    return SharedSettings(
        work=args.work,
        out=args.out,
        threads=args.threads,
        runs=5 if args.quick else 50,
        warmup=2 if args.quick else 5,
        quick=args.quick,
        budget_minutes=budget,
        ours_train_seconds=float(seconds) if seconds else None,
        theirs_weights=args.theirs_weights,
        theirs_workers=args.theirs_workers,
        imgsz=int(config["img_size"]),
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Our detector vs Ultralytics YOLOv8n on BCCD.")
    p.add_argument("--ours", type=Path, required=True, help="our detector .safetensors")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "bccd")
    add_shared_arguments(p, Path("/tmp/bench-detector"))
    return p


def checkpoint_training_seconds(path: Path) -> float | None:
    """Our training wall time: the checkpoint's extra, else the model card next to it."""
    extra = load_checkpoint(path, expected_kind="detector").extra
    card = Path(path).with_suffix(".json")  # the model card export_model writes
    if "training_seconds" not in extra and card.exists():
        extra = {**extra, **json.loads(card.read_text())}
    seconds = extra.get("training_seconds")
    return float(seconds) if seconds else None


def settings_from_args(argv: Sequence[str] | None = None) -> Settings:
    """Parse and check the command line; the budget defaults to our training time."""
    args, shared = parse_shared(_parser(), argv, detector="ours")
    return Settings(**shared, ours=args.ours, data=args.data)


def machine() -> str:
    """CPU model and core count, for the notes."""
    model = platform.processor() or "cpu"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores"


def run_facts(settings: SharedSettings, load_before: float, sides: Sequence[Json | None]) -> Json:
    """What every report records besides its numbers: settings, machine, load, date.

    Args:
        load_before: the 1-minute load average when the run started.
        sides: the Ultralytics side's answers, for the network attempts they refused.
    """
    attempts = {a for side in sides if side for a in side["network_attempts"]}
    return {
        "quick": settings.quick,
        "budget_minutes": settings.budget_minutes,
        "imgsz": settings.imgsz,
        "runs": settings.runs,
        "warmup": settings.warmup,
        "theirs_network_attempts": sorted(attempts),
        "machine": machine(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def run(settings: Settings) -> Json:
    """The whole benchmark; returns every number (their raw predictions left out)."""
    torch.set_num_threads(settings.threads)
    settings.work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    layout = convert(settings.data, settings.work / "yolo")
    python = ensure_venv()
    compared = compare_detectors(python, settings, layout, settings.ours)
    theirs = compared["theirs"]
    speed_ = speed(settings, python, layout, theirs["weights"])
    return {
        **compared,
        "class_names": layout.class_names,
        "ours_checkpoint": str(settings.ours),
        "speed": speed_,
        "versions": {**theirs["evaluate"]["versions"], "torch": torch.__version__},
        **run_facts(
            settings, load_before, [theirs.get("train"), theirs["evaluate"], speed_["theirs"]]
        ),
    }


def write_report(out: Path, name: str, table: str, result: Json) -> None:
    """Print the table; write it to ``out/<name>.md`` and every number to ``<name>.json``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(table)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(table)


def main(argv: Sequence[str] | None = None) -> None:
    """Run, print the table, write ``detector.md`` and ``detector.json``."""
    settings = settings_from_args(argv)
    result = run(settings)
    write_report(settings.out, "detector", render(result, result["class_names"]), result)


if __name__ == "__main__":
    main()
