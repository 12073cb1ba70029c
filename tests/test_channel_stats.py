from __future__ import annotations

import numpy as np
import pytest

from inference.stats import ChannelStats


@pytest.mark.parametrize("seed", range(5))
def test_matches_numpy_over_all_pixels(seed):
    rng = np.random.default_rng(seed)
    images = [
        rng.integers(0, 256, (rng.integers(1, 40), rng.integers(1, 40), 3), dtype=np.uint8)
        for _ in range(4)
    ]
    stats = ChannelStats()
    for image in images:
        stats.update(image)
    pixels = np.concatenate([i.reshape(-1, 3) for i in images]) / 255.0
    np.testing.assert_allclose(stats.mean(), pixels.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.std(), pixels.std(axis=0), rtol=1e-9)


def test_rejects_wrong_shape_and_empty():
    stats = ChannelStats()
    with pytest.raises(ValueError, match="no pixels"):
        stats.mean()
    with pytest.raises(ValueError, match=r"expected \(H, W, 3\)"):
        stats.update(np.zeros((4, 4), dtype=np.uint8))
