"""The evaluations API: who may start one, every refusal before anything is stored, the
list's filters, the detail's metrics and job, and the error cases' filters and orders."""

from __future__ import annotations

from typing import Any

import pytest

from tests.images import jpeg_bytes
from training.splits import SPLIT_SCHEME
from webapp.analysis.models import ErrorCase, ErrorKind, ErrorTag, Evaluation
from webapp.images.ingest import ingest_image
from webapp.images.models import Dataset, LabelClass, SplitAssignment, Task
from webapp.jobs.models import Job

pytestmark = pytest.mark.django_db
URL = "/api/v1/evaluations/"


@pytest.fixture
def blood(labeler: Any) -> Dataset:
    """A detection dataset with the tiny detector's classes and two val images."""
    dataset = Dataset.objects.create(name="blood")
    for name in ("RBC", "WBC"):
        LabelClass.objects.create(dataset=dataset, name=name)
    for seed in (1, 2):
        image = ingest_image(
            jpeg_bytes(160, 120, seed=seed),
            dataset=dataset,
            user=labeler,
            original_name=f"{seed}.jpg",
        )
        SplitAssignment.objects.create(image=image, scheme=SPLIT_SCHEME, split="val")
    return dataset


def _post(api: Any, **body: Any) -> Any:
    return api.post(URL, body, format="json")


def _refused(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code, error
    assert Evaluation.objects.count() == 0 and Job.objects.count() == 0  # nothing stored
    return error


def test_a_labeler_starts_an_evaluation_and_gets_it_with_its_job(labeler_api, blood, tiny_detector):
    response = _post(labeler_api, model_version=tiny_detector.pk, dataset=blood.pk, split="val")
    assert response.status_code == 202
    body = response.json()
    evaluation = Evaluation.objects.get(pk=body["id"])
    assert (evaluation.model_version, evaluation.dataset, evaluation.split) == (
        tiny_detector,
        blood,
        "val",
    )
    assert body["job"]["id"] == evaluation.job_id and body["job"]["kind"] == "evaluate"
    assert body["links"]["sheet"] == f"/analysis/evaluations/{evaluation.pk}/sheet/"
    assert body["links"]["page"] == f"/analysis/evaluations/{evaluation.pk}/"
    assert Job.objects.get(pk=evaluation.job_id).params["evaluation"] == evaluation.pk
    assert ErrorTag.objects.filter(dataset=blood, name="incorrectly labeled").count() == 1
    detail = labeler_api.get(f"{URL}{evaluation.pk}/").json()
    assert detail["metrics"] == {} and detail["job"]["status"] == "queued"
    assert detail["job"]["progress"] == 0.0


def test_viewers_read_but_do_not_start(viewer_api, blood, tiny_detector, client):
    response = _post(viewer_api, model_version=tiny_detector.pk, dataset=blood.pk, split="val")
    _refused(response, 403, "permission_denied")
    assert viewer_api.get(URL).status_code == 200
    assert client.get(URL).status_code in (401, 403)


V, D = "<the tiny detector>", "<the blood dataset>"  # replaced by their ids


@pytest.mark.parametrize(
    ("version", "dataset", "split", "status", "code", "field"),
    [
        (None, D, "val", 400, "invalid", "model_version"),
        ("x", D, "val", 400, "invalid", "model_version"),
        (999999, D, "val", 404, "unknown_model_version", "model_version"),
        (V, 999999, "val", 404, "unknown_dataset", "dataset"),
        (V, D, "holdout", 400, "invalid", "split"),
        (V, D, None, 400, "invalid", "split"),
        (V, D, "test", 400, "empty_split", "split"),
    ],
)
def test_bad_requests_are_refused_before_any_job(
    labeler_api, blood, tiny_detector, version, dataset, split, status, code, field
):
    ids = {V: tiny_detector.pk, D: blood.pk}
    body = {"model_version": version, "dataset": dataset, "split": split}
    sent = {k: ids.get(v, v) for k, v in body.items() if v is not None}
    error = _refused(_post(labeler_api, **sent), status, code)
    assert error["details"]["field"] == field


def test_a_model_that_does_not_fit_the_dataset_is_refused(
    labeler_api, blood, tiny_detector, tiny_verifier
):
    faces = Dataset.objects.create(name="people", task=Task.FACES)
    error = _refused(
        _post(labeler_api, model_version=tiny_detector.pk, dataset=faces.pk, split="val"),
        400,
        "wrong_task",
    )
    assert "detector is evaluated on a object detection dataset" in error["message"]
    _refused(
        _post(labeler_api, model_version=tiny_verifier.pk, dataset=blood.pk, split="val"),
        400,
        "wrong_task",
    )
    cells = Dataset.objects.create(name="cells")
    LabelClass.objects.create(dataset=cells, name="neutrophil")
    _refused(
        _post(labeler_api, model_version=tiny_detector.pk, dataset=cells.pk, split="val"),
        400,
        "no_common_class",
    )


# ----------------------------------------------------------------------------- reading
def _evaluation(version: Any, dataset: Dataset, split: str, **fields: Any) -> Evaluation:
    return Evaluation.objects.create(model_version=version, dataset=dataset, split=split, **fields)


def _cases(evaluation: Evaluation) -> list[ErrorCase]:
    image = evaluation.dataset.images.order_by("pk")[0]
    rows = [
        (ErrorKind.MISSED, "RBC", "", 0.3, 0.9, "spurious_label"),
        (ErrorKind.WRONG_CLASS, "RBC", "WBC", 0.1, 0.2, "swapped_class"),
        (ErrorKind.FALSE_POSITIVE, "", "WBC", 0.2, 0.6, "missing_label"),
        (ErrorKind.FALSE_POSITIVE, "", "RBC", 0.4, 0.0, ""),
    ]
    return [
        ErrorCase.objects.create(
            evaluation=evaluation,
            image=image,
            kind=kind,
            label_class=true,
            predicted_class=predicted,
            sample_key=key,
            label_error_score=score,
            label_error_kind=suspect,
        )
        for kind, true, predicted, key, score, suspect in rows
    ]


def test_the_list_filters_and_the_detail_has_every_metric(viewer_api, blood, tiny_detector):
    val = _evaluation(tiny_detector, blood, "val", metrics={"map50": 0.5, "pr_curves": {}})
    test = _evaluation(tiny_detector, blood, "test", metrics={"map50": 0.4})
    listed = viewer_api.get(URL, {"split": "val"}).json()
    assert [e["id"] for e in listed["results"]] == [val.pk]
    assert listed["results"][0]["summary"] == {"map50": 0.5}
    assert "metrics" not in listed["results"][0]  # the list stays light
    both = viewer_api.get(URL, {"model_version": tiny_detector.pk, "dataset": blood.pk}).json()
    assert {e["id"] for e in both["results"]} == {val.pk, test.pk}
    assert viewer_api.get(URL, {"split": "train"}).json()["count"] == 0
    assert viewer_api.get(URL, {"dataset": blood.pk + 1}).status_code == 400  # no such dataset
    detail = viewer_api.get(f"{URL}{val.pk}/").json()
    assert detail["metrics"] == {"map50": 0.5, "pr_curves": {}} and detail["job"] is None
    assert viewer_api.get(f"{URL}999999/").status_code == 404


def test_errors_filter_by_kind_class_and_tag_and_order_by_label_error(
    viewer_api, blood, tiny_detector
):
    evaluation = _evaluation(tiny_detector, blood, "val")
    missed, wrong, fp_wbc, fp_rbc = _cases(evaluation)
    url = f"{URL}{evaluation.pk}/errors/"

    def ids(**query: Any) -> list[int]:
        response = viewer_api.get(url, query)
        assert response.status_code == 200, response.content
        return [c["id"] for c in response.json()["results"]]

    assert ids() == [wrong.pk, fp_wbc.pk, missed.pk, fp_rbc.pk]  # by sample key
    assert ids(label_errors=1) == [missed.pk, fp_wbc.pk, wrong.pk, fp_rbc.pk]
    assert ids(kind="false_positive") == [fp_wbc.pk, fp_rbc.pk]
    assert ids(**{"class": "WBC"}) == [wrong.pk, fp_wbc.pk]  # true or predicted
    blurry = ErrorTag.objects.create(dataset=blood, name="blurry")
    missed.tags.create(tag=blurry)
    assert ids(tag=blurry.pk) == ids(tag="blurry") == [missed.pk]
    first = viewer_api.get(url, {"page_size": 2}).json()
    assert first["count"] == 4 and len(first["results"]) == 2 and first["next"]
    case = viewer_api.get(url, {"kind": "missed"}).json()["results"][0]
    assert case["tags"] == [blurry.pk] and case["label_error_kind"] == "spurious_label"
    assert case["image_url"] == f"/images/{missed.image_id}/"
    bad = viewer_api.get(url, {"kind": "mistake"})
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "kind"
    unknown = viewer_api.get(url, {"tag": "no such tag"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_tag"


def test_the_job_runs_the_tiny_detector_and_fails_plainly_for_a_deleted_evaluation(
    labeler_api, blood, tiny_detector
):
    from webapp.jobs.runner import execute_job

    body = _post(labeler_api, model_version=tiny_detector.pk, dataset=blood.pk, split="val").json()
    execute_job(body["job"]["id"])
    detail = labeler_api.get(f"{URL}{body['id']}/").json()
    assert detail["job"]["status"] == "done", detail["job"]
    metrics = detail["metrics"]
    # No labels: every kept box is a false positive on background, and nothing is right.
    kinds = set(ErrorCase.objects.filter(evaluation_id=body["id"]).values_list("kind", flat=True))
    assert kinds <= {"false_positive"} and metrics["true_positives"] == 0
    assert metrics["error_cases"] == sum(metrics["confusion_matrix"]["matrix"][-1])
    assert detail["images"] == 2 and detail["error_rate"] == 1.0

    again = _post(labeler_api, model_version=tiny_detector.pk, dataset=blood.pk, split="val")
    Evaluation.objects.filter(pk=again.json()["id"]).delete()
    execute_job(again.json()["job"]["id"])
    job = Job.objects.get(pk=again.json()["job"]["id"])
    assert job.status == "failed" and "no longer exists" in job.error
