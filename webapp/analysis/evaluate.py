"""Evaluations: any detector or verifier version on any split of any dataset.

:func:`check_request` refuses a bad request before anything is stored (404 for an unknown
version or dataset, 400 for an unknown split, a split with nothing to evaluate, a model
that does not fit the dataset's task or classes). :func:`start_evaluation` then records the
:class:`Evaluation` and starts its ``evaluate`` job (``webapp.analysis.jobs``);
:func:`evaluate_now` does the same work at once (``manage.py evaluate``). Both end in
:func:`run_evaluation`, which stores the metrics and one :class:`ErrorCase` per mistake:

* **detectors** (and face detectors): the split's images (``training.samples.split_samples``
  with the version's classes) are predicted at the evaluation floor through the serving
  ``Predictor`` (PyTorch backend: the numbers ``evaluate`` always printed); mAP, per-class
  AP and PR curves from ``inference.metrics``; precision, recall and F1 at the version's
  working threshold on its served scale (``training.detection.report_at_threshold``);
  then, on the boxes kept by that threshold, every mistake and the confusion matrix with
  background (``inference.error_cases``) and how likely each points at a label error
  (``inference.label_errors``, which also looks at the boxes below the threshold).
  ``error_rate`` is 1 - F1 at the working threshold.
* **verifiers**: the split's faces with a subject (``training.samples.face_samples``), every
  same-person pair plus as many different-person pairs (seed 0), embedded as training's
  calibration embeds them; ROC, EER, AUC (``inference.verification_metrics``) and, at the
  version's threshold, one case per false accept and false reject. ``error_rate`` is the
  share of pairs decided wrongly.

Each case gets ``sample_key`` from a generator seeded by the evaluation's id, in a fixed
order, so "a random sample of 100" (the 100 lowest keys) is the same on every reload.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from django.core.files.storage import default_storage
from django.db import transaction

from inference.calibration import ServingScores, serving_scores
from inference.error_cases import (
    DetectionCase,
    ImageErrors,
    confusion_totals,
    face_pair_distances,
    match_image,
    verification_errors,
)
from inference.label_errors import (
    ImagePredictions,
    LabelSuspicion,
    image_score,
    pair_suspicions,
    rank_label_errors,
)
from inference.metrics import DetectionMetrics, downsample_curve, evaluate_detections
from inference.predict import Predictor
from inference.preprocess import load_rgb
from inference.runtime import CheckpointError, pick_device
from inference.siamese import load_verifier
from inference.verification_metrics import calibrate
from inference.yolo import load_detector
from training.detection import EVAL_SCORE_THRESHOLD, DetectionSample, report_at_threshold
from training.formats.folders import FaceSample
from training.models import ModelKind, ModelVersion
from training.samples import face_samples, split_samples
from training.splits import SPLIT_SCHEME
from webapp.accounts.models import User
from webapp.analysis.models import (
    INCORRECTLY_LABELED,
    ErrorCase,
    ErrorKind,
    ErrorTag,
    Evaluation,
    LabelErrorKind,
)
from webapp.faces.models import Face, Subject
from webapp.faces.services import calibrated_threshold
from webapp.images.models import Dataset, Image, Split, SplitAssignment, Task
from webapp.jobs.errors import JobError
from webapp.jobs.models import JobKind
from webapp.jobs.services import start_job

Progress = Callable[[float, str], None]
Json = dict[str, Any]

# The task each kind of model is evaluated on.
EVALUATED_ON = {
    ModelKind.DETECTOR: Task.DETECTION,
    ModelKind.FACE_DETECTOR: Task.DETECTION,
    ModelKind.VERIFIER: Task.FACES,
}
BATCH = 8  # images per forward pass
PR_POINTS = 200  # points kept per PR curve for the charts
TOP_IMAGES = 20  # images listed by label-error score in the metrics
CASES_PER_INSERT = 500
PAIR_SEED = 0  # the pairs a verifier evaluation draws, as training's calibration does
BACKGROUND = "background"


def _quiet(fraction: float, message: str) -> None:
    """The default progress: say nothing."""


def _refusal(message: str, code: str = "invalid", status: int = 400, **details: Any) -> JobError:
    return JobError(message, code=code, status=status, details=details)


# ----------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class EvaluationRequest:
    """A checked request: this version on this split of this dataset."""

    version: ModelVersion
    dataset: Dataset
    split: str


def _int_id(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise _refusal(f"{field} must be an id, got {value!r}.", field=field)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _refusal(f"{field} must be an id, got {value!r}.", field=field) from None


def _version(value: Any) -> ModelVersion:
    if value in (None, ""):
        raise _refusal("model_version is required.", field="model_version")
    pk = _int_id(value, "model_version")
    version = ModelVersion.objects.filter(pk=pk).first()
    if version is None:
        raise _refusal(
            f"There is no model version {pk}.", "unknown_model_version", 404, field="model_version"
        )
    if version.kind not in EVALUATED_ON:
        raise _refusal(
            f"Model version {pk} is a {version.kind}; only detectors and verifiers are evaluated.",
            field="model_version",
        )
    return version


def _dataset(value: Any) -> Dataset:
    if value in (None, ""):
        raise _refusal("dataset is required.", field="dataset")
    pk = _int_id(value, "dataset")
    dataset = Dataset.objects.filter(pk=pk).first()
    if dataset is None:
        raise _refusal(f"There is no dataset {pk}.", "unknown_dataset", 404, field="dataset")
    return dataset


def _split(value: Any) -> str:
    if value not in Split.values:
        raise _refusal(
            f"split must be one of {', '.join(Split.values)}, got {value!r}.", field="split"
        )
    return str(value)


def _check_fit(version: ModelVersion, dataset: Dataset) -> None:
    """The model suits the dataset: its task, and for a detector a class in common."""
    task = EVALUATED_ON[ModelKind(version.kind)]
    if dataset.task != task:
        what = "a verifier" if version.kind == ModelKind.VERIFIER else "a detector"
        raise _refusal(
            f"Dataset {dataset.name!r} is a {dataset.get_task_display().lower()} dataset; "
            f"{what} is evaluated on a {Task(task).label.lower()} dataset.",
            "wrong_task",
            field="dataset",
        )
    if version.kind != ModelKind.VERIFIER:
        names = set(dataset.classes.values_list("name", flat=True))
        if not names & set(version.class_names):
            raise _refusal(
                f"Model version {version.pk} detects {', '.join(version.class_names)}; dataset "
                f"{dataset.name!r} has none of these classes.",
                "no_common_class",
                field="dataset",
            )


def _split_faces(dataset: Dataset, split: str) -> tuple[int, int]:
    """(faces with a subject, their people) in the split."""
    images = SplitAssignment.objects.filter(
        image__dataset=dataset, scheme=SPLIT_SCHEME, split=split
    ).values("image_id")
    faces = Face.objects.filter(image__dataset=dataset, subject__isnull=False, image__in=images)
    return faces.count(), faces.values("subject_id").distinct().count()


def _check_has_items(version: ModelVersion, dataset: Dataset, split: str) -> None:
    if version.kind == ModelKind.VERIFIER:
        faces, people = _split_faces(dataset, split)
        if people < 2 or faces <= people:
            raise _refusal(
                f"The {split} split of {dataset.name!r} has {faces} faces of {people} people; "
                "a verifier needs at least 2 people, one of them with 2 faces.",
                "empty_split",
                field="split",
            )
        return
    images = SplitAssignment.objects.filter(
        image__dataset=dataset, scheme=SPLIT_SCHEME, split=split
    )
    if not images.exists():
        raise _refusal(
            f"The {split} split of {dataset.name!r} has no images.", "empty_split", field="split"
        )


def check_request(model_version: Any, dataset: Any, split: Any) -> EvaluationRequest:
    """Check an evaluation request before anything is stored.

    Raises:
        JobError: 404 ``unknown_model_version`` / ``unknown_dataset``; 400 ``invalid`` (a
            missing or non-id field, an unknown split, a kind of model that is not
            evaluated), ``wrong_task`` (a detector on a faces dataset, a verifier on a
            detection one), ``no_common_class``, ``empty_split``.
    """
    version = _version(model_version)
    found = _dataset(dataset)
    chosen = _split(split)
    _check_fit(version, found)
    _check_has_items(version, found, chosen)
    return EvaluationRequest(version, found, chosen)


# ----------------------------------------------------------------------------- starting
def ensure_incorrectly_labeled_tag(dataset: Dataset, user: User | None = None) -> ErrorTag:
    """The dataset's "incorrectly labeled" column, made on its first evaluation."""
    tag, _ = ErrorTag.objects.get_or_create(
        dataset=dataset, name=INCORRECTLY_LABELED, defaults={"created_by": user}
    )
    return tag


def _create(request: EvaluationRequest, user: User | None) -> Evaluation:
    ensure_incorrectly_labeled_tag(request.dataset, user)
    return Evaluation.objects.create(
        model_version=request.version,
        dataset=request.dataset,
        split=request.split,
        created_by=user,
    )


def start_evaluation(request: EvaluationRequest, user: User | None) -> Evaluation:
    """Record the evaluation and start its job (dispatched once the rows are committed)."""
    with transaction.atomic():
        evaluation = _create(request, user)
        job = start_job(
            JobKind.EVALUATE,
            user=user,
            dataset=request.dataset,
            params={
                "evaluation": evaluation.pk,
                "model_version": request.version.pk,
                "split": request.split,
            },
        )
        evaluation.job = job
        evaluation.save(update_fields=["job"])
    return evaluation


def evaluate_now(
    request: EvaluationRequest, user: User | None = None, progress: Progress = _quiet
) -> Evaluation:
    """Record and run an evaluation in this process (no job): ``manage.py evaluate``."""
    evaluation = _create(request, user)
    run_evaluation(evaluation, progress)
    return evaluation


# ----------------------------------------------------------------------------- running
def run_evaluation(evaluation: Evaluation, progress: Progress = _quiet) -> Json:
    """Measure the evaluation's version on its split; store metrics and cases.

    Cases stored by an earlier, interrupted run of the same evaluation are replaced.

    Returns:
        The metrics stored on the evaluation.

    Raises:
        JobError: the split became empty, or the checkpoint cannot be loaded (422).
    """
    began = time.monotonic()
    version, dataset = evaluation.model_version, evaluation.dataset
    _check_has_items(version, dataset, evaluation.split)
    if version.kind == ModelKind.VERIFIER:
        metrics, cases = _evaluate_verifier(evaluation, progress)
    else:
        metrics, cases = _evaluate_detector(evaluation, progress)
    metrics["evaluation"] = evaluation.pk
    metrics["seconds"] = round(time.monotonic() - began, 3)
    progress(0.95, f"Storing {len(cases)} error cases …")
    _store(evaluation, metrics, cases)
    return metrics


def _store(evaluation: Evaluation, metrics: Json, cases: list[ErrorCase]) -> None:
    rng = np.random.default_rng(evaluation.pk)
    keys = rng.random(len(cases))
    for case, key in zip(cases, keys, strict=True):
        case.evaluation = evaluation
        case.sample_key = float(key)
    with transaction.atomic():
        ErrorCase.objects.filter(evaluation=evaluation).delete()
        ErrorCase.objects.bulk_create(cases, batch_size=CASES_PER_INSERT)
        evaluation.metrics = metrics
        evaluation.error_rate = metrics["error_rate"]
        evaluation.images = int(metrics["images"])
        evaluation.save(update_fields=["metrics", "error_rate", "images"])


def _image_ids(dataset: Dataset) -> dict[Path, int]:
    """Each stored image file of the dataset -> its image id (samples name files only)."""
    rows = Image.objects.filter(dataset=dataset).values_list("pk", "file")
    return {Path(default_storage.path(str(name))): pk for pk, name in rows}


def _box(box: Sequence[float] | None) -> list[float] | None:
    return None if box is None else [round(float(v), 2) for v in box]


# ----------------------------------------------------------------------------- detectors
def _predictor(version: ModelVersion) -> Predictor:
    try:
        model = load_detector(version.path, device=pick_device(), expected_sha256=version.sha256)
    except (CheckpointError, OSError) as exc:
        raise _refusal(
            f"Model version {version.pk} cannot be loaded: {exc}", "model_unreadable", 422
        ) from None
    # PyTorch on every device: the numbers `evaluate` printed before evaluations were jobs.
    return Predictor(model, backend="torch")


def _predict(
    predictor: Predictor, samples: Sequence[DetectionSample], progress: Progress
) -> list[dict[str, npt.NDArray[Any]]]:
    """Raw-score detections of every sample at the evaluation floor, original pixels."""
    out: list[dict[str, npt.NDArray[Any]]] = []
    for start in range(0, len(samples), BATCH):
        chunk = samples[start : start + BATCH]
        images = [load_rgb(s.image_path) for s in chunk]
        for d in predictor.predict(images, score_threshold=EVAL_SCORE_THRESHOLD, batch_size=BATCH):
            out.append({"boxes": d.boxes, "scores": d.scores, "labels": d.labels})
        done = start + len(chunk)
        progress(0.8 * done / len(samples), f"Predicted {done} of {len(samples)} images")
    return out


def _evaluate_detector(evaluation: Evaluation, progress: Progress) -> tuple[Json, list[ErrorCase]]:
    version, dataset = evaluation.model_version, evaluation.dataset
    names = list(version.class_names)
    samples = split_samples(dataset, names).get(evaluation.split, [])
    predictor = _predictor(version)
    predictions = _predict(predictor, samples, progress)
    gts = [{"boxes": s.boxes, "labels": s.labels} for s in samples]
    metrics = evaluate_detections(
        predictions, gts, score_threshold=predictor.config.score_threshold
    )
    serving = serving_scores(version.metrics, version.config)
    summary = _detector_summary(evaluation, names, len(samples), metrics, serving)
    progress(0.85, "Matching boxes and scoring possible label errors …")
    found, suspicions = _detector_cases(samples, predictions, serving, len(names))
    ids = _image_ids(dataset)
    cases: list[ErrorCase] = []
    for sample, image, scored in zip(samples, found, suspicions, strict=True):
        image_id = ids[sample.image_path]
        cases += [
            _detector_row(image_id, c, s, names) for c, s in zip(image.cases, scored, strict=True)
        ]
    summary.update(_error_summary(found, names))
    summary["label_errors"] = _label_error_summary(samples, suspicions, ids)
    return summary, cases


def _detector_cases(
    samples: Sequence[DetectionSample],
    predictions: Sequence[dict[str, npt.NDArray[Any]]],
    serving: ServingScores,
    num_classes: int,
) -> tuple[list[ImageErrors], list[list[LabelSuspicion]]]:
    """Every image's mistakes at the working threshold and their label-error scores."""
    found: list[ImageErrors] = []
    evidence: list[ImagePredictions] = []
    for sample, pred in zip(samples, predictions, strict=True):
        confidence = serving.confidences(pred["scores"], pred["labels"])
        keep = confidence >= serving.threshold
        found.append(
            match_image(
                sample.boxes,
                sample.labels,
                pred["boxes"][keep],
                pred["labels"][keep],
                confidence[keep],
                num_classes,
            )
        )
        evidence.append(
            ImagePredictions(sample.boxes, sample.labels, pred["boxes"], pred["labels"], confidence)
        )
    suspicions, _ = rank_label_errors(found, evidence, num_classes)
    return found, suspicions


def _name(names: Sequence[str], index: int | None) -> str:
    return "" if index is None else names[index]


def _detector_row(
    image_id: int, case: DetectionCase, suspicion: LabelSuspicion, names: Sequence[str]
) -> ErrorCase:
    return ErrorCase(
        kind=ErrorKind(case.kind),
        image_id=image_id,
        label_class=_name(names, case.label_class),
        predicted_class=_name(names, case.predicted_class),
        score=case.score,
        iou=case.iou,
        predicted_box=_box(case.predicted_box),
        true_box=_box(case.true_box),
        label_error_score=round(suspicion.score, 6),
        label_error_kind=LabelErrorKind(suspicion.kind),
    )


def _detector_summary(
    evaluation: Evaluation,
    names: list[str],
    images: int,
    metrics: DetectionMetrics,
    serving: ServingScores,
) -> Json:
    """What ``evaluate`` has always printed, then the curves (by class name)."""
    report = report_at_threshold(metrics, serving)
    per_class = report["per_class_at_threshold"]
    curves = {}
    for c, curve in metrics.pr_curves.items():
        small = downsample_curve(curve, PR_POINTS)
        curves[names[c]] = {
            "recall": [round(float(v), 5) for v in small.recall],
            "precision": [round(float(v), 5) for v in small.precision],
        }
    return {
        "model_version": evaluation.model_version_id,
        "dataset": evaluation.dataset.name,
        "split": evaluation.split,
        "images": images,
        "map50": metrics.map50,
        "map50_95": metrics.map50_95,
        "per_class_ap50": {names[int(k)]: v for k, v in metrics.per_class_ap50.items()},
        "per_class_ap50_95": {names[int(k)]: v for k, v in metrics.per_class_ap50_95.items()},
        **{k: report[k] for k in ("precision", "recall", "f1", "score_threshold")},
        **{k: report[k] for k in ("score_scale", "threshold_rule")},
        "per_class": {
            names[int(k)]: {m: v[m] for m in ("precision", "recall", "f1")}
            for k, v in per_class.items()
        },
        "kind": evaluation.model_version.kind,
        "class_names": names,
        "error_rate": 1.0 - float(report["f1"]),
        "pr_curves": curves,
    }


def _error_summary(found: Sequence[ImageErrors], names: list[str]) -> Json:
    """Cases by kind, the confusion matrix with background, the counts behind them."""
    matrix = confusion_totals(found, len(names))
    kinds = Counter(c.kind for image in found for c in image.cases)
    true_positives = sum(image.true_positives for image in found)
    return {
        "error_cases": sum(kinds.values()),
        "errors_by_kind": {k: kinds.get(k, 0) for k in ErrorKind.values if k in _DETECTION},
        "true_positives": true_positives,
        "confusion_matrix": {
            "labels": [*names, BACKGROUND],
            "rows": "true class",
            "columns": "predicted class",
            "matrix": matrix.tolist(),
        },
    }


_DETECTION = {
    ErrorKind.FALSE_POSITIVE,
    ErrorKind.MISSED,
    ErrorKind.WRONG_CLASS,
    ErrorKind.POOR_LOCALIZATION,
    ErrorKind.DUPLICATE,
}


def _label_error_summary(
    samples: Sequence[DetectionSample],
    suspicions: Sequence[Sequence[LabelSuspicion]],
    ids: dict[Path, int],
) -> Json:
    """How many cases suspect each kind (score >= 0.5) and the most suspect images."""
    kinds = Counter(s.kind for scored in suspicions for s in scored if s.score >= 0.5)
    images = [
        {"image": ids[sample.image_path], "score": image_score([s.score for s in scored])}
        for sample, scored in zip(samples, suspicions, strict=True)
    ]
    images = [i for i in images if i["score"] > 0]
    images.sort(key=lambda i: -float(i["score"]))
    return {
        "likely": {k: kinds.get(k, 0) for k in LabelErrorKind.values if k},
        "top_images": [
            {"image": i["image"], "score": round(float(i["score"]), 4)} for i in images[:TOP_IMAGES]
        ],
    }


# ----------------------------------------------------------------------------- verifiers
def _verifier_threshold(version: ModelVersion, extra: dict[str, Any]) -> tuple[float | None, str]:
    """The version's decision threshold and where it comes from (None: none stored)."""
    stored = calibrated_threshold(version)
    if stored is not None:
        return stored, str((version.metrics or {}).get("threshold_rule", "") or "stored")
    value = extra.get("threshold")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value), "checkpoint"
    return None, ""


def _subject_names(dataset: Dataset) -> dict[str, str]:
    return {
        str(pk): name
        for pk, name in Subject.objects.filter(dataset=dataset).values_list("pk", "name")
    }


def _evaluate_verifier(evaluation: Evaluation, progress: Progress) -> tuple[Json, list[ErrorCase]]:
    version, dataset = evaluation.model_version, evaluation.dataset
    faces: list[FaceSample] = face_samples(dataset).get(evaluation.split, [])
    try:
        net, extra = load_verifier(
            version.path, device=pick_device(), expected_sha256=version.sha256
        )
    except (CheckpointError, OSError) as exc:
        raise _refusal(
            f"Model version {version.pk} cannot be loaded: {exc}", "model_unreadable", 422
        ) from None
    progress(0.1, f"Embedding {len(faces)} faces …")
    pairs, distances = face_pair_distances(
        net, [(f.image_path, f.box) for f in faces], [f.identity for f in faces], rng_seed=PAIR_SEED
    )
    same = pairs[2] == 0
    calibration = calibrate(distances, same)
    threshold, rule = _verifier_threshold(version, extra)
    if threshold is None:  # no stored threshold: judge at this evaluation's EER point
        threshold, rule = calibration.eer_threshold, "eer (this evaluation)"
    progress(0.8, "Deciding every pair …")
    errors = verification_errors(pairs[0], pairs[1], same, distances, threshold)
    suspicions = pair_suspicions(errors.cases, distances, same)
    ids, people = _image_ids(dataset), _subject_names(dataset)
    cases = [
        ErrorCase(
            kind=ErrorKind(case.kind),
            image_id=ids[faces[case.first].image_path],
            other_image_id=ids[faces[case.second].image_path],
            label_class=people.get(faces[case.first].identity, ""),
            predicted_class=people.get(faces[case.second].identity, ""),
            distance=case.distance,
            true_box=_box(faces[case.first].box),
            predicted_box=_box(faces[case.second].box),
            label_error_score=round(s.score, 6),
            label_error_kind=LabelErrorKind(s.kind),
        )
        for case, s in zip(errors.cases, suspicions, strict=True)
    ]
    summary: Json = {
        "model_version": version.pk,
        "dataset": dataset.name,
        "split": evaluation.split,
        "kind": version.kind,
        "images": len({f.image_path for f in faces}),
        "faces": len(faces),
        "people": len({f.identity for f in faces}),
        "pairs": len(distances),
        "n_same": errors.n_same,
        "n_different": errors.n_different,
        "threshold": threshold,
        "threshold_rule": rule,
        "error_rate": errors.error_rate,
        "false_accepts": errors.false_accepts,
        "false_rejects": errors.false_rejects,
        "false_accept_rate": errors.false_accept_rate,
        "false_reject_rate": errors.false_reject_rate,
        "eer": calibration.eer,
        "eer_threshold": calibration.eer_threshold,
        "auc": calibration.auc,
        "tar_at_far_1pct": calibration.tar_at_far_1pct,
        "tar_at_far_01pct": calibration.tar_at_far_01pct,
        "error_cases": len(cases),
        "errors_by_kind": {
            ErrorKind.FALSE_ACCEPT.value: errors.false_accepts,
            ErrorKind.FALSE_REJECT.value: errors.false_rejects,
        },
        "roc": {
            "far": calibration.roc_far,
            "tar": calibration.roc_tar,
            "thresholds": calibration.roc_thresholds,
        },
        "calibration": calibration.to_dict(),
    }
    return summary, cases
