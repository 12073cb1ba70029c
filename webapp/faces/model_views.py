"""Verifier reports: every verifier version, its ROC and distance histograms, activation.

The numbers come from ``ModelVersion.metrics`` as ``train_verifier`` writes them:
``threshold``, ``threshold_rule``, ``calibration`` (a ``Calibration.to_dict()``) and the
``val`` / ``test`` / ``unseen`` summaries. A version without a readable calibration is
shown as "not calibrated" rather than failing the page.
"""

from __future__ import annotations

import math
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from training.models import ModelKind, ModelVersion
from webapp.accounts.models import signed_in_user
from webapp.accounts.permissions import user_is_admin
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


def _verifiers() -> Any:
    return ModelVersion.objects.filter(kind=ModelKind.VERIFIER).select_related("dataset")


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


@require_GET
def model_list(request: HttpRequest) -> HttpResponse:
    rows = [version_row(v) for v in _verifiers()]
    return render(
        request,
        "faces/models.html",
        {"rows": rows, "detector": ModelVersion.active(ModelKind.FACE_DETECTOR)},
    )


@require_GET
def model_report(request: HttpRequest, version_id: int) -> HttpResponse:
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
