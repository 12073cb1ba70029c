"""Run the detector's network through ONNX Runtime on the CPU.

On CPUs ONNX Runtime's fused convolutions run the same graph faster than eager PyTorch
(the benchmark measures it), so CPU serving exports the loaded model once and runs the
export. The graph ends with :func:`inference.yolo.dense_predictions` (every predictor's box
and class scores), so only thresholding and NMS (:func:`inference.yolo.decode_dense`) are
left to Python: small-tensor Python overhead, not arithmetic, dominated decode at batch 1.
CUDA serving keeps PyTorch. A test checks both backends give the same outputs and boxes.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from inference.yolo import YoloDetector, dense_predictions


class _DenseOutputs(nn.Module):
    """The exportable part of the detector: images in, every predictor's boxes and scores."""

    def __init__(self, model: YoloDetector) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return dense_predictions(self.model.raw_outputs(images), self.model.config)


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def export_onnx(model: YoloDetector, path: Path) -> Path:
    """Write ``model``'s network to ``path`` with a dynamic batch dimension.

    Args:
        model: the detector; it is exported in eval mode (batch norm uses running stats).
        path: destination ``.onnx`` file.
    """
    wrapper = _DenseOutputs(model).eval()
    size = model.config.img_size
    example = torch.zeros(1, 3, size, size)
    names = ["boxes", "scores"]
    with warnings.catch_warnings():
        # The legacy exporter traces the shape checks in raw_outputs; the input size is
        # fixed by the config, so the traced constants are right.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (example,),
            str(path),
            input_names=["images"],
            output_names=names,
            dynamic_axes={"images": {0: "batch"}, **{n: {0: "batch"} for n in names}},
            opset_version=17,
            dynamo=False,
        )
    return path


class OnnxRunner:
    """ONNX Runtime session for a detector's raw outputs.

    Args:
        model: the loaded detector to export.
        threads: intra-op threads (default: torch's setting, so one knob serves both).
    """

    def __init__(self, model: YoloDetector, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        # By default ORT's threads spin after each run, stealing the cores PyTorch's
        # decode + NMS runs on next (measured: decode 2.4 ms instead of 1.0 ms).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        fd, name = tempfile.mkstemp(suffix=".onnx")
        os.close(fd)
        try:
            export_onnx(model, Path(name))
            self.session = ort.InferenceSession(name, options, providers=["CPUExecutionProvider"])
        finally:
            os.unlink(name)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``images (N, 3, S, S)`` float32 → ``boxes (N, P, 4)`` and ``scores (N, P, C)``."""
        feed: NDArray[np.float32] = images.detach().cpu().numpy().astype(np.float32, copy=False)
        boxes, scores = self.session.run(None, {"images": feed})
        return torch.from_numpy(np.asarray(boxes)), torch.from_numpy(np.asarray(scores))
