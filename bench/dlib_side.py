"""dlib side of bench/faces.py: pretrained face embeddings, run in ``bench/.venv-dlib``.

Never imported by the app: ``bench/faces.py`` runs this file with the bench-only venv's
python as a child process. It reads a JSON list of face images, embeds each with dlib's
ResNet (``dlib_face_recognition_resnet_model_v1.dat``, 128-d, Euclidean distance) after
aligning it with the 5-point landmark model, and writes the descriptors to an ``.npz`` and
the timings, versions and model files to a JSON.

The face box is the whole image (``dlib.rectangle(0, 0, w, h)``): ORL images are already
face crops, and dlib's own detector would add a detection step our verifier does not take
on them. Alignment, chip extraction and the network are what each face costs: that is the
per-face time measured here (``sp(img, box)`` + ``compute_face_descriptor(img, shape)``).

The model files come from the ``face_recognition_models`` package, located with
``importlib.util.find_spec`` because its ``__init__`` imports ``pkg_resources``, which recent
setuptools no longer ship.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

LANDMARKS = "shape_predictor_5_face_landmarks.dat"
RESNET = "dlib_face_recognition_resnet_model_v1.dat"


def model_files() -> dict[str, Path]:
    """Paths of the two model files inside the installed ``face_recognition_models``."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face_recognition_models is not installed in this venv")
    models = Path(next(iter(spec.submodule_search_locations))) / "models"
    files = {"landmarks": models / LANDMARKS, "resnet": models / RESNET}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise RuntimeError(f"model files missing: {missing}")
    return files


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    import dlib

    return {
        "dlib": str(dlib.__version__),
        "dlib_bin": version("dlib-bin"),
        "face_recognition_models": version("face_recognition_models"),
    }


def embed(args: argparse.Namespace) -> dict[str, Any]:
    """Descriptors ``(N, 128)`` of every image, and the per-face seconds of each."""
    import dlib

    files = model_files()
    predictor = dlib.shape_predictor(str(files["landmarks"]))
    resnet = dlib.face_recognition_model_v1(str(files["resnet"]))
    paths: list[str] = json.loads(Path(args.images).read_text())
    images = [np.asarray(Image.open(p).convert("RGB"), dtype=np.uint8) for p in paths]

    def one(img: np.ndarray) -> np.ndarray:
        box = dlib.rectangle(0, 0, img.shape[1], img.shape[0])
        shape = predictor(img, box)
        return np.asarray(resnet.compute_face_descriptor(img, shape), dtype=np.float32)

    for img in images[: args.warmup]:  # first calls allocate the network's buffers
        one(img)
    descriptors, seconds = [], []
    for img in images:
        t0 = time.perf_counter()
        descriptors.append(one(img))
        seconds.append(time.perf_counter() - t0)
    out = Path(args.out)
    np.savez(out, descriptors=np.stack(descriptors), seconds=np.asarray(seconds))
    return {
        "npz": str(out),
        "n_faces": len(images),
        "median_face_s": statistics.median(seconds),
        "warmup": args.warmup,
        "model_files": {k: p.name for k, p in files.items()},
        "face_box": "whole image",
        "num_jitters": 0,
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="dlib side of bench/faces.py")
    p.add_argument("mode", choices=("embed",))
    p.add_argument("--images", type=Path, required=True, help="JSON [path, ...] of face crops")
    p.add_argument("--out", type=Path, required=True, help=".npz to write")
    p.add_argument("--result", type=Path, required=True, help="JSON file to write")
    p.add_argument("--warmup", type=int, default=5)
    return p


def main() -> None:
    """Run one mode and write its JSON (plus versions)."""
    args = _parser().parse_args()
    result = embed(args)
    result["versions"] = _versions()
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(result))
    print(f"dlib_side {args.mode}: wrote {args.result}", file=sys.stderr)


if __name__ == "__main__":
    main()
