"""What a job's page shows of its result: a summary people read, not the raw JSON.

Each kind that has a summary gets a small dict the template ``jobs/_result.html`` draws;
every kind also keeps its raw result, collapsed, for those who want it. Names in results
(file names, labels) reach the page only through the template's escaping.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from webapp.images.models import Dataset, Image, LabelClass
from webapp.jobs.models import Job, JobKind

# A detect job over a whole dataset can cover thousands of images: list the first ones.
MAX_IMAGE_ROWS = 200


def _class_rows(counts: Counter[str], colors: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"label": label, "count": n, "color": colors.get(label, "#888888")}
        for label, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def _detect(job: Job, result: dict[str, Any]) -> dict[str, Any]:
    colors = {}
    if job.dataset_id:
        colors = dict(
            LabelClass.objects.filter(dataset_id=job.dataset_id).values_list("name", "color")
        )
    if "images" not in result:  # an uploaded photo, not stored: its boxes are the result
        predictions = result.get("predictions", [])
        return {
            "kind": "detect_upload",
            "model_version": result.get("model_version"),
            "classes": _class_rows(Counter(p["label"] for p in predictions), colors),
            "predictions": predictions[:MAX_IMAGE_ROWS],
            "more_predictions": max(0, len(predictions) - MAX_IMAGE_ROWS),
            "boxes": len(predictions),
        }
    per_image = result.get("images", [])
    names = dict(
        Image.objects.filter(
            pk__in=[r["image_id"] for r in per_image[:MAX_IMAGE_ROWS]]
        ).values_list("pk", "original_name")
    )
    total: Counter[str] = Counter()
    rows = []
    for done, row in enumerate(per_image):
        labels = Counter(p["label"] for p in row.get("predictions", []))
        total += labels
        if done < MAX_IMAGE_ROWS:
            rows.append(
                {
                    "image_id": row["image_id"],
                    "name": names.get(row["image_id"], "") or f"image {row['image_id']}",
                    "exists": row["image_id"] in names,
                    "boxes": sum(labels.values()),
                    "classes": ", ".join(f"{n} {label}" for label, n in sorted(labels.items())),
                }
            )
    return {
        "kind": "detect",
        "model_version": result.get("model_version"),
        "images": len(per_image),
        "boxes": sum(total.values()),
        "classes": _class_rows(total, colors),
        "rows": rows,
        "more": max(0, len(per_image) - MAX_IMAGE_ROWS),
        "inference_ms": result.get("inference_ms"),
    }


def _image_stats(job: Job, result: dict[str, Any]) -> dict[str, Any]:
    def rgb(values: list[float]) -> str:
        return "rgb({})".format(",".join(str(round(v * 255)) for v in values))

    return {
        "kind": "image_stats",
        "images": result.get("images"),
        "pixels": result.get("pixels"),
        "rows": [
            {"name": name, "values": [round(v, 4) for v in result.get(name, [])]}
            for name in ("mean", "std")
        ],
        "swatch": rgb(result.get("mean", [0, 0, 0])),
        "skipped": result.get("skipped", []),
    }


def _import(job: Job, result: dict[str, Any]) -> dict[str, Any]:
    """An import's counts per split, then every warning it kept (file and reason)."""
    dataset = result.get("dataset") or {}
    warnings = result.get("warnings", [])
    splits = result.get("splits", {})
    return {
        "kind": "import",
        "dataset_id": dataset.get("id"),
        "dataset_name": dataset.get("name", ""),
        "dataset_exists": Dataset.objects.filter(pk=dataset.get("id") or 0).exists(),
        "format": result.get("format", ""),
        "images_added": result.get("images_added", 0),
        "images_existing": result.get("images_existing", 0),
        "boxes_added": result.get("boxes_added", 0),
        "splits": [{"name": name, "count": n} for name, n in splits.items()],
        "split_source": result.get("split_source", ""),
        "by_code": [{"code": c, "count": n} for c, n in result.get("warnings_by_code", {}).items()],
        "warnings": warnings[:MAX_IMAGE_ROWS],
        "warnings_total": result.get("warnings_total", len(warnings)),
        "more_warnings": max(0, result.get("warnings_total", len(warnings)) - MAX_IMAGE_ROWS),
    }


SUMMARISERS = {JobKind.DETECT: _detect, JobKind.IMAGE_STATS: _image_stats, JobKind.IMPORT: _import}


def summarise(job: Job) -> dict[str, Any] | None:
    """The summary of a done job's result for its page, or None if its kind has none."""
    summariser = SUMMARISERS.get(JobKind(job.kind)) if job.kind in JobKind.values else None
    if summariser is None or not isinstance(job.result, dict) or "error" in job.result:
        return None
    return summariser(job, job.result)
