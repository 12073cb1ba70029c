"""Tests that need ../shared/data skip without it, and fail without it under CI=true."""

from __future__ import annotations

import pytest

from tests import shared_data


def test_a_missing_folder_skips_with_its_name(monkeypatch, tmp_path):
    monkeypatch.setattr(shared_data, "SHARED_DATA", tmp_path / "nowhere")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"nowhere/att_faces/faces"):
        shared_data.orl_faces()


@pytest.mark.parametrize("value", ["true", "1", "TRUE"])
def test_a_missing_folder_fails_under_ci(monkeypatch, tmp_path, value):
    monkeypatch.setattr(shared_data, "SHARED_DATA", tmp_path / "nowhere")
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=r"nowhere/bccd"):
        shared_data.shared_path("bccd")


def test_a_present_folder_is_returned(monkeypatch, tmp_path):
    (tmp_path / "bccd").mkdir()
    monkeypatch.setattr(shared_data, "SHARED_DATA", tmp_path)
    monkeypatch.setenv("CI", "true")
    assert shared_data.shared_path("bccd") == tmp_path / "bccd"
