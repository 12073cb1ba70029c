"""Verifiers on people they never saw: ours with each backbone against dlib alone, one table.

ORL (40 people x 10 photos), 5 people-disjoint folds (``training.crossval.cross_validate``,
seed 0): in each fold 6-7 people validate, 25-26 train and 8 are tested on every
same-person pair and as many different-person pairs. Every row is scored on exactly those
pairs, in the same run:

- **ours, from scratch**: our Siamese ensemble trained per fold with its defaults.
- **ours, dlib backbone**: dlib's ResNet frozen under our head, the head trained per fold on
  the fold's training people (kept at the identity when it does not beat the backbone on
  the validation people).
- **dlib alone, whole image**: dlib's descriptor with the whole 92x112 photo as the face box
  (the previous benchmark's dlib row).
- **dlib alone, its own detector**: as ``face_recognition`` runs it: dlib's HOG face
  detector's box (the whole photo where it finds none), 5-point landmarks, descriptor.

Ours (both) see every photo framed as serving frames an upload: the shipped face
detector's largest box (the whole photo where it finds none). Then the time to embed one
face with each backbone (dlib, ours, and an ONNX export of ours through ONNX Runtime, the
path of a user's ArcFace-style file) and a whole verify request (``FacePipeline``, the
shipped face detector, two ORL photos), as ratios to dlib's own per-face time.

Usage::

    .venv/bin/python -m bench.face_verifiers [--threads 1] [--minutes M]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.faces import fold_pairs
from inference.face_backbones import (
    BackboneVerifier,
    DlibBackbone,
    OnnxBackbone,
    dlib_spec,
    onnx_spec,
)
from inference.face_pipeline import FacePipeline, largest_face
from inference.predict import Predictor
from inference.preprocess import load_rgb
from inference.siamese import EmbeddingNet, embed_face_crops, make_face_crop
from inference.verification_metrics import Calibration, calibrate
from training.crossval import CrossValidation, cross_validate
from training.formats.folders import FaceSample, load_identity_folder
from training.options import fit_config_from_args
from training.verification import DEFAULT_VERIFIER_FIT_CONFIG, DEFAULT_VERIFIER_TRAIN_CONFIG

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
METRICS = ("eer", "auc", "tar_at_far_1pct", "tar_at_far_01pct")
Json = dict[str, Any]


def log(message: str) -> None:
    print(f"[face_verifiers] {message}", flush=True)


def framed(samples: Sequence[FaceSample], detector: Predictor) -> list[FaceSample]:
    """Each photo framed by the detector's largest face, as serving frames an upload."""
    return [
        dataclasses.replace(s, box=largest_face(detector, load_rgb(s.image_path))) for s in samples
    ]


def dlib_alone(samples: Sequence[FaceSample], *, own_detector: bool) -> np.ndarray:
    """dlib's raw 128-d descriptors (Euclidean, no mirror, no head), as dlib users get them."""
    backbone = DlibBackbone(dataclasses.replace(dlib_spec(), flip_average=False))
    crops = []
    for s in samples:
        rgb = load_rgb(s.image_path)
        if own_detector:
            crops.append(backbone.make_crop(rgb, None))
        else:
            crops.append(backbone.chip(rgb, (0.0, 0.0, float(rgb.shape[1]), float(rgb.shape[0]))))
    return backbone.features(crops).astype(np.float64)


def on_folds(
    samples: Sequence[FaceSample], cv: CrossValidation, descriptors: np.ndarray
) -> list[Calibration]:
    out = []
    for fold in cv.folds:
        a, b, same = fold_pairs(samples, fold)
        out.append(calibrate(np.linalg.norm(descriptors[a] - descriptors[b], axis=1), same))
    return out


def summary(tests: Sequence[Calibration]) -> Json:
    values = {m: np.array([getattr(t, m) for t in tests], np.float64) for m in METRICS}
    return {
        "folds": [{m: float(getattr(t, m)) for m in METRICS} for t in tests],
        "mean": {m: float(v.mean()) for m, v in values.items()},
        "std": {m: float(v.std()) for m, v in values.items()},
    }


def median_s(call: Callable[[], object], runs: int = 20, warmup: int = 3) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def onnx_of(net: EmbeddingNet) -> bytes:
    """``net`` as the ONNX file a user would bring, with our crops' normalisation named."""
    import onnx

    size = net.config.input_size
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.onnx"
        torch.onnx.export(
            net.eval(),
            (torch.zeros(2, 1, size, size),),
            str(path),
            input_names=["image"],
            output_names=["embedding"],
            dynamic_axes={"image": {0: "n"}, "embedding": {0: "n"}},
            dynamo=False,
        )
        model = onnx.load(str(path))
    for key, value in (("normalize", "per_image"), ("color", "grey")):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    data: bytes = model.SerializeToString()
    return data


def latency(samples: Sequence[FaceSample], detector: Predictor, scratch: Any) -> Json:
    """Per-face embedding time of each backbone and a whole verify request, in seconds."""
    image = load_rgb(samples[0].image_path)
    box = largest_face(detector, image)
    dlib_raw = DlibBackbone(dataclasses.replace(dlib_spec(), flip_average=False))
    with_dlib = BackboneVerifier(DlibBackbone()).eval()
    onnx_net = BackboneVerifier(OnnxBackbone(onnx_of(scratch.nets[0]))).eval()
    spec = onnx_spec(onnx_net.backbone.model)  # type: ignore[attr-defined]
    verifiers = {"ours, from scratch": scratch, "ours, dlib backbone": with_dlib}
    verifiers["ours, ONNX backbone (an export of one of our nets)"] = onnx_net
    out: Json = {
        "dlib alone": median_s(lambda: dlib_raw.features([dlib_raw.make_crop(image, None)])),
        "onnx_input": [spec.input_size, spec.channels, spec.output_dim],
    }
    for name, verifier in verifiers.items():

        def one(v: Any = verifier) -> object:
            return embed_face_crops(v, [make_face_crop(v, image, box)])

        out[name] = median_s(one)
    b = load_rgb(samples[11].image_path)
    requests: Json = {}
    for name, verifier in verifiers.items():
        pipeline = FacePipeline(verifier, 1.0, detector)

        def verify(p: FacePipeline = pipeline) -> object:
            faces = [p.find_faces(x).faces[0] for x in (image, b)]
            e = p.embed([f.crop for f in faces])
            return p.compare(e[0], e[1])

        requests[name] = median_s(verify, runs=10)
    out["verify_request"] = requests
    return out


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def render(r: Json) -> str:
    rows = r["rows"]
    dlib = rows["dlib alone, whole image"]
    own = rows["dlib alone, its own detector"]
    lines = [
        "| ORL, 5 people-disjoint folds, mean ± std | EER | AUC | TAR@FAR=1% | TAR@FAR=0.1% "
        "| EER ÷ dlib (own detector) | TAR@1% − dlib (own detector) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in rows.items():
        m, sd = s["mean"], s["std"]
        ratio = m["eer"] / own["mean"]["eer"] if own["mean"]["eer"] else float("nan")
        gain = 100 * (m["tar_at_far_1pct"] - own["mean"]["tar_at_far_1pct"])
        lines.append(
            f"| {name} | {pct(m['eer'])} ± {pct(sd['eer'])} | {m['auc']:.4f} | "
            f"{pct(m['tar_at_far_1pct'])} | {pct(m['tar_at_far_01pct'])} | {ratio:.2f} | "
            f"{gain:+.1f} pts |"
        )
    shipped = rows["ours, dlib backbone"]["mean"]
    beats = (
        shipped["eer"] <= dlib["mean"]["eer"]
        and shipped["tar_at_far_1pct"] >= dlib["mean"]["tar_at_far_1pct"]
    )
    lines += [
        "",
        f"Shipped default (dlib backbone) against dlib alone as the previous benchmark ran it: "
        f"EER {pct(shipped['eer'])} vs {pct(dlib['mean']['eer'])}, TAR@1% "
        f"{pct(shipped['tar_at_far_1pct'])} vs {pct(dlib['mean']['tar_at_far_1pct'])}: "
        f"{'PASS' if beats else 'FAIL'}; moonshot EER ≤ 3%: "
        f"{'PASS' if shipped['eer'] <= 0.03 else 'FAIL'}.",
        "",
        "| time on this CPU | ms | ÷ dlib's own per-face time |",
        "|---|---|---|",
    ]
    lat = r["latency"]
    base = lat["dlib alone"]
    for name in ("dlib alone", *r["latency"]["verify_request"]):
        lines.append(
            f"| embed one face: {name} | {1000 * lat[name]:.1f} | {lat[name] / base:.2f} |"
        )
    for name, seconds in lat["verify_request"].items():
        lines.append(
            f"| verify request (2 photos: detect, crop, embed, compare): {name} | "
            f"{1000 * seconds:.1f} | {seconds / base:.2f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orl", type=Path, default=DATA / "att_faces" / "faces")
    parser.add_argument(
        "--detector", type=Path, default=REPO / "demo/models/face-detector.safetensors"
    )
    parser.add_argument("--minutes", type=float, default=None, help="ours from scratch, per fold")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    samples = load_identity_folder(args.orl)
    detector = Predictor.from_checkpoint(args.detector, device="cpu")
    log(f"framing {len(samples)} ORL photos with the shipped face detector")
    seen = framed(samples, detector)
    fit = fit_config_from_args(DEFAULT_VERIFIER_FIT_CONFIG, {"minutes": args.minutes})
    config = dataclasses.replace(DEFAULT_VERIFIER_TRAIN_CONFIG, fit_config=fit)
    log("ours from scratch, per fold")
    scratch = cross_validate(seen, args.folds, config, seed=0)
    log("ours with the dlib backbone, per fold")
    backboned = cross_validate(seen, args.folds, seed=0, backbone=DlibBackbone())
    log("dlib alone")
    rows = {
        "ours, from scratch": summary([f.test for f in scratch.folds]),
        "ours, dlib backbone": summary([f.test for f in backboned.folds]),
        "dlib alone, whole image": summary(
            on_folds(samples, scratch, dlib_alone(samples, own_detector=False))
        ),
        "dlib alone, its own detector": summary(
            on_folds(samples, scratch, dlib_alone(samples, own_detector=True))
        ),
    }
    heads = [f.best_epoch >= 0 for f in backboned.folds]
    log("latency")
    from training.verification import train_verifier

    train = [s for s in seen if s.identity in scratch.folds[0].train_people]
    val = [s for s in seen if s.identity in scratch.folds[0].val_people]
    net = train_verifier(train, val, config, seed=0).model.embedding
    result = {
        "rows": rows,
        "heads_trained": heads,
        "latency": latency(samples, detector, net),
        "threads": args.threads,
    }
    table = render(result)
    print(table)
    print(f"heads trained past the identity, per fold: {heads}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "face_verifiers.md").write_text(table + "\n")
    (args.out / "face_verifiers.json").write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
