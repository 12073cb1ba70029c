"""The ``train`` job: one trial of a training run, on the `gpu` queue (thin glue)."""

from __future__ import annotations

from typing import Any

from training.runs import run_trial
from training.trials import TrialCancelled
from webapp.jobs.models import JobKind
from webapp.jobs.registry import register
from webapp.jobs.runner import JobCancelled, JobContext


@register(JobKind.TRAIN, uses_model=True)
def train(ctx: JobContext) -> dict[str, Any]:
    def report(fraction: float, message: str) -> None:
        try:
            ctx.progress(fraction, message)
        except JobCancelled:
            raise TrialCancelled() from None

    try:
        return run_trial(int(ctx.params["trial"]), report)
    except TrialCancelled:
        raise JobCancelled() from None
