"""Import and export speed on the real sets, against baselines measured in the same run.

Run from the repository root (``make bench-labeling``)::

    .venv/bin/python -m bench.import_export                    # bccd + coco128, Ultralytics check
    .venv/bin/python -m bench.import_export --skip-ultralytics # import/export only (~1 minute)

It works on its own SQLite database and media folder under ``--work`` (default
``/tmp/bench-import-export``, wiped first), never the app's. For each set:

* **import**: ``webapp.labeling.importers.import_folder`` (read the annotations, validate
  and store every image as an upload is, boxes, split, history), images per second, against
  the **bare ingest** baseline: ``ingest_image`` on the same files with no annotations at
  all (the cost of storing an upload). The ratio is what reading and writing the labels add.
* **export** (COCO, YOLO, VOC, with splits): ``export_dataset`` to a zip, images per second,
  against **images only**: ``write_zip`` of the same image files and nothing else. Each
  export is imported again and its boxes compared with the original's (the round trip).
* **Ultralytics**: coco128's YOLO export, unzipped as it is, trained for a short wall-clock
  budget by YOLOv8n in ``bench/.venv-ultralytics`` (see ``bench/detector.py``), offline.

Prints one markdown table and writes it to ``--out/import_export.md`` with every number in
``import_export.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
Json = dict[str, Any]
# (name in the table, format, folder under --data)
SETS = (("bccd", "voc", "bccd"), ("coco128", "coco", "coco128"), ("coco128", "yolo", "coco128"))
EXPORT_FORMATS = ("coco", "yolo", "voc")
# Our import at least half as fast as storing the bare images: the labels (reading them,
# boxes, split, history) may cost at most as much as validating and storing the pixels.
IMPORT_TARGET = 0.5


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def setup_django(work: Path) -> None:
    """A private SQLite database and media folder under ``work``, migrated."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "webapp.settings"
    os.environ["DATABASE_URL"] = f"sqlite:///{work / 'bench.sqlite3'}"
    os.environ["MEDIA_ROOT"] = str(work / "media")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def clear_media(work: Path) -> None:
    """Remove stored files so each run writes its images itself (storage is by content)."""
    for sub in ("images", "thumbs"):
        shutil.rmtree(work / "media" / sub, ignore_errors=True)


def bare_ingest(paths: Sequence[Path], name: str) -> float:
    """Seconds to store ``paths`` as plain uploads (the import's baseline)."""
    from webapp.images.ingest import DuplicateImage, ingest_image
    from webapp.images.models import Dataset

    dataset = Dataset.objects.create(name=name)

    def run() -> None:
        for path in paths:
            with contextlib.suppress(DuplicateImage):  # the set's own duplicates, if any
                ingest_image(path.read_bytes(), dataset=dataset, user=None, original_name=path.name)

    _, seconds = timed(run)
    dataset.delete()
    return seconds


def compare_labels(a: Any, b: Any) -> Json:
    """Boxes of two datasets by image bytes: counts and the largest coordinate difference."""
    from webapp.images.models import Box, BoxOrigin

    def labels(dataset: Any) -> dict[str, list[tuple[str, list[float]]]]:
        out: dict[str, list[tuple[str, list[float]]]] = {}
        rows = Box.objects.filter(image__dataset=dataset, origin=BoxOrigin.HUMAN)
        for box in rows.select_related("label_class", "image"):
            out.setdefault(box.image.sha256, []).append((box.label_class.name, box.xyxy))
        return {k: sorted(v) for k, v in out.items()}

    left, right = labels(a), labels(b)
    worst = 0.0
    same = left.keys() == right.keys()
    for sha, boxes in left.items():
        other = right.get(sha, [])
        same = same and [c for c, _ in boxes] == [c for c, _ in other]
        for name, x in boxes:
            # The nearest box of the same class: YOLO's rounding can reorder near-equal boxes.
            gaps = [
                max(abs(p - q) for p, q in zip(x, y, strict=True)) for n, y in other if n == name
            ]
            worst = max(worst, min(gaps, default=float("inf")))
    return {
        "images": a.images.count(),
        "images_back": b.images.count(),
        "boxes": sum(map(len, left.values())),
        "boxes_back": sum(map(len, right.values())),
        "same_classes_per_image": same,
        "max_coordinate_diff_px": worst,
    }


def bench_export(dataset: Any, fmt: str, work: Path, label: str) -> Json:
    """One export with splits, its baseline, and its round trip."""
    from training.formats.archive import write_zip
    from webapp.images.models import Dataset
    from webapp.labeling.exporters import dataset_rows, export_dataset
    from webapp.labeling.importers import import_path

    out = work / f"{label}-{fmt}.zip"
    summary, seconds = timed(lambda: export_dataset(dataset, fmt, out, splits=True))
    images = [(f"images/{r.image_path.name}", r.image_path) for r in dataset_rows(dataset).records]
    _, baseline = timed(lambda: write_zip(work / "images-only.zip", images))
    back_name = f"{label}-{fmt}-again"
    import_path(out, fmt, name=back_name)
    back = Dataset.objects.get(name=back_name)
    trip = compare_labels(dataset, back)
    back.delete()
    return {
        "format": fmt,
        "images": summary.images,
        "seconds": seconds,
        "images_per_s": summary.images / seconds,
        "baseline_seconds": baseline,
        "baseline_images_per_s": summary.images / baseline,
        "zip_mb": out.stat().st_size / 2**20,
        "round_trip": trip,
        "path": str(out),
    }


def bench_set(label: str, fmt: str, folder: Path, work: Path) -> Json:
    """Read, bare ingest, import, then the exports of one set."""
    from training.formats import READERS
    from webapp.images.models import Dataset
    from webapp.labeling.importers import import_folder

    log(f"{label} ({fmt}): read, bare ingest, import")
    data, read_s = timed(lambda: READERS[fmt](folder))
    paths = [r.image_path for r in data.records]
    clear_media(work)
    ingest_s = bare_ingest(paths, f"{label}-{fmt}-baseline")
    clear_media(work)
    name = f"{label}-{fmt}"
    report, import_s = timed(lambda: import_folder(folder, fmt, name=name))
    dataset = Dataset.objects.get(name=name)
    n = report.images_added
    result: Json = {
        "set": label,
        "format": fmt,
        "images": n,
        "boxes": report.boxes_added,
        "classes": dataset.classes.count(),
        "warnings": len(report.problems),
        "warnings_by_code": report.as_result()["warnings_by_code"],
        "splits": report.splits,
        "read_images_per_s": len(paths) / read_s,
        "import_seconds": import_s,
        "import_images_per_s": n / import_s,
        "ingest_seconds": ingest_s,
        "ingest_images_per_s": len(paths) / ingest_s,
    }
    if fmt != "yolo":  # coco128 is exported once, from its COCO import
        result["exports"] = [bench_export(dataset, f, work, name) for f in EXPORT_FORMATS]
    return result


def ultralytics_check(yolo_zip: Path, work: Path, minutes: float, threads: int) -> Json:
    """Unzip our YOLO export as it is and let YOLOv8n train on it for ``minutes``."""
    from bench.detector import SharedSettings, ensure_venv, run_side

    folder = work / "ultralytics-data"
    shutil.rmtree(folder, ignore_errors=True)
    with zipfile.ZipFile(yolo_zip) as archive:
        archive.extractall(folder)
    (data_yaml,) = folder.glob("*/data.yaml")
    python = ensure_venv()
    settings = SharedSettings(
        work=work, out=work, threads=threads, runs=0, warmup=0, quick=True,
        budget_minutes=minutes, ours_train_seconds=None, theirs_weights=None,
        theirs_workers=0, imgsz=160,
    )  # fmt: skip
    log(f"YOLOv8n on our YOLO export ({data_yaml.parent.name}), {minutes} min budget")
    trained = run_side(
        python,
        "train",
        settings,
        *("--data", str(data_yaml), "--project", str(work / "ultralytics-runs")),
        *("--budget-minutes", str(minutes), "--imgsz", "160", "--batch", "16"),
    )
    return {"data_yaml": str(data_yaml), **trained}


def _row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _verdict(ratio: float, target: float) -> str:
    return "PASS" if ratio >= target else f"FALL SHORT ({ratio / target:.2f} of target)"


def render(result: Json) -> str:
    """The markdown tables."""
    lines = [
        "### Import",
        "",
        _row("set (format)", "images", "boxes", "classes", "warnings", "read img/s",
             "import img/s", "bare ingest img/s", "import / ingest", "target", "result"),
        _row(*["---"] * 11),
    ]  # fmt: skip
    for s in result["sets"]:
        ratio = s["import_images_per_s"] / s["ingest_images_per_s"]
        lines.append(
            _row(f"{s['set']} ({s['format']})", s["images"], s["boxes"], s["classes"],
                 s["warnings"], f"{s['read_images_per_s']:.0f}", f"{s['import_images_per_s']:.1f}",
                 f"{s['ingest_images_per_s']:.1f}", f"{ratio:.2f}", f"≥ {IMPORT_TARGET}",
                 _verdict(ratio, IMPORT_TARGET))
        )  # fmt: skip
    lines += [
        "",
        "### Export (with splits), then imported again",
        "",
        _row("set", "format", "images", "zip MB", "export img/s", "images-only zip img/s",
             "export / images-only", "round trip (imported again)"),
        _row(*["---"] * 8),
    ]  # fmt: skip
    for s in result["sets"]:
        for e in s.get("exports", []):
            ratio = e["images_per_s"] / e["baseline_images_per_s"]
            t = e["round_trip"]
            same = t["images"] == t["images_back"] and t["boxes"] == t["boxes_back"]
            trip = (
                f"{t['images_back']} images, {t['boxes_back']} boxes, max Δ "
                f"{t['max_coordinate_diff_px']:.3f} px"
                + ("" if same and t["same_classes_per_image"] else " (DIFFERS)")
            )
            lines.append(
                _row(s["set"], e["format"], e["images"], f"{e['zip_mb']:.1f}",
                     f"{e['images_per_s']:.0f}", f"{e['baseline_images_per_s']:.0f}",
                     f"{ratio:.2f}", trip)
            )  # fmt: skip
    lines += ["", *notes(result)]
    return "\n".join(lines) + "\n"


def notes(result: Json) -> list[str]:
    out = [f"- Machine: {result['machine']}; load average {result['load_before']:.2f} before, "
           f"{result['load_after']:.2f} after; {result['date']}."]  # fmt: skip
    for s in result["sets"]:
        codes = ", ".join(f"{c} {n}" for c, n in s["warnings_by_code"].items()) or "none"
        out.append(f"- {s['set']} ({s['format']}) warnings: {codes}; splits {s['splits']}.")
    u = result.get("ultralytics")
    if u is None:
        out.append("- Ultralytics check skipped (--skip-ultralytics).")
    elif "error" in u:
        out.append(f"- Ultralytics check FAILED: {u['error']}")
    else:
        out.append(
            f"- Ultralytics {u['versions']['ultralytics']} trained YOLOv8n from scratch on our "
            f"coco128 YOLO export, unzipped unchanged: {u['epochs_completed']} epoch(s) in "
            f"{u['train_call_seconds']:.0f} s (budget {u['budget_seconds']:.0f} s, 160 px), "
            f"weights {Path(u['weights']).name}; network attempts refused: "
            f"{u['network_attempts'] or 'none'}."
        )
    return out


def run(args: argparse.Namespace) -> Json:
    from bench.detector import machine

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    setup_django(args.work)
    load_before = os.getloadavg()[0]
    sets = [bench_set(label, fmt, args.data / sub, args.work) for label, fmt, sub in SETS]
    result: Json = {"sets": sets, "machine": machine(), "load_before": load_before}
    if not args.skip_ultralytics:
        from webapp.images.models import Dataset
        from webapp.labeling.exporters import export_dataset

        yolo_zip = args.work / "coco128-for-ultralytics.zip"
        export_dataset(Dataset.objects.get(name="coco128-coco"), "yolo", yolo_zip, splits=True)
        try:
            result["ultralytics"] = ultralytics_check(
                yolo_zip, args.work, args.ultralytics_minutes, args.threads
            )
        except (RuntimeError, OSError, ValueError) as error:
            result["ultralytics"] = {"error": str(error)[-2000:]}
    result.update(load_after=os.getloadavg()[0], date=time.strftime("%Y-%m-%d %H:%M:%S"))
    return result


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--work", type=Path, default=Path("/tmp/bench-import-export"))
    p.add_argument("--out", type=Path, default=BENCH / "out")
    p.add_argument("--skip-ultralytics", action="store_true")
    p.add_argument("--ultralytics-minutes", type=float, default=1.5)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    return p


def main(argv: Sequence[str] | None = None) -> None:
    from bench.detector import write_report

    args = _parser().parse_args(argv)
    result = run(args)
    write_report(args.out, "import_export", render(result), result)


if __name__ == "__main__":
    main()
