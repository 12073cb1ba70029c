"""Decoding a batch at once gives exactly what decoding each image alone gives."""

from __future__ import annotations

import pytest
import torch

from inference.yolo import YoloConfig, decode


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("top_k", [1000, 7])
def test_batch_decode_equals_per_image_decode(seed, top_k):
    torch.manual_seed(seed)
    config = YoloConfig(
        num_classes=3,
        class_names=["a", "b", "c"],
        img_size=128,
        score_threshold=0.05,
        pre_nms_top_k=top_k,
        max_detections=20,
    )
    raws = [torch.randn(4, s, s, config.channels_per_cell) * 2 for s in config.grids]
    together = decode(raws, config)
    for n, found in enumerate(together):
        alone = decode([r[n : n + 1] for r in raws], config)[0]
        assert len(found["scores"]) <= 20
        torch.testing.assert_close(found["boxes"], alone["boxes"])
        torch.testing.assert_close(found["scores"], alone["scores"])
        assert torch.equal(found["labels"], alone["labels"])
        assert torch.all(found["scores"][:-1] >= found["scores"][1:])


def test_empty_batch_member_gets_typed_empty_results():
    config = YoloConfig(num_classes=2, class_names=["a", "b"], img_size=64, score_threshold=0.5)
    raws = [torch.full((2, s, s, config.channels_per_cell), -20.0) for s in config.grids]
    for found in decode(raws, config):
        assert found["boxes"].shape == (0, 4) and found["labels"].dtype == torch.int64
