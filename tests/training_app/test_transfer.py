"""Transfer learning from a backbone file the user brings: read without running code, mapped
by name and shape onto the detector's torchvision backbone, with a report of what matched;
the upload API keeps it by content and a run starts from it."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import torch
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from safetensors.torch import save_file
from torchvision.models import mobilenet_v3_small, resnet18

from inference.runtime import CheckpointError
from inference.yolo import IMAGENET_MEAN, YoloConfig, YoloDetector
from tests.training_app.conftest import run_jobs
from training import runs
from training.backbones import BackboneError, store_backbone
from training.models import RunStatus
from training.run_config import RunConfig
from training.transfer import default_frozen_blocks, load_backbone_file, read_weights

RESNET_BACKBONE_TENSORS = 120  # resnet18's state dict (122) less fc.weight and fc.bias


def _detector(backbone: str) -> YoloDetector:
    return YoloDetector(YoloConfig(class_names=["cell"], img_size=64, backbone=backbone))


@pytest.fixture(scope="module")
def imagenet_like() -> dict[str, torch.Tensor]:
    """A resnet18 state dict (torchvision's initialisation, seeded apart from the model's)."""
    torch.manual_seed(3)
    return resnet18(weights=None).state_dict()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_torchvision_resnet18_file_loads_onto_the_backbone(tmp_path, imagenet_like, suffix):
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".pth":
        torch.save(imagenet_like, path)
    else:
        save_file({k: v.contiguous() for k, v in imagenet_like.items()}, str(path))
    model = _detector("resnet18")
    name = "layer3.1.conv2.weight"
    assert not torch.equal(model.state_dict()[f"backbone.{name}"], imagenet_like[name])
    report = load_backbone_file(model, path)
    assert len(report.matched) == RESNET_BACKBONE_TENSORS
    assert sorted(report.unexpected) == ["fc.bias", "fc.weight"] and not report.missing
    torch.testing.assert_close(
        model.state_dict()["backbone.layer3.1.conv2.weight"],
        imagenet_like["layer3.1.conv2.weight"],
        rtol=0,
        atol=0,
    )


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    # A pickle whose loading would call os.system: weights_only refuses it unrun.
    torch.save({"w": torch.zeros(1), "payload": _Payload()}, path)
    with pytest.raises(CheckpointError, match="not a weights file we can read safely"):
        read_weights(path)
    assert not (tmp_path / "ran").exists()


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, ("touch ran",)


def test_a_file_for_another_backbone_fits_nothing(tmp_path):
    path = tmp_path / "mobilenet.pth"
    torch.save(mobilenet_v3_small(weights=None).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"No tensor of mobilenet\.pth fits"):
        load_backbone_file(_detector("resnet18"), path)
    with pytest.raises(CheckpointError, match="our own backbone"):
        load_backbone_file(_detector("yolo"), path)


def test_a_tensor_of_the_wrong_shape_is_named(tmp_path, imagenet_like):
    bad = dict(imagenet_like)
    bad["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    path = tmp_path / "bad.pth"
    torch.save(bad, path)
    with pytest.raises(CheckpointError, match=r"layer1\.0\.conv1\.weight: the file's tensor"):
        load_backbone_file(_detector("resnet18"), path)


def test_the_notes_rule_of_thumb_freezes_less_with_more_data():
    model = _detector("resnet18")
    backbone = 5  # stem, layer1..layer4
    assert default_frozen_blocks(model, 100) == backbone
    assert default_frozen_blocks(model, 2_000) == backbone // 2
    assert default_frozen_blocks(model, 50_000) == 0


# ---------------------------------------------------------------------------- upload and run


def _upload(state: dict[str, torch.Tensor], name: str = "resnet18.pth") -> SimpleUploadedFile:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return SimpleUploadedFile(name, buffer.getvalue())


@pytest.mark.django_db
def test_the_upload_reports_what_matched_and_keeps_one_copy(imagenet_like):
    first = store_backbone(_upload(imagenet_like))
    assert first["backbone"] == "resnet18" and first["tensors"] == len(imagenet_like)
    assert first["fits"]["resnet18"]["matched"] == RESNET_BACKBONE_TENSORS
    assert first["fits"]["mobilenet_v3_small"]["matched"] == 0
    again = store_backbone(_upload(imagenet_like, "copy.pth"))
    assert again["backbone_file"] == first["backbone_file"]
    assert len(list(Path(default_storage.path("backbones")).iterdir())) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (SimpleUploadedFile("w.bin", b"x"), "ends in .pth"),
        (SimpleUploadedFile("w.onnx", b"x"), "cannot be a face backbone: not an ONNX model"),
        (SimpleUploadedFile("w.pth", b"not a pickle"), "not a weights file"),
        (None, "form field 'file'"),
    ],
)
def test_bad_backbone_files_are_refused(upload, message):
    with pytest.raises(BackboneError, match=message):
        store_backbone(upload)


@pytest.mark.django_db
def test_the_api_takes_a_backbone_and_a_run_starts_from_it(
    cells, labeler_api, viewer_api, imagenet_like
):
    url = "/api/v1/training/backbones/"
    assert viewer_api.post(url, {"file": _upload(imagenet_like)}).status_code == 403
    refused = labeler_api.post(url, {"file": SimpleUploadedFile("w.pth", b"junk")})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_backbone"
    stored = labeler_api.post(url, {"file": _upload(imagenet_like)})
    assert stored.status_code == 201, stored.content
    name = stored.json()["backbone_file"]

    body = {"dataset": cells.pk, "epochs": 1, "img_size": 64, "backbone_file": name}
    ours = labeler_api.post("/api/v1/training/runs/", body, format="json")
    assert (
        ours.status_code == 400 and "needs backbone 'resnet18'" in ours.json()["error"]["message"]
    )
    unknown = {**body, "backbone": "resnet18", "backbone_file": "backbones/../../etc.pth"}
    assert labeler_api.post("/api/v1/training/runs/", unknown, format="json").status_code == 400
    started = labeler_api.post(
        "/api/v1/training/runs/", {**body, "backbone": "resnet18"}, format="json"
    )
    assert started.status_code == 201, started.content
    run_jobs()
    run = runs.TrainingRun.objects.get(pk=started.json()["id"])
    assert run.status == RunStatus.DONE, run.message
    trial = run.trials.get()
    assert trial.metrics["_transfer"]["backbone"]["matched"] == RESNET_BACKBONE_TENSORS
    # Five backbone blocks frozen (few images: the rule of thumb), the neck and heads train.
    assert len(trial.metrics["_transfer"]["frozen"]) == 5
    assert tuple(run.model_version.config["input_mean"]) == pytest.approx(IMAGENET_MEAN)


@pytest.mark.django_db
def test_a_run_from_scratch_normalises_by_its_training_images(cells, labeler):
    from training.samples import class_names_of, split_samples
    from training.trials import train_statistics

    run = runs.start_run(cells, RunConfig(epochs=1, img_size=64), user=labeler)
    run_jobs()
    run.refresh_from_db()
    train = split_samples(cells, class_names_of(cells))["train"]
    mean, std = train_statistics(train)
    config = run.model_version.config
    assert tuple(config["input_mean"]) == pytest.approx(mean, abs=1e-6)
    assert tuple(config["input_std"]) == pytest.approx(std, abs=1e-6)
    # Blood-cell slides are pink: more red than blue, far from ImageNet's or no statistics.
    assert mean[0] > mean[2] and min(std) > 0.05 and max(std) < 0.5
