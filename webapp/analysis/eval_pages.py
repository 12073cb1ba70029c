"""Evaluation pages (routes in ``eval_page_urls``, under ``/analysis/``):

- ``datasets/<id>/evaluations/``: a dataset's evaluations, newest first, and (labelers,
  reviewers, admins) a form to evaluate a model version on one of its splits;
- ``datasets/<id>/evaluations/start/`` (POST): the same checks as the API, then the job;
- ``evaluations/<id>/``: the metrics and charts, the mistakes by kind, the images most
  likely mislabelled, and the link to the error spreadsheet.

:func:`detector_panels` builds the detector charts (PR curves per class, the confusion
matrix as a heat-map) for this page and for the detector's model page
(``webapp.faces.model_views``). Everything reaches the page through the template, which
escapes it; no data is written into the page as HTML.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib import messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_POST

from training.models import ModelKind, ModelVersion
from training.splits import SPLIT_SCHEME
from webapp.accounts.models import signed_in_user
from webapp.accounts.permissions import user_can_edit
from webapp.analysis.evaluate import EVALUATED_ON, check_request, start_evaluation
from webapp.analysis.models import ErrorKind, Evaluation, LabelErrorKind
from webapp.charts import heatmap, is_number, pr_chart
from webapp.faces.charts import CalibrationUnreadable, check_calibration, histogram_chart, roc_chart
from webapp.faces.views import forbidden
from webapp.images.models import Dataset, Image, Split, SplitAssignment
from webapp.jobs.errors import JobError

PER_CLASS_METRICS = ("ap50", "ap50_95", "precision", "recall", "f1")


def sheet_url(evaluation_id: int) -> str:
    """The error spreadsheet of an evaluation (``analysis:sheet``, its own module)."""
    try:
        return reverse("analysis:sheet", args=[evaluation_id])
    except NoReverseMatch:  # the sheet's routes are another module's; its path is fixed
        return f"/analysis/evaluations/{evaluation_id}/sheet/"


# ----------------------------------------------------------------------------- list
def fitting_versions(dataset: Dataset) -> QuerySet[ModelVersion]:
    """The model versions that can be evaluated on ``dataset`` (its task's kinds)."""
    kinds = [k for k, task in EVALUATED_ON.items() if task == dataset.task]
    return ModelVersion.objects.filter(kind__in=kinds).order_by("-is_active", "-created_at")


def split_counts(dataset: Dataset) -> list[dict[str, Any]]:
    """Each split with its number of images (the form says which are empty)."""
    rows = (
        SplitAssignment.objects.filter(image__dataset=dataset, scheme=SPLIT_SCHEME)
        .values("split")
        .annotate(n=Count("id"))
    )
    counts = {r["split"]: r["n"] for r in rows}
    return [{"value": v, "label": label, "images": counts.get(v, 0)} for v, label in Split.choices]


@require_GET
def evaluations_page(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = get_object_or_404(Dataset, pk=dataset_id)
    evaluations = Evaluation.objects.filter(dataset=dataset).select_related("model_version", "job")
    rows = [{"evaluation": e, "headline": headline(e.metrics)} for e in evaluations]
    return render(
        request,
        "analysis/evaluations.html",
        {
            "dataset": dataset,
            "rows": rows,
            "versions": list(fitting_versions(dataset)),
            "splits": split_counts(dataset),
            "can_edit": user_can_edit(request.user),
            "default_split": Split.VAL,
        },
    )


@require_POST
def evaluation_start(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """The page's form: the API's checks, then the job; refusals come back as a message."""
    if not user_can_edit(request.user):
        return forbidden(request, "start evaluations")
    dataset = get_object_or_404(Dataset, pk=dataset_id)
    try:
        checked = check_request(
            request.POST.get("model_version"), dataset.pk, request.POST.get("split")
        )
    except JobError as exc:
        messages.error(request, exc.message)
        return redirect("analysis:evaluations", dataset.pk)
    evaluation = start_evaluation(checked, signed_in_user(request.user))
    messages.success(
        request,
        f"Evaluating {checked.version.name} (#{checked.version.pk}) on the {checked.split} "
        f"split: job #{evaluation.job_id}.",
    )
    return redirect("analysis:evaluation", evaluation.pk)


# ----------------------------------------------------------------------------- one evaluation
def headline(metrics: Any) -> dict[str, Any]:
    """The few numbers a list row shows."""
    m = metrics if isinstance(metrics, Mapping) else {}
    keys = ("map50", "f1", "precision", "recall", "eer", "auc", "error_cases", "score_threshold")
    return {k: m[k] for k in keys if is_number(m.get(k))}


def per_class_rows(metrics: Mapping[str, Any], names: list[str]) -> list[dict[str, Any]]:
    """One row per class: AP@0.5, AP@[.5:.95], and precision/recall/F1 at the threshold."""
    ap50 = metrics.get("per_class_ap50") or {}
    ap = metrics.get("per_class_ap50_95") or {}
    at = metrics.get("per_class") or {}
    rows = []
    for name in names:
        found = at.get(name)
        point: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        rows.append(
            {
                "name": name,
                "ap50": ap50.get(name),
                "ap50_95": ap.get(name),
                "precision": point.get("precision"),
                "recall": point.get("recall"),
                "f1": point.get("f1"),
            }
        )
    return rows


def detector_panels(metrics: Any) -> dict[str, Any]:
    """PR curves per class, the confusion heat-map and the per-class table of a detector
    evaluation's metrics (keys absent when their data is)."""
    m = metrics if isinstance(metrics, Mapping) else {}
    names = [str(n) for n in m.get("class_names") or []]
    operating = {}
    for name, point in (m.get("per_class") or {}).items():
        if isinstance(point, Mapping) and is_number(point.get("recall")):
            operating[str(name)] = (float(point["recall"]), float(point.get("precision") or 0.0))
    curves = m.get("pr_curves")
    matrix = m.get("confusion_matrix") if isinstance(m.get("confusion_matrix"), Mapping) else {}
    labels = [str(x) for x in (matrix or {}).get("labels") or []]
    return {
        "pr": pr_chart(curves, operating) if isinstance(curves, Mapping) else None,
        "confusion": heatmap((matrix or {}).get("matrix"), labels) if labels else None,
        "confusion_labels": labels,
        "per_class": per_class_rows(m, names),
    }


def verifier_panels(metrics: Any) -> dict[str, Any]:
    """The ROC and the distance histograms of a verifier evaluation, with its threshold."""
    m = metrics if isinstance(metrics, Mapping) else {}
    try:
        calibration = check_calibration(m.get("calibration"))
    except CalibrationUnreadable:
        return {}
    lines = [(float(calibration["eer_threshold"]), "EER threshold", "eer")]
    if is_number(m.get("threshold")):
        lines.append((float(m["threshold"]), "verification threshold", "threshold"))
    return {
        "roc": roc_chart(calibration),
        "hist": histogram_chart(calibration, lines),
        "calibration": calibration,
    }


def _kind_rows(evaluation: Evaluation) -> list[dict[str, Any]]:
    counts = dict(
        evaluation.cases.values_list("kind").annotate(n=Count("id")).values_list("kind", "n")
    )
    total = sum(counts.values())
    return [
        {"kind": k, "label": label, "count": counts[k], "share": counts[k] / total}
        for k, label in ErrorKind.choices
        if counts.get(k)
    ]


def _suspect_images(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The images most likely mislabelled, with their rows (for names and links)."""
    top = (metrics.get("label_errors") or {}).get("top_images") or []
    ids = [int(i["image"]) for i in top if isinstance(i, Mapping) and is_number(i.get("image"))]
    images = Image.objects.in_bulk(ids)
    return [
        {"image": images[int(i["image"])], "score": i.get("score")}
        for i in top
        if isinstance(i, Mapping) and int(i.get("image", -1)) in images
    ]


def _likely(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Cases per suspected kind of label error (score >= 0.5), named."""
    counts = (metrics.get("label_errors") or {}).get("likely") or {}
    return [
        {"kind": k, "label": label, "count": counts[k]}
        for k, label in LabelErrorKind.choices
        if k and is_number(counts.get(k))
    ]


@require_GET
def evaluation_page(request: HttpRequest, evaluation_id: int) -> HttpResponse:
    evaluation = get_object_or_404(
        Evaluation.objects.select_related("model_version", "dataset", "job"), pk=evaluation_id
    )
    metrics = evaluation.metrics if isinstance(evaluation.metrics, dict) else {}
    is_verifier = evaluation.model_version.kind == ModelKind.VERIFIER
    context: dict[str, Any] = {
        "evaluation": evaluation,
        "version": evaluation.model_version,
        "metrics": metrics,
        "job": evaluation.job,
        "done": bool(metrics),
        "is_verifier": is_verifier,
        "sheet_url": sheet_url(evaluation.pk),
        "kinds": _kind_rows(evaluation),
        "likely": _likely(metrics),
        "suspects": _suspect_images(metrics),
    }
    context.update(verifier_panels(metrics) if is_verifier else detector_panels(metrics))
    return render(request, "analysis/evaluation.html", context)
