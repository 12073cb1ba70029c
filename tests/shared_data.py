"""Where the tests find the real data sets (``../shared/data`` beside the checkout).

The folders are read-only copies of public sets (see their READMEs and the project's README,
"Data for the tests"). Without them, tests that need one skip with a single line naming
the folder, except under ``CI=true``, where a missing folder is a failure: CI must not
pass by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def shared_path(*parts: str) -> Path:
    """``SHARED_DATA/<parts>``, or skip (fail under ``CI=true``) when it is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        message = f"needs the shared data folder {path} (see README: Data for the tests)"
        if on_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def orl_faces() -> Path:
    """ORL (AT&T) faces: ``s<person>/<shot>.pgm``, 40 people x 10 photos."""
    return shared_path("att_faces", "faces")
