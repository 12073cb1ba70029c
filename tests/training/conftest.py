"""Fixtures for the pure training tests (no Django)."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real data sets, ``../shared/data`` beside the repository root."""
    path = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    assert path.is_dir(), f"shared data not found at {path}"
    return path
