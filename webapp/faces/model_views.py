"""Model pages: every detector and verifier version, and one version's report.

A verifier's numbers come from ``ModelVersion.metrics`` as ``train_verifier`` writes them:
``threshold``, ``threshold_rule``, ``calibration`` (a ``Calibration.to_dict()``) and the
``val`` / ``test`` / ``unseen`` summaries. A version without a readable calibration is
shown as "not calibrated" rather than failing the page.

A detector's report shows its evaluations (``webapp.analysis``), the PR curves per class
and the confusion matrix of the latest finished one (or ``?evaluation=ID``; without any,
the PR curves training stored for its validation split), and its score calibration: the
curves of ``metrics["score_calibration"]``, the working threshold and the per-class ones.
"""

from __future__ import annotations

import math
from typing import Any

from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from training.models import ModelKind, ModelVersion
from webapp.accounts.models import signed_in_user
from webapp.accounts.permissions import user_can_edit, user_is_admin
from webapp.analysis.eval_pages import detector_panels, headline
from webapp.analysis.models import Evaluation
from webapp.charts import calibration_chart, is_number, pr_chart
from webapp.detection.services import scores_of
from webapp.faces import services
from webapp.faces.charts import (
    CalibrationUnreadable,
    check_calibration,
    histogram_chart,
    roc_chart,
)
from webapp.faces.views import forbidden
from webapp.jobs.models import ACTIVE_STATUSES, Job

SUMMARY_SPLITS = (
    ("val", "Validation people"),
    ("test", "Test people"),
    ("unseen", "All held-out people"),
)


DETECTOR_KINDS = (ModelKind.DETECTOR, ModelKind.FACE_DETECTOR)
# Points per stored training PR curve drawn when no evaluation has its own (thinned ones).
TRAINING_CURVE_POINTS = 200


def _verifiers() -> Any:
    return ModelVersion.objects.filter(kind=ModelKind.VERIFIER).select_related("dataset")


def _detectors() -> Any:
    return ModelVersion.objects.filter(kind__in=DETECTOR_KINDS).select_related("dataset")


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) else None


def calibration_of(version: ModelVersion) -> tuple[dict[str, Any] | None, str]:
    """The version's calibration, or None and why ("" when there is none at all)."""
    raw = (version.metrics or {}).get("calibration")
    if not raw:
        return None, ""
    try:
        return dict(check_calibration(raw)), ""
    except CalibrationUnreadable as exc:
        return None, str(exc)


def _summaries(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key, title in SUMMARY_SPLITS:
        split = metrics.get(key)
        if isinstance(split, dict):
            rates = ("eer", "auc", "tar_at_far_1pct", "tar_at_far_01pct")
            values = {k: _number(split.get(k)) for k in rates}
            counts = {k: split.get(k) for k in ("n_same", "n_different")}
            rows.append({"key": key, "title": title, **values, **counts})
    return rows


def version_row(version: ModelVersion) -> dict[str, Any]:
    """One line of the list: the headline numbers of a version."""
    calibration, _ = calibration_of(version)
    return {
        "version": version,
        "threshold": services.calibrated_threshold(version),
        "threshold_rule": str((version.metrics or {}).get("threshold_rule", "")),
        "eer": calibration["eer"] if calibration else None,
        "auc": calibration["auc"] if calibration else None,
        "tar_at_far_1pct": calibration["tar_at_far_1pct"] if calibration else None,
    }


def _recognition_threshold(version: ModelVersion, threshold: float | None) -> float | None:
    """The stricter 1:K threshold recognition uses, when it differs from verification's."""
    if threshold is None:
        return None
    stricter = services.recognition_threshold(version, threshold)
    return stricter if stricter < threshold else None


def detector_row(version: ModelVersion) -> dict[str, Any]:
    """One line of the detectors' list: the split numbers training stored, the threshold."""
    metrics = version.metrics if isinstance(version.metrics, dict) else {}
    scores = scores_of(version)

    def split(name: str, key: str) -> float | None:
        found = metrics.get(name)
        value: Any = found.get(key) if isinstance(found, dict) else None
        return float(value) if is_number(value) else None

    return {
        "version": version,
        "val_map50": split("val", "map50"),
        "test_map50": split("test", "map50"),
        "test_f1": split("test", "f1"),
        "threshold": scores.threshold,
        "scale": scores.scale,
        "evaluations": getattr(version, "evaluation_count", 0),
    }


@require_GET
def model_list(request: HttpRequest) -> HttpResponse:
    rows = [version_row(v) for v in _verifiers()]
    detectors = _detectors().annotate(evaluation_count=Count("evaluations"))
    return render(
        request,
        "faces/models.html",
        {
            "rows": rows,
            "detector_rows": [detector_row(v) for v in detectors],
            "detector": services.serving_face_detector(),
        },
    )


def _evaluations_of(version: ModelVersion) -> list[dict[str, Any]]:
    evaluations = Evaluation.objects.filter(model_version=version).select_related("dataset", "job")
    return [{"evaluation": e, "headline": headline(e.metrics)} for e in evaluations]


def _shown_evaluation(request: HttpRequest, version: ModelVersion) -> Evaluation | None:
    """``?evaluation=ID`` of this version, else its latest one with metrics."""
    done = Evaluation.objects.filter(model_version=version).exclude(metrics={})
    asked = request.GET.get("evaluation", "")
    if asked.isdigit():
        chosen = done.filter(pk=int(asked)).first()
        if chosen is not None:
            return chosen
    return done.order_by("-created_at", "-id").first()


def _thin(values: list[Any], n: int) -> list[Any]:
    step = max(1, -(-len(values) // n))
    return [*values[::step], values[-1]] if values else []


def _training_curves(version: ModelVersion) -> Any:
    """PR curves training stored for the validation split (class index keys), by name."""
    val = (version.metrics or {}).get("val")
    curves = val.get("pr_curves") if isinstance(val, dict) else None
    if not isinstance(curves, dict):
        return None
    names = list(version.class_names)
    out = {}
    for key, curve in curves.items():
        index = int(key) if str(key).isdigit() else -1
        if 0 <= index < len(names) and isinstance(curve, dict):
            out[names[index]] = {
                k: _thin(list(curve.get(k) or []), TRAINING_CURVE_POINTS)
                for k in ("recall", "precision")
            }
    return pr_chart(out) if out else None


def _class_thresholds(version: ModelVersion) -> list[dict[str, Any]]:
    """Each class's own max-F1 cut on the calibrated scale (for reference)."""
    found = (version.metrics or {}).get("per_class_threshold")
    if not isinstance(found, dict):
        return []
    names = list(version.class_names)
    rows = []
    for key, point in sorted(found.items(), key=lambda kv: str(kv[0])):
        index = int(key) if str(key).isdigit() else -1
        if isinstance(point, dict) and 0 <= index < len(names):
            keys = ("threshold", "precision", "recall", "f1", "n_gt")
            rows.append({"name": names[index], **{k: point.get(k) for k in keys}})
    return rows


def detector_report(request: HttpRequest, version: ModelVersion) -> HttpResponse:
    metrics = version.metrics if isinstance(version.metrics, dict) else {}
    scores = scores_of(version)
    shown = _shown_evaluation(request, version)
    panels = detector_panels(shown.metrics) if shown is not None else {}
    context: dict[str, Any] = {
        "version": version,
        "metrics": metrics,
        "scores": scores,
        "is_admin": user_is_admin(request.user),
        "can_edit": user_can_edit(request.user),
        "evaluations": _evaluations_of(version),
        "shown": shown,
        **panels,
        "calibration_chart": calibration_chart(
            metrics.get("score_calibration"), list(version.class_names), scores.threshold
        ),
        "class_thresholds": _class_thresholds(version),
        "splits": [(k, metrics[k]) for k in ("val", "test") if isinstance(metrics.get(k), dict)],
    }
    if context.get("pr") is None:
        context["pr"] = _training_curves(version)
        context["pr_from_training"] = context["pr"] is not None
    return render(request, "faces/model_report.html", {"is_detector": True, **context})


@require_GET
def model_report(request: HttpRequest, version_id: int) -> HttpResponse:
    found = get_object_or_404(ModelVersion.objects.select_related("dataset"), pk=version_id)
    if found.kind in DETECTOR_KINDS:
        return detector_report(request, found)
    version = get_object_or_404(_verifiers(), pk=version_id)
    metrics = version.metrics if isinstance(version.metrics, dict) else {}
    calibration, unreadable = calibration_of(version)
    log_far = request.GET.get("far", "log") != "linear"
    threshold = services.calibrated_threshold(version)
    context: dict[str, Any] = {
        **version_row(version),
        "metrics": metrics,
        "calibration": calibration,
        "unreadable": unreadable,
        "summaries": _summaries(metrics),
        "log_far": log_far,
        "is_admin": user_is_admin(request.user),
        "active": ModelVersion.active(ModelKind.VERIFIER),
        "people": metrics.get("calibration_people"),
        "evaluations": _evaluations_of(version),
    }
    recognition = _recognition_threshold(version, threshold)
    context["recognition_threshold"] = recognition
    if calibration is not None:
        lines = [(calibration["eer_threshold"], "EER threshold", "eer")]
        if threshold is not None:
            lines.append((threshold, "verification threshold", "threshold"))
        if recognition is not None:
            lines.append((recognition, "recognition threshold", "recognition"))
        context["roc"] = roc_chart(calibration, log_far=log_far)
        context["hist"] = histogram_chart(calibration, lines)
    return render(request, "faces/model_report.html", context)


def _running_reembed() -> Job | None:
    active = Job.objects.filter(kind=services.REEMBED_JOB, status__in=ACTIVE_STATUSES)
    return active.order_by("-id").first()


@require_POST
def model_activate(request: HttpRequest, version_id: int) -> HttpResponse:
    """Serve this verifier, then re-embed enrolled faces: old embeddings no longer compare."""
    if not user_is_admin(request.user):
        return forbidden(request, "activate model versions")
    version = get_object_or_404(_verifiers(), pk=version_id)
    version.activate()
    # force: switching back to an earlier verifier must re-embed again, although that
    # verifier had its job once. A job already running (started by a receiver of the
    # switch) is the one the person is told about.
    user = signed_in_user(request.user)
    job = services.schedule_reembed(user, force=True) or _running_reembed()
    note = (
        f" Enrolled faces are being re-embedded (job #{job.pk})."
        if job is not None
        else " No enrolled face needs re-embedding."
    )
    messages.success(request, f"{version.name} (#{version.pk}) now verifies faces.{note}")
    return redirect("faces:model", version.pk)
