"""The training API: runs (start, watch, cancel) and the model registry (list, promote,
roll back). Thin views over :mod:`training.runs` and :mod:`training.registry`."""

from __future__ import annotations

from typing import Any, cast

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from training import registry, runs
from training.backbones import store_backbone
from training.models import ModelKind, ModelVersion, TrainingRun
from training.run_config import (
    AUGMENTS,
    BACKBONES,
    FACE_BACKBONES,
    MAX_SEED,
    OPTIMIZERS,
    SCHEDULES,
    TASKS,
    RunConfig,
    RunConfigError,
)
from webapp.accounts.models import signed_in_user
from webapp.api.errors import ApiError
from webapp.api.ids import is_id
from webapp.api.parsers import JSONParser
from webapp.api.schema import error_responses
from webapp.images import uploads
from webapp.images.models import Dataset

MAX_ID = 2**63 - 1
RUN_FIELDS = {f for f in RunConfig.__dataclass_fields__} | {"dataset", "backbone_file"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


_WHOLE = {"type": "integer"}
# POST's body as RunConfig and parse_run check it (the schema generated clients and the
# fuzzer in CI read; an unknown field is refused).
RUN_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["dataset"],
    "properties": {
        "dataset": {**_WHOLE, "minimum": 1, "maximum": MAX_ID},
        "task": {"type": "string", "enum": list(TASKS), "default": "detector"},
        "minutes": _nullable(
            {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 7 * 24 * 60}
        ),
        "epochs": _nullable({**_WHOLE, "minimum": 1, "maximum": 10_000}),
        "img_size": _nullable({**_WHOLE, "minimum": 64, "maximum": 2048, "multipleOf": 32}),
        "optimizer": _nullable({"type": "string", "enum": list(OPTIMIZERS)}),
        "learning_rate": _nullable(
            {
                "type": "number",
                "minimum": 0,
                "exclusiveMinimum": True,
                "maximum": 10,
                "exclusiveMaximum": True,
            }
        ),
        "weight_decay": _nullable(
            {"type": "number", "minimum": 0, "maximum": 10, "exclusiveMaximum": True}
        ),
        "batch_size": _nullable({**_WHOLE, "enum": [2**k for k in range(11)]}),
        "lr_schedule": _nullable({"type": "string", "enum": list(SCHEDULES)}),
        "decay_rate": _nullable(
            {"type": "number", "minimum": 0, "maximum": 10, "exclusiveMaximum": True}
        ),
        "patience": _nullable({**_WHOLE, "minimum": 1, "maximum": 1000}),
        "augment": {
            "type": "array",
            "items": {"type": "string", "enum": list(AUGMENTS)},
        },
        "freeze_blocks": _nullable({**_WHOLE, "minimum": 0, "maximum": 20}),
        "start_from": _nullable({**_WHOLE, "minimum": 1, "maximum": MAX_ID}),
        "whole_image_faces": _nullable(
            {
                **_WHOLE,
                "minimum": 1,
                "maximum": MAX_ID,
                "description": "A face_detector's: a faces dataset whose train-split photos "
                "of one face join training as faces that fill the photo.",
            }
        ),
        "backbone": {
            "type": "string",
            "enum": sorted({*BACKBONES, *FACE_BACKBONES}),
            "description": "A detector's: ours, resnet18, mobilenet_v3_small. "
            "A verifier's: ours, dlib, onnx.",
        },
        "backbone_file": {
            "type": "string",
            "description": "The name POST /api/v1/training/backbones/ returned.",
        },
        "search": _nullable(
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "trials": {**_WHOLE, "minimum": 1, "maximum": 64, "default": 8},
                    "rounds": {**_WHOLE, "enum": [1, 2], "default": 2},
                    "seed": {**_WHOLE, "minimum": 0, "maximum": MAX_SEED},
                },
            }
        ),
        "satisficing": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                name: {"type": "number", "minimum": 0, "exclusiveMinimum": True}
                for name in ("latency_ms", "size_mb")
            },
        },
        "seed": {**_WHOLE, "minimum": 0, "maximum": MAX_SEED},
    },
}


def _dataset(raw: Any) -> Dataset:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 < raw <= MAX_ID:
        raise ApiError("invalid", "dataset must be a dataset id.", details={"field": "dataset"})
    found = Dataset.objects.filter(pk=raw).first()
    if found is None:
        raise ApiError("unknown_dataset", f"Dataset {raw} does not exist.", status_code=404)
    return found


def parse_run(data: Any) -> tuple[Dataset, RunConfig, str]:
    """The POST body: the dataset, the run's configuration and the stored backbone file
    (or ""), 400 on anything malformed."""
    if not isinstance(data, dict):
        raise ApiError("invalid", "The body must be a JSON object.")
    unknown = sorted(set(data) - RUN_FIELDS)
    if unknown:
        raise ApiError("invalid", f"Unknown field(s) {unknown}.", details={"field": unknown[0]})
    backbone_file = data.get("backbone_file") or ""
    if not isinstance(backbone_file, str):
        raise ApiError(
            "invalid",
            "backbone_file must be the name POST /api/v1/training/backbones/ returned.",
            details={"field": "backbone_file"},
        )
    values = {k: v for k, v in data.items() if k not in ("dataset", "backbone_file")}
    if values.get("search") is True:
        values["search"] = {}
    if values.get("minutes") is not None and values.get("epochs") is not None:
        raise ApiError("invalid", "Give a budget in minutes or in epochs, not both.")
    for name, kind in (("minutes", (int, float)), ("epochs", (int,))):
        value = values.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            raise ApiError("invalid", f"{name} must be a number.", details={"field": name})
    try:
        config = RunConfig.from_dict(values)
    except RunConfigError as exc:
        raise ApiError("invalid", str(exc)) from None
    return _dataset(data.get("dataset")), config, backbone_file


def run_json(run: TrainingRun, *, detail: bool = True) -> dict[str, Any]:
    trials = list(run.trials.select_related("job"))
    progress = _run_progress(run, trials)
    body: dict[str, Any] = {
        "id": run.pk,
        "dataset": run.dataset_id,
        "task": run.task,
        "status": run.status,
        "message": run.message,
        "progress": progress,
        "config": run.config,
        "backbone_file": run.backbone_file,
        "model_version": run.model_version.summary() if run.model_version else None,
        "best_trial": run.best_trial_id,
        "diagnosis": run.diagnosis,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "url": f"/training/runs/{run.pk}/",
    }
    if detail:
        body["trials"] = [
            {
                "id": t.pk,
                "number": t.number,
                "round": t.round,
                "params": t.params,
                "status": t.status,
                "job": t.job_id,
                "progress": t.job.progress if t.job else 0.0,
                "objective": t.objective,
                "satisficing": t.satisficing,
                "curves": t.curves,
                "metrics": {k: v for k, v in t.metrics.items() if not k.startswith("_")},
                "message": t.message,
            }
            for t in trials
        ]
    return body


def _run_progress(run: TrainingRun, trials: list[Any]) -> float:
    if run.is_finished:
        return 1.0
    planned = max(len(trials), RunConfig.from_dict(run.config).trials)
    done = sum(
        1.0 if t.status in ("done", "failed", "cancelled") else (t.job.progress if t.job else 0.0)
        for t in trials
    )
    return round(min(1.0, done / planned), 4)


class RunsView(APIView):
    """``GET/POST /api/v1/training/runs/``."""

    parser_classes = [JSONParser]

    @extend_schema(
        parameters=[OpenApiParameter("dataset", int)],
        responses={200: OpenApiTypes.OBJECT, **error_responses(401)},
    )
    def get(self, request: Request) -> Response:
        found: QuerySet[TrainingRun] = TrainingRun.objects.select_related("model_version")
        raw = request.query_params.get("dataset", "")
        if is_id(raw):
            found = found.filter(dataset_id=int(raw))
        return Response({"results": [run_json(r, detail=False) for r in found[:100]]})

    @extend_schema(
        request={"application/json": RUN_BODY},
        responses={201: OpenApiTypes.OBJECT, **error_responses(400, 401, 403, 404)},
    )
    def post(self, request: Request) -> Response:
        dataset, config, backbone_file = parse_run(request.data)
        run = runs.start_run(
            dataset, config, user=signed_in_user(request.user), backbone_file=backbone_file
        )
        return Response(run_json(run), status=status.HTTP_201_CREATED)


class BackboneUpload(serializers.Serializer[Any]):
    file = serializers.FileField(help_text="torchvision resnet18 / mobilenet_v3_small weights.")


class BackbonesView(APIView):
    """``POST /api/v1/training/backbones/`` (multipart ``file``): keep a pretrained backbone
    file for transfer learning; the answer says which layers matched which backbone and
    gives the ``backbone_file`` name a run starts from."""

    parser_classes = [MultiPartParser]

    @extend_schema(
        request={"multipart/form-data": BackboneUpload},
        responses={201: OpenApiTypes.OBJECT, **error_responses(400, 401, 403, 413)},
    )
    def post(self, request: Request) -> Response:
        return Response(
            store_backbone(uploads.single_file(request.FILES, "file")),
            status=status.HTTP_201_CREATED,
        )


def _one(rows: QuerySet[Any], pk: int, what: str) -> Any:
    """The row ``pk`` or a 404 naming what was asked for."""
    found = rows.filter(pk=pk).first()
    if found is None:
        raise ApiError("not_found", f"No {what} {pk}.", status_code=404)
    return found


def _run(pk: int) -> TrainingRun:
    return cast(
        TrainingRun, _one(TrainingRun.objects.select_related("model_version"), pk, "training run")
    )


class RunView(APIView):
    """``GET /api/v1/training/runs/{id}/``: status, curves, trials, version, diagnosis."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT, **error_responses(401, 404)})
    def get(self, request: Request, pk: int) -> Response:
        return Response(run_json(_run(pk)))


class RunCancelView(APIView):
    """``POST /api/v1/training/runs/{id}/cancel/``."""

    @extend_schema(
        request=None, responses={200: OpenApiTypes.OBJECT, **error_responses(401, 403, 404, 409)}
    )
    def post(self, request: Request, pk: int) -> Response:
        run = _run(pk)
        if not runs.cancel_run(run):
            raise ApiError(
                "not_cancellable",
                f"Run {run.pk} is {run.status}; nothing to cancel.",
                status_code=409,
            )
        run.refresh_from_db()
        return Response(run_json(run))


# ---------------------------------------------------------------------------- registry


class ModelsView(APIView):
    """``GET /api/v1/models/?kind=&dataset=``: every model version, with what it serves."""

    @extend_schema(
        parameters=[
            OpenApiParameter("kind", str, enum=list(ModelKind.values)),
            OpenApiParameter("dataset", int),
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        versions = ModelVersion.objects.select_related("dataset")
        kind = request.query_params.get("kind")
        if kind:
            versions = versions.filter(kind=kind)
        raw = request.query_params.get("dataset", "")
        if is_id(raw):
            versions = versions.filter(dataset_id=int(raw))
        return Response({"results": [registry.version_json(v) for v in versions[:500]]})


def _version(pk: int) -> ModelVersion:
    return cast(
        ModelVersion, _one(ModelVersion.objects.select_related("dataset"), pk, "model version")
    )


class ModelView(APIView):
    """``GET /api/v1/models/{id}/``."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT, **error_responses(401, 404)})
    def get(self, request: Request, pk: int) -> Response:
        return Response(registry.version_json(_version(pk), detail=True))


class PromoteBody(serializers.Serializer[Any]):
    dataset = serializers.IntegerField(min_value=1, max_value=MAX_ID)


class PromoteView(APIView):
    """``POST /api/v1/models/{id}/promote/ {"dataset": id}`` (admins): serve it there."""

    parser_classes = [JSONParser]
    admin_only_write = True

    @extend_schema(
        request=PromoteBody,
        responses={200: OpenApiTypes.OBJECT, **error_responses(400, 401, 403, 404)},
    )
    def post(self, request: Request, pk: int) -> Response:
        version = _version(pk)
        body = PromoteBody(data=request.data)
        body.is_valid(raise_exception=True)
        dataset = _dataset(body.validated_data["dataset"])
        registry.promote(version, dataset, user=signed_in_user(request.user))
        return Response(registry.serving_json(dataset))


class RollbackBody(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=ModelKind.choices, default=ModelKind.DETECTOR)


class RollbackView(APIView):
    """``POST /api/v1/datasets/{id}/rollback/ {"kind"}`` (admins): the previous one serves."""

    parser_classes = [JSONParser]
    admin_only_write = True

    @extend_schema(
        request=RollbackBody,
        responses={200: OpenApiTypes.OBJECT, **error_responses(400, 401, 403, 404, 409)},
    )
    def post(self, request: Request, pk: int) -> Response:
        dataset = _dataset(pk)
        body = RollbackBody(data=request.data)
        body.is_valid(raise_exception=True)
        registry.rollback(dataset, body.validated_data["kind"], user=signed_in_user(request.user))
        return Response(registry.serving_json(dataset))
