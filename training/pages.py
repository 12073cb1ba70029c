"""Training pages: start a run, watch it, read its diagnosis; splits; the model registry."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from training import registry, runs
from training.backbones import store_backbone
from training.models import ModelKind, ModelVersion, Promotion, TrainingRun
from training.run_config import BACKBONES, RunConfig, RunConfigError, SearchSpec
from training.run_views import run_json
from training.split_service import SplitRequest, build_splits, split_report
from webapp.accounts.models import signed_in_user
from webapp.accounts.permissions import user_can_edit, user_is_admin
from webapp.api.ids import parse_id
from webapp.images.models import Dataset, Image
from webapp.jobs.errors import JobError

BACKBONE_LABELS = {
    "ours": "Ours (detector: the shipped backbone; verifier: our net from scratch)",
    "resnet18": "ResNet-18 (detector, torchvision; bring ImageNet weights)",
    "mobilenet_v3_small": "MobileNetV3-Small (detector, torchvision; bring ImageNet weights)",
    "dlib": "dlib's pretrained face embedding (verifier; our layer trained on your people)",
    "onnx": "Your ONNX face embedding (verifier; ArcFace-style file below)",
}


class RunForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.order_by("name"))
    task = forms.ChoiceField(
        choices=[
            ("detector", "Object detector"),
            ("face_detector", "Face detector (finds the faces the verifier compares)"),
            ("verifier", "Face verifier"),
        ]
    )
    minutes = forms.FloatField(
        required=False, min_value=0.1, max_value=7 * 24 * 60, label="Budget (minutes)"
    )
    epochs = forms.IntegerField(
        required=False, min_value=1, max_value=10_000, label="or epochs per trial"
    )
    search_trials = forms.IntegerField(
        required=False, min_value=2, max_value=64, label="Random search: trials (empty: one trial)"
    )
    start_from = forms.ModelChoiceField(
        queryset=ModelVersion.objects.exclude(kind=ModelKind.VERIFIER),
        required=False,
        label="Fine-tune from (empty: from scratch)",
    )
    whole_image_faces = forms.ModelChoiceField(
        queryset=Dataset.objects.filter(task="faces").order_by("name"),
        required=False,
        label="Face detector: add this faces dataset's one-face photos as whole-photo faces",
    )
    backbone = forms.ChoiceField(
        choices=[(b, BACKBONE_LABELS[b]) for b in (*BACKBONES, "dlib", "onnx")],
        initial="ours",
        label="Backbone",
    )
    backbone_file = forms.FileField(
        required=False,
        label="Pretrained backbone file (.pth / .safetensors for a detector, .onnx for faces)",
    )
    freeze_blocks = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=20,
        label="Freeze the first N blocks (empty: by the amount of data)",
    )
    latency_ms = forms.FloatField(
        required=False, min_value=0.01, label="Winner's CPU latency at most (ms)"
    )
    size_mb = forms.FloatField(required=False, min_value=0.01, label="Winner's size at most (MB)")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("minutes") and data.get("epochs"):
            raise forms.ValidationError("Give a budget in minutes or in epochs, not both.")
        return data

    def config(self) -> RunConfig:
        data = self.cleaned_data
        trials = data.get("search_trials")
        start = data.get("start_from")
        limits = {k: data[k] for k in ("latency_ms", "size_mb") if data.get(k)}
        return RunConfig(
            task=data["task"],
            minutes=data.get("minutes"),
            epochs=data.get("epochs"),
            search=SearchSpec(trials=trials) if trials else None,
            start_from=start.pk if start else None,
            whole_image_faces=faces.pk if (faces := data.get("whole_image_faces")) else None,
            backbone=data.get("backbone") or "ours",
            freeze_blocks=data.get("freeze_blocks"),
            satisficing=limits,
        )


@require_http_methods(["GET", "POST"])
def training_page(request: HttpRequest) -> HttpResponse:
    form = RunForm(
        request.POST or None,
        request.FILES or None,
        initial={"dataset": request.GET.get("dataset")},
    )
    if request.method == "POST":
        if not user_can_edit(request.user):
            messages.error(request, "Your role (viewer) cannot start training.")
        elif form.is_valid():
            try:
                config = form.config()
                upload = form.cleaned_data.get("backbone_file")
                stored = store_backbone(upload)["backbone_file"] if upload else ""
                run = runs.start_run(
                    form.cleaned_data["dataset"],
                    config,
                    user=signed_in_user(request.user),
                    backbone_file=stored,
                )
            except (JobError, RunConfigError) as exc:
                messages.error(request, getattr(exc, "message", str(exc)))
            else:
                if run.status == "skipped":
                    messages.info(request, run.message)
                return redirect("training:run", run.pk)
    recent = TrainingRun.objects.select_related("dataset", "model_version")[:30]
    return render(
        request,
        "training/index.html",
        {"form": form, "runs": recent, "can_edit": user_can_edit(request.user)},
    )


@require_GET
def run_page(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(
        TrainingRun.objects.select_related("dataset", "model_version"), pk=run_id
    )
    data = run_json(run)
    version = run.model_version
    target = _serve_target(run)
    return render(
        request,
        "training/run.html",
        {
            "run": run,
            "data": data,
            "diagnosis_rows": _diagnosis_rows(run.diagnosis),
            "can_edit": user_can_edit(request.user),
            "can_promote": user_is_admin(request.user),
            "target": target,
            "serving": registry.serving(target, version.kind) if version else None,
            # Promoted for the target (not only the workbench-wide default it falls back to).
            "promoted_here": version is not None
            and Promotion.serving(target.pk, version.kind) == version,
        },
    )


def _serve_target(run: TrainingRun) -> Dataset:
    """The dataset the run's model would serve: its own, or for a face detector the faces
    gallery, where the face search finds faces with it."""
    if run.model_version is not None and run.model_version.kind == ModelKind.FACE_DETECTOR:
        from webapp.faces.services import gallery_dataset

        return gallery_dataset()
    return run.dataset


def _diagnosis_rows(diagnosis: dict[str, Any] | None) -> list[tuple[str, Any]]:
    if not diagnosis:
        return []
    names = [
        ("Human-level error", "human_error"),
        ("Training error", "train_error"),
        ("Train-val error", "train_val_error"),
        ("Validation error", "val_error"),
        ("Test error", "test_error"),
        ("Avoidable bias (train − human)", "avoidable_bias"),
        ("Variance (train-val − train)", "variance"),
        ("Data mismatch (validation − train-val)", "data_mismatch"),
        ("Overfitting to validation (test − validation)", "val_overfitting"),
    ]

    if diagnosis.get("train_val_error") is None:
        # Without a train-val split the notes' variance is read off validation instead.
        names[6] = ("Variance (validation − train; no train-val split)", "variance")

    def pct(value: Any) -> str:
        return "—" if not isinstance(value, int | float) else f"{100 * value:.1f}%"

    return [(label, pct(diagnosis.get(key))) for label, key in names]


@require_POST
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun, pk=run_id)
    if not user_can_edit(request.user):
        messages.error(request, "Your role (viewer) cannot cancel training.")
    elif runs.cancel_run(run):
        messages.info(request, f"Run #{run.pk} cancelled; what its trials saved is kept.")
    else:
        messages.warning(request, f"Run #{run.pk} is {run.status}; nothing to cancel.")
    return redirect("training:run", run.pk)


# ---------------------------------------------------------------------------- registry


@require_GET
def models_page(request: HttpRequest) -> HttpResponse:
    versions = list(ModelVersion.objects.select_related("dataset").order_by("kind", "-created_at"))
    datasets = list(Dataset.objects.order_by("name"))
    rows = [
        {
            "version": v,
            "info": registry.version_json(v),
            "targets": [d for d in datasets if v.kind in registry.KINDS_FOR_TASK.get(d.task, ())],  # type: ignore[call-overload]
        }
        for v in versions
    ]
    serving = [{"dataset": d, "now": registry.serving_json(d)["serving"]} for d in datasets]
    return render(
        request,
        "training/models.html",
        {"rows": rows, "serving": serving, "can_promote": user_is_admin(request.user)},
    )


@require_POST
def promote_page(request: HttpRequest, version_id: int) -> HttpResponse:
    version = get_object_or_404(ModelVersion, pk=version_id)
    # Not an id ("abc", "²", 25 digits) is no dataset: a 404, never a 500 from the query.
    dataset = get_object_or_404(Dataset, pk=parse_id(request.POST.get("dataset")) or 0)
    if not user_is_admin(request.user):
        messages.error(request, "Only admins promote models.")
    else:
        try:
            registry.promote(version, dataset, user=signed_in_user(request.user))
            messages.success(request, f"{version.name} #{version.pk} now serves “{dataset.name}”.")
        except JobError as exc:
            messages.error(request, exc.message)
    back = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()})
    return redirect(back if back and safe else "training:models")


@require_POST
def rollback_page(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = get_object_or_404(Dataset, pk=dataset_id)
    kind = request.POST.get("kind", ModelKind.DETECTOR)
    if not user_is_admin(request.user):
        messages.error(request, "Only admins roll back models.")
    else:
        try:
            promotion = registry.rollback(dataset, kind, user=signed_in_user(request.user))
            messages.success(
                request,
                f"Rolled back: {promotion.version.name} #{promotion.version_id} serves again.",
            )
        except JobError as exc:
            messages.error(request, exc.message)
    return redirect("training:models")


# ---------------------------------------------------------------------------- splits


@require_http_methods(["GET", "POST"])
def splits_page(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = get_object_or_404(Dataset, pk=dataset_id)
    if request.method == "POST":
        if not user_can_edit(request.user):
            messages.error(request, "Your role (viewer) cannot build splits.")
        else:
            target = request.POST.get("target_source", "")
            keep = request.POST.get("keep_existing") != "0"
            try:
                built = build_splits(
                    dataset, SplitRequest(target_source=target, keep_existing=keep)
                )
                messages.success(request, _built_message(built))
            except JobError as exc:
                messages.error(request, exc.message)
        return redirect("training:splits", dataset.pk)
    sources = sorted(set(Image.objects.filter(dataset=dataset).values_list("source", flat=True)))
    report = split_report(dataset)
    return render(
        request,
        "training/splits.html",
        {
            "dataset": dataset,
            "sources": sources,
            "report": report,
            "report_json": json.dumps(report, indent=2, default=str)[:20000],
            "can_edit": user_can_edit(request.user),
        },
    )


def _built_message(built: dict[str, Any]) -> str:
    result = built.get("result", {})
    moved = result.get("moved", {}).get("count", 0)
    return (
        f"Splits built: {result.get('added', 0)} images assigned, {moved} moved "
        f"({result.get('sizes', {}).get('rule', '')})."
    )
