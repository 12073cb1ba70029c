"""Faces benchmark: our verifier and face detector against what users would otherwise pick.

Three parts, all measured in one run, printed as one markdown table (also written to
``bench/out/faces.md``, every number to ``bench/out/faces.json``):

1. **Verification on ORL, people-disjoint.** ``training.crossval.cross_validate`` makes
   the 5 folds and trains OUR verifier per fold with its defaults, testing each on the fold's
   people (every same-person pair + as many different-person pairs, seeded by the fold). dlib's
   pretrained ResNet embeddings are scored on exactly those pairs, as is the raw-pixel
   distance (``training.experiments.orl_verifier.pixel_baseline``) for context.
2. **Face detection on face_mask.** The three mask classes merged into ``face``, split as the
   app's VOC importer splits a folder without one (``deterministic_split``, seed 0), so the
   test split is the one our face detector was evaluated on. YOLOv8n trains from scratch for
   our detector's wall-clock budget (``bench.detector``'s Ultralytics machinery); both are
   scored by our ``inference.metrics.evaluate_detections``.
3. **Latency on this CPU.** Our embedding per face (batch 1 and 32), a whole verify request
   (``inference.face_pipeline.FacePipeline`` on two photos), a 1:K search among 10,000
   enrolled embeddings, and dlib's per-face time.

dlib never enters the app's venv: it lives in ``bench/.venv-dlib`` (created on first use) and
runs in a child process, ``bench/dlib_side.py``, that exchanges JSON and ``.npz`` files.

Usage (from the repository root)::

    .venv/bin/python -m bench.faces --ours-detector DET --ours-verifier VER
    .venv/bin/python -m bench.faces --ours-detector DET --ours-verifier VER --quick  # smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from bench.detector import (
    BENCH,
    COLUMNS,
    REPO,
    SharedSettings,
    add_shared_arguments,
    bench_venv,
    compare_detectors,
    detection_rows,
    ensure_venv,
    log,
    parse_shared,
    rate_ratio,
    run_child,
    run_facts,
    table_row,
    test_records,
    timed_medians,
    write_report,
)
from bench.voc_to_yolo import YoloLayout, convert
from inference.face_pipeline import FacePipeline, FoundFace, NoFaceFound
from inference.faces import FACE_MARGIN, crop_face, to_tensor
from inference.pairs import all_eval_pairs
from inference.predict import Predictor
from inference.preprocess import load_rgb
from inference.recognize import Gallery
from inference.siamese import AnyVerifier, load_verifier, verifier_config
from inference.verification_metrics import Calibration, calibrate
from training.crossval import CrossValidation, FoldResult, cross_validate
from training.experiments.orl_verifier import fold_line, pixel_baseline
from training.formats.folders import FaceSample, load_identity_folder
from training.options import fit_config_from_args
from training.verification import DEFAULT_VERIFIER_FIT_CONFIG, DEFAULT_VERIFIER_TRAIN_CONFIG

DLIB_VENV = BENCH / ".venv-dlib"
DLIB_SIDE = BENCH / "dlib_side.py"
DLIB_PACKAGES = ("dlib-bin", "face_recognition_models", "numpy", "pillow")
DATA = REPO.parent / "shared" / "data"
# face_mask's classes all box a face; the face detector is trained on them merged.
FACE_CLASSES = {"with_mask": "face", "without_mask": "face", "mask_weared_incorrect": "face"}
# webapp.images.importers.import_voc calls deterministic_split(stems) with its default seed.
SPLIT_SEED = 0
GALLERY_FACES = 10_000
GALLERY_FACES_PER_SUBJECT = 5
METRICS = ("eer", "auc", "tar_at_far_1pct", "tar_at_far_01pct")
Json = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Settings(SharedSettings):
    """Everything a run depends on, resolved from the command line.

    The shared part (``SharedSettings``) is what ``bench.detector``'s Ultralytics functions
    read; YOLOv8n's budget is our face detector's training time.
    """

    ours_detector: Path
    ours_verifier: Path
    orl: Path
    face_mask: Path
    folds: int
    verifier_minutes: float | None


# ----------------------------------------------------------------------------- dlib side
def ensure_dlib_venv() -> Path:
    """The bench-only dlib venv's python, creating the venv if missing."""
    python = bench_venv(DLIB_VENV, DLIB_PACKAGES)
    # Metadata only: the models package's own import needs pkg_resources.
    probe = (
        "from importlib.metadata import version; "
        "version('dlib-bin'); version('face_recognition_models')"
    )
    found = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        raise RuntimeError(f"{DLIB_VENV} lacks dlib-bin or face_recognition_models: delete it")
    return python


def dlib_descriptors(python: Path, settings: Settings, samples: Sequence[FaceSample]) -> Json:
    """dlib's 128-d descriptor of every sample (whole image as the box) and its timings."""
    images = settings.work / "dlib_images.json"
    images.write_text(json.dumps([str(s.image_path) for s in samples]))
    result, npz = settings.work / "dlib_embed.json", settings.work / "dlib_embed.npz"
    logfile = settings.work / "dlib_embed.log"
    threads = str(settings.threads)  # dlib's BLAS gets the cores our side gets
    env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
    env["MKL_NUM_THREADS"] = threads
    cmd = [str(python), str(DLIB_SIDE), "embed", "--images", str(images), "--out", str(npz)]
    cmd += ["--result", str(result), "--warmup", str(settings.warmup)]
    data = run_child(cmd, env, logfile, result)
    with np.load(npz) as arrays:
        data["descriptors"] = np.asarray(arrays["descriptors"], dtype=np.float64)  # (N, 128)
    return data


# ----------------------------------------------------------------------------- verification
def fold_pairs(
    samples: Sequence[FaceSample], fold: FoldResult
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    """The fold's test pairs as indices into ``samples``, and whether each is one person.

    Rebuilt exactly as ``training.verification.evaluate_verifier`` builds them: the test
    people's faces in sample order, labelled by their index among the sorted people, then
    ``all_eval_pairs(labels, default_rng(fold.seed))``.
    """
    people = sorted(fold.test_people)
    index = {p: i for i, p in enumerate(people)}
    rows = np.array([i for i, s in enumerate(samples) if s.identity in index], dtype=np.int64)
    labels = np.array([index[samples[i].identity] for i in rows], dtype=np.int64)
    idx1, idx2, y = all_eval_pairs(labels, np.random.default_rng(fold.seed))
    return rows[idx1], rows[idx2], y == 0


def dlib_folds(
    samples: Sequence[FaceSample], cv: CrossValidation, descriptors: NDArray[np.float64]
) -> list[Calibration]:
    """dlib's test metrics on each fold's pairs (Euclidean distance between descriptors)."""
    tests = []
    for fold in cv.folds:
        a, b, same = fold_pairs(samples, fold)
        cal = calibrate(np.linalg.norm(descriptors[a] - descriptors[b], axis=1), same)
        if (cal.n_same, cal.n_different) != (fold.test.n_same, fold.test.n_different):
            raise RuntimeError(
                f"fold {fold.fold}: dlib's pairs are not the ones ours was tested on"
            )
        tests.append(cal)
    return tests


def summarise(tests: Sequence[Calibration]) -> Json:
    """Per-fold metrics, and their mean and population std (as ``CrossValidation`` has them)."""
    per_fold = [{m: float(getattr(t, m)) for m in METRICS} for t in tests]
    for t, row in zip(tests, per_fold, strict=True):
        row.update(n_same=t.n_same, n_different=t.n_different)
    values = {m: np.array([row[m] for row in per_fold]) for m in METRICS}
    return {
        "folds": per_fold,
        "mean": {m: float(v.mean()) for m, v in values.items()},
        "std": {m: float(v.std()) for m, v in values.items()},
    }


def verification(settings: Settings, dlib_python: Path) -> Json:
    """Our verifier (trained per fold), dlib and raw pixels on the same folds and pairs."""
    samples = load_identity_folder(settings.orl)
    log(f"dlib descriptors of {len(samples)} ORL faces")
    dlib = dlib_descriptors(dlib_python, settings, samples)
    fit = fit_config_from_args(DEFAULT_VERIFIER_FIT_CONFIG, {"minutes": settings.verifier_minutes})
    config = dataclasses.replace(DEFAULT_VERIFIER_TRAIN_CONFIG, fit_config=fit)
    budget = fit.max_minutes
    log(f"training our verifier on {settings.folds} people-disjoint folds ({budget:g} min each)")
    cv = cross_validate(samples, settings.folds, config, on_fold=lambda fold: log(fold_line(fold)))
    size = config.embedding_config.input_size  # the crops cross_validate trains on
    folds = [
        {
            "fold": f.fold,
            "seed": f.seed,
            "people": [len(f.train_people), len(f.val_people), len(f.test_people)],
            "epochs": f.epochs,
            "best_epoch": f.best_epoch,
            "seconds": f.seconds,
            "stopped_reason": f.stopped_reason,
        }
        for f in cv.folds
    ]
    return {
        "ours": summarise([f.test for f in cv.folds]),
        "dlib": summarise(dlib_folds(samples, cv, dlib.pop("descriptors"))),
        "pixels": summarise(pixel_baseline(samples, cv, size)),
        "pixel_size": size,
        "fold_details": folds,
        "minutes_per_fold": budget,
        "dlib_side": dlib,
    }


# ----------------------------------------------------------------------------- detection
def face_layout(settings: Settings) -> YoloLayout:
    """face_mask in YOLO layout as the app imports it: classes merged, its split, no repeats."""
    out = settings.work / "yolo"
    return convert(
        settings.face_mask,
        out,
        class_map=FACE_CLASSES,
        split_seed=SPLIT_SEED,
        drop_duplicates=True,
    )


def detection(settings: Settings, python: Path, layout: YoloLayout) -> Json:
    """Our face detector and YOLOv8n (same budget) scored by our metric on the test split."""
    return {
        **compare_detectors(python, settings, layout, settings.ours_detector),
        "test_images": len(test_records(layout)),
        "split_sizes": {k: len(v) for k, v in layout.split_stems.items()},
        "duplicates": layout.duplicates,
    }


# ----------------------------------------------------------------------------- latency
def embedding_latency(net: AnyVerifier, images: Sequence[Any], settings: Settings) -> Json:
    """Median seconds of crop, to_tensor and forward for batches of 1 and 32 whole-image faces."""
    size = net.input_size
    out: Json = {}
    with torch.inference_mode():
        for n in (1, 32):
            batch = list(images[:n])
            crop, tensor, forward = timed_medians(
                [
                    lambda imgs: [crop_face(i, None, margin=FACE_MARGIN, size=size) for i in imgs],
                    to_tensor,
                    net,
                ],
                batch,
                settings.runs,
                settings.warmup,
            )
            total = crop + tensor + forward
            out[str(n)] = {"total_s": total, "crop_s": crop, "to_tensor_s": tensor}
            out[str(n)] |= {"forward_s": forward, "per_face_s": total / n}
    return out


def _pipeline(settings: Settings, min_face_score: float | None = None) -> FacePipeline:
    loaded = FacePipeline.from_checkpoints(
        settings.ours_verifier, None, settings.ours_detector, device="cpu"
    )
    if min_face_score is None:
        return loaded
    detector = Predictor.from_checkpoint(settings.ours_detector, device="cpu")
    return FacePipeline(loaded.verifier, loaded.threshold, detector, min_face_score=min_face_score)


def _two_photos(
    pipeline: FacePipeline, records: Sequence[Any], tries: int = 20
) -> list[tuple[str, Any]]:
    """The first two test photos in which the detector finds a face (stem, pixels)."""
    found = []
    for record in records[:tries]:
        pixels = load_rgb(record.image_path)
        try:
            pipeline.find_faces(pixels)
        except NoFaceFound:
            continue
        found.append((record.stem, pixels))
        if len(found) == 2:
            break
    return found


def verify_latency(settings: Settings, layout: YoloLayout) -> Json:
    """Median seconds of a verify request on two face_mask test photos (decoded already)."""
    pipeline, note = _pipeline(settings), ""
    photos = _two_photos(pipeline, test_records(layout))
    if len(photos) < 2:  # an untrained detector: time the same steps on its best guesses
        pipeline = _pipeline(settings, min_face_score=0.0)
        photos = _two_photos(pipeline, test_records(layout))
        note = "the detector found no face at its serving score: timed with min_face_score 0"
    (stem_a, a), (stem_b, b) = photos

    def detect(_: Any) -> tuple[FoundFace, FoundFace]:
        return pipeline.find_faces(a).faces[0], pipeline.find_faces(b).faces[0]

    def embed_compare(faces: tuple[FoundFace, FoundFace]) -> Any:
        emb = pipeline.embed([faces[0].crop, faces[1].crop])
        return pipeline.compare(emb[0], emb[1])

    detect_s, embed_s = timed_medians([detect, embed_compare], None, settings.runs, settings.warmup)
    return {
        "total_s": detect_s + embed_s,
        "detect_crop_s": detect_s,
        "embed_compare_s": embed_s,
        "photos": [stem_a, stem_b],
        "sizes": [list(a.shape[:2]), list(b.shape[:2])],
        "faces_found": [len(pipeline.find_faces(p).faces) for p in (a, b)],
        "note": note,
    }


def gallery_latency(dim: int, threshold: float, settings: Settings) -> Json:
    """Median seconds of one query's top-5 search among 10,000 random unit embeddings."""
    rng = np.random.default_rng(0)
    enrolled = rng.standard_normal((GALLERY_FACES, dim)).astype(np.float32)
    enrolled /= np.linalg.norm(enrolled, axis=1, keepdims=True)
    query = rng.standard_normal((1, dim)).astype(np.float32)
    query /= np.linalg.norm(query)
    t0 = time.perf_counter()
    gallery = Gallery(enrolled, np.arange(GALLERY_FACES) // GALLERY_FACES_PER_SUBJECT)
    build = time.perf_counter() - t0
    (search,) = timed_medians(
        [lambda q: gallery.search(q, threshold, top_k=5)], query, settings.runs, settings.warmup
    )
    return {
        "search_s": search,
        "build_s": build,
        "faces": len(gallery),
        "subjects": gallery.subject_count,
        "dim": dim,
    }


def latency(settings: Settings, layout: YoloLayout, dlib_face_s: float) -> Json:
    """Every latency row, ours and dlib's per-face time (measured on ORL by the dlib side)."""
    net, extra = load_verifier(settings.ours_verifier, device="cpu")
    samples = load_identity_folder(settings.orl)[:32]
    images = [load_rgb(s.image_path) for s in samples]
    log("latency: our embedding")
    embed = embedding_latency(net, images, settings)
    log("latency: verify request")
    verify = verify_latency(settings, layout)
    log("latency: 1:K search")
    threshold = float(extra.get("threshold", 1.0))
    search = gallery_latency(net.output_dim, threshold, settings)
    return {
        "embedding": embed,
        "verify": verify,
        "gallery": search,
        "dlib_face_s": dlib_face_s,
        "threads": torch.get_num_threads(),
        "verifier_config": verifier_config(net),
        "verifier_parameters": sum(p.numel() for p in net.parameters()),
    }


# ----------------------------------------------------------------------------- report
def _speed_ratio(ours_s: float, theirs_s: float) -> str:
    return f"{ours_s / theirs_s:.3f} ({theirs_s / ours_s:.0f}x faster)"


def _rate(summary: Json, metric: str) -> str:
    """``mean ± std`` over folds: rates in percent, AUC as a fraction."""
    mean, std = summary["mean"][metric], summary["std"][metric]
    if metric == "auc":
        return f"{mean:.3f} ± {std:.3f}"
    return f"{100 * mean:.1f} ± {100 * std:.1f}%"


def _wins(ours: Json, theirs: Json, metric: str, lower_is_better: bool) -> str:
    pairs = zip(ours["folds"], theirs["folds"], strict=True)
    wins = sum((a[metric] <= b[metric]) == lower_is_better for a, b in pairs)
    return f"ours better or equal on {wins} of {len(ours['folds'])} folds"


def target_rate(ours: Json, theirs: Json, metric: str, lower_is_better: bool) -> str:
    """Mean over folds: ours <= theirs (EER) or ours >= theirs (TAR), in points."""
    a, b = ours["mean"][metric], theirs["mean"][metric]
    gap = 100 * (b - a if lower_is_better else a - b)  # > 0: ours is better
    wins = _wins(ours, theirs, metric, lower_is_better)
    if gap >= 0:
        return f"PASS (by {gap:.1f} points; {wins})"
    return f"FALL SHORT by {-gap:.1f} points ({wins})"


def verification_rows(v: Json) -> list[str]:
    """ORL rows: ours vs dlib on the same pairs, then the raw-pixel context row."""
    ours, dlib, pixels = v["ours"], v["dlib"], v["pixels"]
    n = len(ours["folds"])
    where = f"ORL, {n} people-disjoint folds, mean ± std"
    rows = [
        table_row(
            f"verification EER ({where})",
            _rate(ours, "eer"),
            _rate(dlib, "eer"),
            rate_ratio(ours["mean"]["eer"], dlib["mean"]["eer"]),
            "ours ≤ dlib",
            target_rate(ours, dlib, "eer", lower_is_better=True),
        ),
        table_row(
            "verification AUC (same folds and pairs)",
            _rate(ours, "auc"),
            _rate(dlib, "auc"),
            rate_ratio(ours["mean"]["auc"], dlib["mean"]["auc"]),
        ),
        table_row(
            "verification TAR@FAR=1% (same folds and pairs)",
            _rate(ours, "tar_at_far_1pct"),
            _rate(dlib, "tar_at_far_1pct"),
            rate_ratio(ours["mean"]["tar_at_far_1pct"], dlib["mean"]["tar_at_far_1pct"]),
            "ours ≥ dlib",
            target_rate(ours, dlib, "tar_at_far_1pct", lower_is_better=False),
        ),
    ]
    triple = [("eer", "EER"), ("auc", "AUC"), ("tar_at_far_1pct", "TAR@1%")]
    rows.append(
        table_row(
            f"context: raw standardised {v['pixel_size']} px pixels instead of dlib "
            "(EER / AUC / TAR@FAR=1%, means)",
            " / ".join(_mean_text(ours, m) for m, _ in triple),
            " / ".join(_mean_text(pixels, m) for m, _ in triple),
        )
    )
    details = v["fold_details"]
    minutes = np.mean([f["seconds"] for f in details]) / 60
    epochs = "/".join(f"{f['epochs']}({f['best_epoch'] + 1})" for f in details)
    rows.append(
        table_row(
            "verifier training per fold (ours: epochs (best) per fold)",
            f"{minutes:.1f} min, {epochs}",
            "pretrained (about 3 M faces of 7,485 people)",
        )
    )
    return rows


def _mean_text(summary: Json, metric: str) -> str:
    mean = summary["mean"][metric]
    return f"{mean:.3f}" if metric == "auc" else f"{100 * mean:.1f}%"


def latency_rows(s: Json) -> list[str]:
    """Embedding per face vs dlib, the verify request and the 1:K search, in ms."""
    dlib_s = s["dlib_face_s"]
    labels = {
        "1": "embedding per face, batch 1, ms (ours: crop + standardise + forward; "
        "dlib: 5-point landmarks + descriptor, one face per call)",
        "32": "embedding per face, batch 32, ms per face (dlib: the same one-face time)",
    }
    rows = []
    for n, label in labels.items():
        ours_s = s["embedding"][n]["per_face_s"]
        rows.append(
            table_row(
                label, f"{1000 * ours_s:.2f}", f"{1000 * dlib_s:.1f}", _speed_ratio(ours_s, dlib_s)
            )
        )
    v, g = s["verify"], s["gallery"]
    rows.append(
        table_row(
            "verify request, 2 photos (detect + crop + embed + compare), ms",
            f"{1000 * v['total_s']:.1f} (detection {100 * v['detect_crop_s'] / v['total_s']:.0f}%)",
        )
    )
    rows.append(
        table_row(
            f"1:K search, 1 query among {g['faces']:,} enrolled faces ({g['subjects']:,} "
            "subjects), ms",
            f"{1000 * g['search_s']:.2f}",
        )
    )
    return rows


def render(r: Json) -> str:
    """The one markdown table plus the notes needed to read it."""
    dlib_v = r["verification"]["dlib_side"]["versions"]
    ultra = r["detection"]["theirs"]["evaluate"]["versions"]["ultralytics"]
    head = [
        table_row(
            "metric",
            "ours",
            f"theirs (verification: dlib {dlib_v['dlib']}; detection: YOLOv8n, "
            f"Ultralytics {ultra})",
            "ours / theirs",
            "target",
            "result",
        ),
        table_row(*["---"] * COLUMNS),
    ]
    title = "## Faces benchmark: ORL verification, face_mask detection, CPU latency"
    if r["quick"]:
        title += " (QUICK SMOKE TEST: our numbers are not meaningful)"
    lines = [title, "", *head, *verification_rows(r["verification"])]
    d = r["detection"]
    detection_ = detection_rows(d, f"face_mask test split ({d['test_images']} images)")
    lines += [*detection_, *latency_rows(r["latency"]), "", *notes(r)]
    return "\n".join(lines) + "\n"


def notes(r: Json) -> list[str]:
    """How each number was taken, and what could skew it."""
    v, d, s = r["verification"], r["detection"], r["latency"]
    folds = v["ours"]["folds"]
    pairs = "/".join(str(f["n_same"]) for f in folds)
    attempts = r["theirs_network_attempts"]
    lines = [
        f"- {r['machine']}; torch {r['versions']['torch']}, {s['threads']} thread(s); load "
        f"average {r['load_before']:.2f} before, {r['load_after']:.2f} after (anything well "
        "above 0 means other work shared the cores).",
        f"- Verification: `training.crossval.cross_validate` (seed 0), our verifier trained "
        f"per fold with its defaults, {v['minutes_per_fold']:g} min budget per fold; each fold "
        f"tested on its people's every same-person pair ({pairs}) and as many different-person "
        "pairs (`all_eval_pairs`, the fold's seed). dlib: "
        f"{v['dlib_side']['model_files']['resnet']} on 5-point landmarks "
        f"({v['dlib_side']['model_files']['landmarks']}), whole image as the face box, "
        "Euclidean distance, exactly the same pairs. Rates from `calibrate` "
        "(EER interpolated; TAR at the most accepting threshold with FAR ≤ 1%). "
        "Means ± population std over folds.",
        f"- Detection: face_mask's three classes merged into `face`; split by "
        f"`deterministic_split(stems, seed={SPLIT_SEED})` as the app's VOC importer does "
        f"(train/val/test {d['split_sizes']['train']}/{d['split_sizes']['val']}/"
        f"{d['split_sizes']['test']}; {len(d['duplicates'])} repeated photos left out as the "
        "importer leaves them out). Predictions at score ≥ 0.001 (theirs: conf 0.001, NMS "
        f"IoU 0.7, max_det 300, at {r['imgsz']} px) scored by "
        "`inference.metrics.evaluate_detections` (COCO interpolation, 100 detections per image).",
        f"- Latency: median of {r['runs']} runs after {r['warmup']} warm-up. Embedding: ORL "
        "images already decoded, whole image as the face; dlib's time is the median over the "
        f"{v['dlib_side']['n_faces']} ORL faces it embedded. Verify request: photos "
        f"{', '.join(s['verify']['photos'])} already decoded (largest face of each), through "
        "`FacePipeline` with both checkpoints. 1:K: `Gallery.search`, top 5, random unit "
        f"vectors of our {s['gallery']['dim']} dimensions.",
        f"- Ultralytics network attempts (refused): {', '.join(attempts) or 'none'}.",
    ]
    if s["verify"]["note"]:
        lines.append(f"- Verify request: {s['verify']['note']}.")
    return lines


# ----------------------------------------------------------------------------- main
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Our face models vs dlib and YOLOv8n.")
    p.add_argument("--ours-detector", type=Path, required=True, help="face detector checkpoint")
    p.add_argument("--ours-verifier", type=Path, required=True, help="verifier (latency only)")
    p.add_argument("--verifier-minutes", type=float, help="our per-fold budget (default: ours)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--orl", type=Path, default=DATA / "att_faces" / "faces")
    p.add_argument("--face-mask", type=Path, default=DATA / "face_mask")
    add_shared_arguments(p, Path("/tmp/bench-faces"))
    return p


def settings_from_args(argv: Sequence[str] | None = None) -> Settings:
    """Parse and check the command line; YOLOv8n's budget defaults to our training time."""
    args, shared = parse_shared(_parser(), argv, detector="ours_detector")
    return Settings(
        **shared,
        ours_detector=args.ours_detector,
        ours_verifier=args.ours_verifier,
        orl=args.orl,
        face_mask=args.face_mask,
        folds=args.folds,
        verifier_minutes=args.verifier_minutes or (0.1 if args.quick else None),
    )


def run(settings: Settings) -> Json:
    """The whole benchmark; returns every number."""
    torch.set_num_threads(settings.threads)
    settings.work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    # Both bench-only venvs first: a failed install should not come after a long training.
    dlib_python, ultralytics_python = ensure_dlib_venv(), ensure_venv()
    layout = face_layout(settings)
    detection_ = detection(settings, ultralytics_python, layout)
    verification_ = verification(settings, dlib_python)
    latency_ = latency(settings, layout, verification_["dlib_side"]["median_face_s"])
    theirs = detection_["theirs"]
    return {
        "ours_detector": str(settings.ours_detector),
        "ours_verifier": str(settings.ours_verifier),
        "verification": verification_,
        "detection": detection_,
        "latency": latency_,
        "versions": {"torch": torch.__version__},
        **run_facts(settings, load_before, [theirs.get("train"), theirs["evaluate"]]),
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Run, print the table, write ``faces.md`` and ``faces.json``."""
    settings = settings_from_args(argv)
    result = run(settings)
    write_report(settings.out, "faces", render(result), result)


if __name__ == "__main__":
    main()
