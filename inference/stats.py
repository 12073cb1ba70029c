"""Per-channel pixel statistics, accumulated one image at a time.

Used to compute a dataset's input normalisation (mean and standard deviation per RGB
channel, on the 0..1 scale). Sums are kept in float64 so millions of pixels do not lose
precision; the variance is E[x²] - E[x]², clamped at 0 against rounding.

:meth:`ChannelStats.normalization` gives the ``(input_mean, input_std)`` pair that
``inference.yolo.YoloConfig`` stores, so serving normalises exactly as training did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


@dataclass
class ChannelStats:
    """Running sums over images of shape (H, W, C) with values in 0..255."""

    channels: int = 3
    count: int = 0
    total: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(3))
    total_sq: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        self.total = np.zeros(self.channels)
        self.total_sq = np.zeros(self.channels)

    def update(self, image: npt.NDArray[np.uint8]) -> None:
        """Add one image (H, W, C) uint8; C must equal `channels`."""
        if image.ndim != 3 or image.shape[2] != self.channels:
            raise ValueError(f"expected (H, W, {self.channels}) pixels, got {image.shape}")
        pixels = image.reshape(-1, self.channels).astype(np.float64) / 255.0
        self.count += pixels.shape[0]
        self.total += pixels.sum(axis=0)
        self.total_sq += np.square(pixels).sum(axis=0)

    def mean(self) -> list[float]:
        """Mean per channel on the 0..1 scale."""
        if self.count == 0:
            raise ValueError("no pixels were added")
        return [float(v) for v in self.total / self.count]

    def std(self) -> list[float]:
        """Population standard deviation per channel on the 0..1 scale."""
        mean = np.asarray(self.mean())
        variance = np.maximum(self.total_sq / self.count - np.square(mean), 0.0)
        return [float(v) for v in np.sqrt(variance)]

    def normalization(
        self, min_std: float = 1e-3
    ) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """``(mean, std)`` per RGB channel for ``YoloConfig(input_mean=..., input_std=...)``.

        Args:
            min_std: floor of each std: a constant channel (a grey-only set) would otherwise
                divide by zero.

        Raises:
            ValueError: not 3 channels, or no pixels added.
        """
        if self.channels != 3:
            raise ValueError(f"the detector normalises RGB: 3 channels, got {self.channels}")
        m, s = self.mean(), [max(v, min_std) for v in self.std()]
        return (m[0], m[1], m[2]), (s[0], s[1], s[2])


def dataset_normalization(
    images: Iterable[npt.NDArray[np.uint8]], min_std: float = 1e-3
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std (0..1 scale) of RGB ``uint8 (H, W, 3)`` images, pixel-weighted.

    Compute it on the training split only: validation and test stand for unseen data.
    """
    stats = ChannelStats()
    for image in images:
        stats.update(image)
    return stats.normalization(min_std)
