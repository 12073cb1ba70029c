"""inference.runtime: device choice and safe checkpoints."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch.testing import assert_close

from inference import runtime
from inference.runtime import CheckpointError, load_checkpoint, save_checkpoint, sha256_file
from inference.yolo import YoloConfig, YoloDetector, load_detector, save_detector


def tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "w": torch.randn(3, 4, generator=g),
        "b": torch.zeros(4, dtype=torch.float64),
        "n": torch.tensor(7, dtype=torch.int64),
    }


def write(tmp_path: Path, **kw: object) -> tuple[Path, str]:
    path = tmp_path / "m.safetensors"
    args: dict = {"kind": "detector", "config": {"a": 1, "names": ["x"]}, "extra": {"map": 0.5}}
    args.update(kw)
    return path, save_checkpoint(path, tensors(), **args)


def test_round_trip(tmp_path: Path) -> None:
    path, digest = write(tmp_path)
    assert digest == sha256_file(path) and len(digest) == 64
    ck = load_checkpoint(path, expected_kind="detector", expected_sha256=digest)
    assert (ck.kind, ck.config, ck.extra) == ("detector", {"a": 1, "names": ["x"]}, {"map": 0.5})
    assert ck.format_version == runtime.FORMAT_VERSION and ck.sha256 == digest
    for k, v in tensors().items():
        assert_close(ck.tensors[k], v)
    assert not list(tmp_path.glob("*.tmp"))  # the atomic write cleaned up after itself


def test_sha256_mismatch(tmp_path: Path) -> None:
    path, _ = write(tmp_path)
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path, expected_kind="detector", expected_sha256="0" * 64)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors", expected_kind="detector")


@pytest.mark.parametrize("keep", [0, 5, 20, -10])
def test_truncated_file(tmp_path: Path, keep: int) -> None:
    path, _ = write(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    with pytest.raises(CheckpointError, match=r"not a safetensors|truncated"):
        load_checkpoint(path, expected_kind="detector")


def test_garbage_bytes(tmp_path: Path) -> None:
    path = tmp_path / "g.safetensors"
    path.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(CheckpointError, match="not a safetensors"):
        load_checkpoint(path, expected_kind="detector")


def test_corrupt_header_json(tmp_path: Path) -> None:
    path = tmp_path / "c.safetensors"
    path.write_bytes((10).to_bytes(8, "little") + b"{not json}")
    with pytest.raises(CheckpointError, match="JSON"):
        load_checkpoint(path, expected_kind="detector")


def test_pickle_renamed_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    with pytest.raises(CheckpointError, match="not a safetensors"):
        load_checkpoint(path, expected_kind="detector")
    torch_file = tmp_path / "torch.safetensors"
    torch.save(tensors(), torch_file)  # a zip of pickles
    with pytest.raises(CheckpointError):
        load_checkpoint(torch_file, expected_kind="detector")


def test_wrong_kind(tmp_path: Path) -> None:
    path, _ = write(tmp_path, kind="verifier")
    with pytest.raises(CheckpointError, match=r"'verifier'.*expected 'detector'"):
        load_checkpoint(path, expected_kind="detector")


def test_future_format_version(tmp_path: Path) -> None:
    path = tmp_path / "f.safetensors"
    meta = {"format_version": "99", "kind": "detector", "config": "{}", "extra": "{}"}
    save_file(tensors(), str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="format 99"):
        load_checkpoint(path, expected_kind="detector")


def test_foreign_safetensors_without_metadata(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    save_file(tensors(), str(path))
    with pytest.raises(CheckpointError, match="metadata"):
        load_checkpoint(path, expected_kind="detector")


def test_checkpoint_error_is_value_error() -> None:
    assert issubclass(CheckpointError, ValueError)


def test_pick_device_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(runtime.DEVICE_ENV_VAR, raising=False)
    assert runtime.pick_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.pick_device() == torch.device("cpu")
    assert runtime.pick_device("auto") == torch.device("cpu")
    with pytest.raises(runtime.DeviceError, match="CUDA is not available"):
        runtime.pick_device("cuda")
    with pytest.raises(runtime.DeviceError, match="unknown device"):
        runtime.pick_device("tpu")


def test_pick_device_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv(runtime.DEVICE_ENV_VAR, "CPU")
    assert runtime.pick_device() == torch.device("cpu")
    monkeypatch.setenv(runtime.DEVICE_ENV_VAR, "cuda")
    with pytest.raises(runtime.DeviceError):
        runtime.pick_device()
    assert runtime.pick_device("cpu") == torch.device("cpu")  # the argument wins


def small_detector() -> YoloDetector:
    torch.manual_seed(0)
    cfg = YoloConfig(num_classes=2, class_names=["a", "b"], img_size=64, width_mult=0.25)
    return YoloDetector(cfg).eval()


def test_detector_round_trip(tmp_path: Path) -> None:
    model = small_detector()
    path = tmp_path / "det.safetensors"
    digest = save_detector(path, model)
    loaded = load_detector(path, device="cpu", expected_sha256=digest)
    assert loaded.config == model.config and not loaded.training
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(model.raw_outputs(x), loaded.raw_outputs(x), strict=True):
            assert_close(a, b)


def test_detector_incompatible_weights(tmp_path: Path) -> None:
    model = small_detector()
    path = tmp_path / "det.safetensors"
    cfg = model.config.to_dict()
    cfg["num_classes"], cfg["class_names"] = 5, list("abcde")  # weights are for 2 classes
    tens = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_checkpoint(path, tens, kind="detector", config=cfg)
    with pytest.raises(CheckpointError, match="incompatible"):
        load_detector(path, device="cpu")


def test_detector_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "det.safetensors"
    save_checkpoint(path, {"x": torch.zeros(1)}, kind="detector", config={"bogus": 1})
    with pytest.raises(CheckpointError, match="incompatible"):
        load_detector(path, device="cpu")
    assert json.loads(json.dumps(small_detector().config.to_dict()))  # JSON-ready
