"""Job handlers that belong to images: dataset statistics."""

from __future__ import annotations

from typing import Any

from inference.stats import ChannelStats
from webapp.images.models import Image
from webapp.images.pixels import image_rgb
from webapp.jobs.errors import JobError
from webapp.jobs.models import JobKind
from webapp.jobs.registry import register
from webapp.jobs.runner import JobContext


@register(JobKind.IMAGE_STATS, uses_model=False)
def image_stats(ctx: JobContext) -> dict[str, Any]:
    """Mean and std per RGB channel over every image of the job's dataset."""
    if ctx.job.dataset_id is None:
        raise JobError("This job needs a dataset.")
    ids = list(Image.objects.filter(dataset_id=ctx.job.dataset_id).values_list("pk", flat=True))
    if not ids:
        raise JobError("The dataset has no images yet.")
    stats = ChannelStats()
    skipped: list[str] = []
    for done, image in enumerate(Image.objects.filter(pk__in=ids).iterator(), start=1):
        try:
            stats.update(image_rgb(image))
        except (OSError, ValueError) as exc:
            skipped.append(f"{image}: {exc}")
        ctx.progress(done / len(ids), f"{done} of {len(ids)} images")
    if stats.count == 0:
        raise JobError("None of the dataset's images could be read.")
    return {
        "images": len(ids) - len(skipped),
        "pixels": stats.count,
        "mean": stats.mean(),
        "std": stats.std(),
        "skipped": skipped,
    }
