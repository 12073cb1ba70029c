"""Pretrained backbones inside the Siamese verifier: dlib, a user's ONNX file, our head.

The ONNX path is tested with an ONNX export of one of our own nets, whose embeddings are
known from PyTorch; the dlib path on ORL photos (people dlib never saw).
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from inference.face_backbones import (
    BackboneError,
    BackboneSpec,
    BackboneVerifier,
    DlibBackbone,
    OnnxBackbone,
    ResidualHead,
    onnx_spec,
)
from inference.faces import to_tensor
from inference.siamese import (
    EmbeddingConfig,
    EmbeddingNet,
    embed_face_crops,
    load_verifier,
    make_face_crop,
    save_verifier,
)
from inference.verification_metrics import calibrate
from training.formats.folders import FaceSample
from training.verification import VerifierTrainConfig, evaluate_verifier, train_verifier

# float32 through two runtimes (PyTorch and ONNX Runtime sum convolutions in other orders):
# unit embeddings agree to ~1e-6 here; 1e-4 leaves room for other CPUs and thread counts.
RUNTIME_ATOL = 1e-4


def export_onnx(net: nn.Module, size: int, channels: int, **metadata: str) -> bytes:
    """``net`` exported as a (N, channels, size, size) -> (N, d) ONNX model with metadata."""
    buffer = io.BytesIO()
    x = torch.zeros(2, channels, size, size)
    torch.onnx.export(
        net.eval(),
        (x,),
        buffer,
        input_names=["image"],
        output_names=["embedding"],
        dynamic_axes={"image": {0: "n"}, "embedding": {0: "n"}},
        dynamo=False,
    )
    model = onnx.load_from_string(buffer.getvalue())
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model.SerializeToString()


@pytest.fixture(scope="module")
def our_net() -> EmbeddingNet:
    torch.manual_seed(0)
    config = EmbeddingConfig(input_size=32, widths=(8, 16), embedding_dim=16, flip_average=True)
    return EmbeddingNet(config).eval()


def test_an_onnx_export_of_our_net_embeds_as_the_net_does(our_net: EmbeddingNet) -> None:
    model = export_onnx(our_net, 32, 1, normalize="per_image", color="grey")
    spec = onnx_spec(model, name="ours.onnx")
    assert (spec.input_size, spec.channels, spec.output_dim) == (32, 1, 16)
    assert (spec.color, spec.normalize, spec.name) == ("grey", "per_image", "ours.onnx")
    backbone = OnnxBackbone(model, dataclasses.replace(spec, flip_average=False))
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, size=(5, 32, 32), dtype=np.uint8)
    # Grey crops as RGB with three equal channels: the file's grey conversion is exact.
    rgb = [np.repeat(g[:, :, None], 3, axis=2) for g in grey]
    with torch.no_grad():
        expected = our_net(to_tensor(grey)).numpy()
    got = backbone.features(rgb)
    np.testing.assert_allclose(got, expected, atol=RUNTIME_ATOL)
    # Mirror averaging on top: the mean of the face's and its mirror's embeddings.
    mirrored = OnnxBackbone(model, spec).features(rgb)
    with torch.no_grad():
        flipped = our_net(to_tensor(np.ascontiguousarray(grey[:, :, ::-1]))).numpy()
    np.testing.assert_allclose(mirrored, expected + flipped, atol=2 * RUNTIME_ATOL)


def test_arcface_defaults_and_given_values(our_net: EmbeddingNet) -> None:
    colour = EmbeddingNet(EmbeddingConfig(input_size=32, in_channels=3, widths=(8,)))
    model = export_onnx(colour, 32, 3)
    spec = onnx_spec(model)
    assert (spec.color, spec.normalize, spec.mean, spec.std) == ("rgb", "fixed", 127.5, 127.5)
    given = onnx_spec(model, mean=0.0, std=255.0, color="bgr")
    assert (given.mean, given.std, given.color) == (0.0, 255.0, "bgr")
    backbone = OnnxBackbone(model, dataclasses.replace(given, flip_average=False))
    crop = np.zeros((32, 32, 3), np.uint8)
    crop[..., 0] = 255  # pure red in RGB: blue once the channels are swapped for BGR
    x = backbone._inputs(crop[None])
    assert x.shape == (1, 3, 32, 32)
    assert x[0, 2].max() == pytest.approx(1.0) and x[0, 0].max() == pytest.approx(0.0)


class _Image4D(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2  # (N, C, H, W): not an embedding


class _Flat(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def test_files_that_do_not_fit_are_refused_with_what_was_found() -> None:
    with pytest.raises(BackboneError, match="not an ONNX model"):
        onnx_spec(b"\x00not a model at all" * 10)
    with pytest.raises(BackboneError, match=r"embedding output \(N, D\).*\[2, 3, 16, 16\]"):
        onnx_spec(export_onnx(_Image4D(), 16, 3))
    with pytest.raises(BackboneError, match="1 or 3 input channels"):
        onnx_spec(export_onnx(_Flat(), 16, 4))
    with pytest.raises(BackboneError, match="not the 112 px given"):
        onnx_spec(export_onnx(_Flat(), 16, 3), input_size=112)


def test_a_non_square_or_unsized_input_is_refused() -> None:
    buffer = io.BytesIO()
    torch.onnx.export(
        _Flat(),
        (torch.zeros(1, 3, 20, 16),),
        buffer,
        input_names=["image"],
        dynamo=False,
    )
    with pytest.raises(BackboneError, match="square input; this file's input is 20x16"):
        onnx_spec(buffer.getvalue())
    unsized = io.BytesIO()
    torch.onnx.export(
        _Flat(),
        (torch.zeros(1, 3, 16, 16),),
        unsized,
        input_names=["image"],
        dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}},
        dynamo=False,
    )
    with pytest.raises(BackboneError, match="give the input size"):
        onnx_spec(unsized.getvalue())
    assert onnx_spec(unsized.getvalue(), input_size=16).output_dim == 3 * 16 * 16


def test_the_untrained_head_is_the_backbone() -> None:
    features = torch.randn(6, 12) * 5
    head = ResidualHead(12)
    out = head(features)
    expected = features / features.norm(dim=1, keepdim=True)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert float(head.linear.weight.detach().abs().max()) == 0.0


def test_a_backbone_verifier_round_trips_through_its_checkpoint(
    tmp_path: Path, our_net: EmbeddingNet
) -> None:
    model = export_onnx(our_net, 32, 1, normalize="per_image", color="grey")
    verifier = BackboneVerifier(OnnxBackbone(model))
    with torch.no_grad():
        verifier.head.linear.weight.normal_(0, 0.1)
    sha = save_verifier(tmp_path / "v.safetensors", verifier, extra={"threshold": 0.7})
    loaded, extra = load_verifier(tmp_path / "v.safetensors", "cpu", expected_sha256=sha)
    assert isinstance(loaded, BackboneVerifier) and extra["threshold"] == 0.7
    assert loaded.spec == verifier.spec and isinstance(loaded.backbone, OnnxBackbone)
    assert loaded.backbone.model == model  # the file travels inside the checkpoint
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, size=(80, 60, 3), dtype=np.uint8)
    crop = make_face_crop(loaded, photo, (10.0, 10.0, 50.0, 60.0))
    assert crop.shape == (32, 32, 3)
    a, b = embed_face_crops(verifier, [crop]), embed_face_crops(loaded, [crop])
    np.testing.assert_allclose(a, b, atol=RUNTIME_ATOL)
    assert np.linalg.norm(a[0]) == pytest.approx(1.0, abs=1e-5)


def test_a_spec_refuses_impossible_settings() -> None:
    base = {"kind": "onnx", "sha256": "0" * 64, "input_size": 112, "channels": 3}
    with pytest.raises(BackboneError, match="grey"):
        BackboneSpec(**base, output_dim=512, color="grey")
    with pytest.raises(BackboneError, match="std > 0"):
        BackboneSpec(**base, output_dim=512, std=0.0)
    with pytest.raises(BackboneError, match="kind"):
        BackboneSpec(**{**base, "kind": "hub"}, output_dim=512)
    with pytest.raises(BackboneError, match="unknown backbone settings"):
        BackboneSpec.from_dict({**base, "output_dim": 512, "url": "http://x"})


# ----------------------------------------------------------------------------- the head learns
class _Lighting:
    """A backbone whose features are a person's direction plus a strong lighting term.

    Image pixel (0, 0) holds the person, (0, 1) the lighting: same-person photos under
    other light are far apart and different people under one light are close, so the
    backbone alone verifies badly and a linear head that removes the lighting dims verifies
    perfectly, on people it never trained on as well.
    """

    def __init__(self) -> None:
        self.spec = BackboneSpec(
            kind="onnx", sha256="1" * 64, input_size=8, channels=3, output_dim=16
        )

    def make_crop(self, image: np.ndarray, box: object) -> np.ndarray:
        return np.ascontiguousarray(image[:8, :8, :3])

    def features(self, crops: list[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(crops), 16), np.float32)
        for i, crop in enumerate(crops):
            person, light = int(crop[0, 0, 0]), int(crop[0, 1, 0])
            direction = np.random.default_rng(person).normal(size=8)
            out[i, :8] = direction / np.linalg.norm(direction)
            out[i, 8 + light] = 6.0
        return out


def _lit_faces(
    tmp_path: Path, people: range, lights: tuple[int, ...] = (0, 1, 2, 3)
) -> list[FaceSample]:
    from PIL import Image

    samples = []
    for person in people:
        for shot, light in enumerate(lights):
            pixels = np.zeros((8, 8, 3), np.uint8)
            pixels[0, 0], pixels[0, 1] = person, light
            path = tmp_path / f"{person}-{shot}.png"
            Image.fromarray(pixels).save(path)
            samples.append(FaceSample(image_path=path, identity=str(person), box=None))
    return samples


def test_the_head_trains_with_the_contrastive_loss_and_generalises(tmp_path: Path) -> None:
    backbone = _Lighting()
    train = _lit_faces(tmp_path, range(1, 25))
    val = _lit_faces(tmp_path, range(30, 36))
    test = _lit_faces(tmp_path, range(40, 48))
    config = VerifierTrainConfig(
        fit_config=dataclasses.replace(
            VerifierTrainConfig().fit_config, max_epochs=30, max_minutes=None, patience=30
        ),
        people_per_batch=8,
        augment=None,
    )
    untrained = BackboneVerifier(backbone).eval()
    before = evaluate_verifier(untrained, test)
    result = train_verifier(train, val, config, backbone=backbone, seed=0)
    after = evaluate_verifier(result.model, test)
    assert before.eer > 0.15 and before.auc < 0.9  # the lighting dominates its distances
    assert after.eer < 0.05 and after.eer < before.eer / 4
    assert result.best_epoch >= 0 and result.backbone == backbone.spec
    trained = result.model.embedding
    assert isinstance(trained, BackboneVerifier)
    assert float(trained.head.linear.weight.abs().max()) > 0


def test_a_head_that_cannot_beat_the_backbone_stays_the_backbone(tmp_path: Path) -> None:
    backbone = _Lighting()
    # One light for every photo: the backbone alone is already perfect, no epoch beats it.
    train = _lit_faces(tmp_path, range(1, 9), lights=(0, 0))
    val = _lit_faces(tmp_path, range(20, 24), lights=(0, 0))
    config = VerifierTrainConfig(
        fit_config=dataclasses.replace(
            VerifierTrainConfig().fit_config, max_epochs=3, max_minutes=None
        ),
        augment=None,
    )
    result = train_verifier(train, val, config, backbone=backbone)
    assert result.best_epoch == -1 and result.calibration.eer == 0.0
    kept = result.model.embedding
    assert isinstance(kept, BackboneVerifier)
    assert float(kept.head.linear.weight.abs().max()) == 0.0


# ----------------------------------------------------------------------------- dlib on ORL
def test_dlib_aligns_inside_its_own_face_box_and_tells_people_apart(shared_data: Path) -> None:
    from inference.preprocess import load_rgb

    backbone = DlibBackbone()
    assert backbone.spec.output_dim == 128 and backbone.spec.input_size == 150
    orl = shared_data / "att_faces" / "faces"
    people = [1, 2, 3, 4, 5, 6]
    photos = [(p, load_rgb(orl / f"s{p}" / f"{k}.pgm")) for p in people for k in (1, 2, 3)]
    rgb = photos[0][1]
    x1, y1, x2, y2 = backbone.face_rect(rgb, None)
    # dlib's detector boxes the face, not the whole 92x112 portrait.
    assert x1 >= 0 and x2 <= 92 and y2 <= 112 and (x2 - x1) * (y2 - y1) < 0.7 * 92 * 112
    verifier = BackboneVerifier(backbone).eval()
    crops = [make_face_crop(verifier, image, None) for _, image in photos]
    assert crops[0].shape == (150, 150, 3)
    embeddings = embed_face_crops(verifier, crops)
    assert embeddings.shape == (18, 128)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    labels = np.array([p for p, _ in photos])
    distances = np.linalg.norm(embeddings[:, None] - embeddings[None], axis=2)
    i, j = np.triu_indices(18, 1)
    calibration = calibrate(distances[i, j], labels[i] == labels[j])
    assert calibration.auc > 0.97  # dlib on six people it never saw, 18 photos
