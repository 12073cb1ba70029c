"""Settings come from the environment; bad values stop the start with the variable's name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from webapp.env import env_bool, env_int, env_list

ROOT = Path(__file__).resolve().parent.parent


def import_settings(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import webapp.settings"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
    )


def test_env_int_names_the_variable(monkeypatch):
    monkeypatch.setenv("UPLOAD_MAX_BYTES", "lots")
    with pytest.raises(ImproperlyConfigured, match="UPLOAD_MAX_BYTES must be an integer"):
        env_int("UPLOAD_MAX_BYTES", 5)


def test_env_int_minimum(monkeypatch):
    monkeypatch.setenv("WORKER_CONCURRENCY", "0")
    with pytest.raises(ImproperlyConfigured, match="WORKER_CONCURRENCY must be at least 1"):
        env_int("WORKER_CONCURRENCY", 1, minimum=1)


def test_env_bool_and_list(monkeypatch):
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="DEBUG must be a boolean"):
        env_bool("DEBUG", True)
    monkeypatch.setenv("DEBUG", "off")
    assert env_bool("DEBUG", True) is False
    monkeypatch.setenv("ALLOWED_HOSTS", "a.example, b.example ,")
    assert env_list("ALLOWED_HOSTS", []) == ["a.example", "b.example"]


def test_production_refuses_the_default_secret():
    result = import_settings(DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_bad_value_stops_start_with_its_name():
    result = import_settings(UPLOAD_MAX_PIXELS="big")
    assert result.returncode != 0
    assert "UPLOAD_MAX_PIXELS must be an integer" in result.stderr


def test_production_starts_with_a_real_secret():
    result = import_settings(DEBUG="0", SECRET_KEY="a-long-private-random-value-1234567890")
    assert result.returncode == 0, result.stderr
