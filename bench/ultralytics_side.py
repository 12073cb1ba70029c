"""The Ultralytics half of the detector benchmark, run with ``bench/.venv-ultralytics``'s python.

Only ultralytics / torch / numpy here, no project imports: the app never depends on
Ultralytics. ``bench/detector.py`` drives three modes, each writing one JSON file:

* ``train``: YOLOv8n from scratch (``yolov8n.yaml``, ``pretrained=False``) for a wall-clock
  budget (Ultralytics' ``time=``, which overrides ``epochs``).
* ``evaluate``: Ultralytics' own ``val`` on the test split (for reference) and raw
  predictions on every test image (conf 0.001, their default NMS IoU 0.7, max_det 300,
  boxes in original pixels) for the main script to score with OUR metric code.
* ``latency``: the fused ``model.model`` torch module forward + their NMS on an
  ``(N, 3, S, S)`` tensor, the same letterboxed image the main script times our model on.

Bench-only imports carry ``type: ignore[import-not-found, unused-ignore]``: the app venv that
runs mypy has no ultralytics (the project config would fail on them, ``--ignore-missing-imports``
would flag the ignore as unused).

Offline: the main script sets ``YOLO_OFFLINE=1``, ``YOLO_AUTOINSTALL=False`` and
``YOLO_CONFIG_DIR`` / ``MPLCONFIGDIR`` under /tmp. Ultralytics still probes the network in
one place those do not cover (``check_font`` asks ``requests.head`` whether Arial.ttf can be
downloaded), so we seed that font file from matplotlib, and every non-local connection is
refused and recorded in the JSON (``network_attempts``) so a new probe shows up in the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

NETWORK_ATTEMPTS: list[str] = []
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", ""}


# ----------------------------------------------------------------------------- offline guard
def _block_network() -> None:
    """Refuse and record every DNS lookup and connection to a non-local host."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host or "")
        if name not in _LOCAL_HOSTS:
            NETWORK_ATTEMPTS.append(f"dns {name}")
            raise socket.gaierror(socket.EAI_NONAME, f"bench: network disabled ({name})")
        return real_getaddrinfo(host, *args, **kwargs)

    def allowed(address: Any) -> bool:
        # Unix sockets are a str/bytes path; inet addresses are tuples.
        return not isinstance(address, tuple) or str(address[0]) in _LOCAL_HOSTS

    def connect(self: socket.socket, address: Any) -> None:
        if not allowed(address):
            NETWORK_ATTEMPTS.append(f"connect {address}")
            raise OSError(f"bench: network disabled ({address})")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not allowed(address):
            NETWORK_ATTEMPTS.append(f"connect {address}")
            return 101  # ENETUNREACH
        return real_connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect  # type: ignore[assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[assignment]


def _prepare_offline() -> None:
    """Environment for no downloads; must run before ``import ultralytics``."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    config_dir = Path(os.environ.setdefault("YOLO_CONFIG_DIR", "/tmp/bench-ultralytics-config"))
    os.environ.setdefault("MPLCONFIGDIR", str(config_dir / "matplotlib"))
    _block_network()
    # check_font looks in USER_CONFIG_DIR first; plots are off, so any TTF will do.
    font = config_dir / "Ultralytics" / "Arial.ttf"
    if not font.exists():
        import matplotlib  # type: ignore[import-not-found, unused-ignore]

        source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        font.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, font)


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    # select_device() resets torch's threads to NUM_THREADS = cpu_count - 1 (1 on 2 cores);
    # our model trains with every core, so theirs must too for an equal-budget comparison.
    import ultralytics.utils.torch_utils as torch_utils  # type: ignore[import-not-found, unused-ignore]

    torch_utils.NUM_THREADS = threads


def _versions() -> dict[str, str]:
    import torch
    import ultralytics  # type: ignore[import-not-found, unused-ignore]

    return {"ultralytics": ultralytics.__version__, "torch": torch.__version__}


# ----------------------------------------------------------------------------- modes
def train(args: argparse.Namespace) -> dict[str, Any]:
    """YOLOv8n from scratch for ``args.budget_minutes`` of wall clock."""
    from ultralytics import YOLO  # type: ignore[import-not-found, unused-ignore]

    _set_threads(args.threads)
    model = YOLO("yolov8n.yaml")
    start = time.perf_counter()
    model.train(
        data=str(args.data),
        time=args.budget_minutes / 60.0,
        epochs=1000,  # overridden by time=, which re-estimates epochs after the first one
        imgsz=args.imgsz,
        batch=args.batch,
        workers=args.workers,
        device="cpu",
        pretrained=False,
        amp=False,  # CPU: no AMP, and no check_amp (which would fetch yolo26n.pt)
        plots=False,
        project=str(args.project),
        name="train",
        exist_ok=True,
        seed=args.seed,
        verbose=False,
    )
    wall = time.perf_counter() - start
    trainer = model.trainer
    best = Path(trainer.best)
    if not best.exists():
        best = Path(trainer.last)
    return {
        "budget_seconds": args.budget_minutes * 60.0,
        "train_call_seconds": wall,
        "epochs_completed": int(trainer.epoch) + 1,
        "weights": str(best),
        "threads": args.threads,
        "workers": args.workers,
    }


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Ultralytics' own test-split val, then raw predictions per test image."""
    from ultralytics import YOLO  # type: ignore[import-not-found, unused-ignore]

    _set_threads(args.threads)
    model = YOLO(str(args.weights))
    common = {"imgsz": args.imgsz, "device": "cpu", "conf": 0.001, "iou": 0.7, "max_det": 300}
    metrics = model.val(
        data=str(args.data),
        split="test",
        batch=args.batch,
        plots=False,
        project=str(args.project),
        name="val",
        exist_ok=True,
        verbose=False,
        **common,
    )
    images: list[list[str]] = json.loads(Path(args.images).read_text())
    predictions: dict[str, dict[str, list[Any]]] = {}
    for stem, path in images:
        result = model.predict(path, verbose=False, **common)[0]
        boxes = result.boxes
        predictions[stem] = {
            "boxes": boxes.xyxy.cpu().tolist(),  # original image pixels
            "scores": boxes.conf.cpu().tolist(),
            "labels": [int(c) for c in boxes.cls.cpu().tolist()],
        }
    return {
        "own_val_test": {"map50": float(metrics.box.map50), "map50_95": float(metrics.box.map)},
        "predictions": predictions,
    }


def latency(args: argparse.Namespace) -> dict[str, Any]:
    """Median forward + NMS seconds per call on an ``(N, 3, S, S)`` tensor, per batch size."""
    import numpy as np
    import torch
    from ultralytics import YOLO  # type: ignore[import-not-found, unused-ignore]
    from ultralytics.utils.nms import non_max_suppression  # type: ignore[import-not-found, unused-ignore]
    from ultralytics.utils.torch_utils import get_flops  # type: ignore[import-not-found, unused-ignore]

    torch.set_num_threads(args.threads)
    yolo = YOLO(str(args.weights))
    # Their predict() runs the Conv+BN-fused module (AutoBackend fuse=True); time that.
    net = yolo.model.fuse(verbose=False).float().eval()
    nc = len(yolo.names)
    image = np.load(args.image)  # uint8 (S, S, 3) RGB, letterboxed by the main script
    one = torch.from_numpy(image).permute(2, 0, 1).float().div(255.0)[None]
    out: dict[str, Any] = {"threads": torch.get_num_threads(), "fused": True, "batches": {}}
    # thop's count, 2 x multiply-adds like our count_flops (0.0 if thop fails).
    out["flops"] = get_flops(net, imgsz=image.shape[0]) * 1e9
    for n in args.batch_sizes:
        x = one.expand(n, -1, -1, -1).contiguous()
        forward, nms = [], []
        with torch.inference_mode():
            for i in range(args.warmup + args.runs):
                t0 = time.perf_counter()
                preds = net(x)
                t1 = time.perf_counter()
                non_max_suppression(preds, 0.25, 0.7, max_det=300, nc=nc)
                t2 = time.perf_counter()
                if i >= args.warmup:
                    forward.append(t1 - t0)
                    nms.append(t2 - t1)
        total = [f + m for f, m in zip(forward, nms, strict=True)]
        out["batches"][str(n)] = {
            "total_s": statistics.median(total),
            "forward_s": statistics.median(forward),
            "nms_s": statistics.median(nms),
            "runs": args.runs,
        }
    return out


# ----------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Ultralytics side of bench/detector.py")
    p.add_argument("mode", choices=("train", "evaluate", "latency"))
    p.add_argument("--result", type=Path, required=True, help="JSON file to write")
    p.add_argument("--data", type=Path, help="Ultralytics data.yaml")
    p.add_argument("--project", type=Path, help="folder for Ultralytics' run outputs")
    p.add_argument("--weights", type=Path, help="a trained .pt (evaluate, latency)")
    p.add_argument("--images", type=Path, help="JSON [[stem, path], ...] to predict on")
    p.add_argument("--image", type=Path, help=".npy uint8 (S, S, 3) RGB input for latency")
    p.add_argument("--budget-minutes", type=float, default=1.0)
    p.add_argument("--imgsz", type=int, default=416)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    return p


def main() -> None:
    """Run one mode and write its JSON (plus versions and any network attempts)."""
    args = _parser().parse_args()
    _prepare_offline()
    mode = {"train": train, "evaluate": evaluate, "latency": latency}[args.mode]
    result = mode(args)
    result["versions"] = _versions()
    result["network_attempts"] = sorted(set(NETWORK_ATTEMPTS))
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(result))
    print(f"ultralytics_side {args.mode}: wrote {args.result}", file=sys.stderr)


if __name__ == "__main__":
    main()
