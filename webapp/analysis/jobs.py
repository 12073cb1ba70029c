"""The ``evaluate`` job: carry out one recorded :class:`Evaluation` (on the ``gpu`` queue).

The request was checked and the row made by ``webapp.analysis.evaluate.start_evaluation``;
the job only names the evaluation. One deleted meanwhile ends the job with a plain message.
"""

from __future__ import annotations

from typing import Any

from webapp.analysis.evaluate import run_evaluation
from webapp.analysis.models import Evaluation
from webapp.jobs.errors import JobError
from webapp.jobs.models import JobKind
from webapp.jobs.registry import register
from webapp.jobs.runner import JobContext

# The numbers a job's result repeats from the evaluation (the rest is on the evaluation).
RESULT_KEYS = (
    "map50",
    "map50_95",
    "precision",
    "recall",
    "f1",
    "score_threshold",
    "eer",
    "auc",
    "threshold",
    "error_rate",
    "error_cases",
    "images",
    "seconds",
)


@register(JobKind.EVALUATE, uses_model=True)
def evaluate(ctx: JobContext) -> dict[str, Any]:
    evaluation_id = ctx.params.get("evaluation")
    evaluation = None
    if isinstance(evaluation_id, int):
        evaluation = (
            Evaluation.objects.select_related("model_version", "dataset")
            .filter(pk=evaluation_id)
            .first()
        )
    if evaluation is None:
        raise JobError(
            f"Evaluation {evaluation_id} no longer exists.", code="unknown_evaluation", status=404
        )
    ctx.progress(0.0, "Loading the model and the split …", force=True)
    metrics = run_evaluation(evaluation, ctx.progress)
    return {
        "evaluation": evaluation.pk,
        "url": f"/analysis/evaluations/{evaluation.pk}/",
        **{k: metrics[k] for k in RESULT_KEYS if k in metrics},
    }
