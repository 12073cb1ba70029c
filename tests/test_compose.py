"""docker-compose.yml describes a real deployment whose commands point at real code.

No Docker engine runs here, so the file is checked as data: services, health checks,
the media volume, the GPU reservation, and that every module a command names exists.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_health_checks():
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "web", "worker"}
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
    assert services["web"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_media_is_a_named_volume_shared_by_web_and_worker():
    spec = compose()
    assert "media" in spec["volumes"]
    for name in ("web", "worker"):
        assert "media:/data/media" in spec["services"][name]["volumes"]
        assert spec["services"][name]["environment"]["MEDIA_ROOT"] == "/data/media"


def test_worker_reuses_the_web_image_on_the_gpu_queue_with_a_gpu():
    services = compose()["services"]
    worker = services["worker"]
    assert worker["build"] == services["web"]["build"] == "."
    assert re.search(r"celery -A webapp worker -Q gpu", worker["command"])
    device = worker["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]


def test_commands_name_code_that_exists():
    web = compose()["services"]["web"]["command"]
    module, _, attr = re.search(r"gunicorn (\S+)", web).group(1).partition(":")
    assert callable(getattr(importlib.import_module(module), attr))
    assert "manage.py migrate" in web and (ROOT / "manage.py").exists()
    celery_module = importlib.import_module("webapp.celery")
    assert celery_module.app.main == "webapp"
    assert (ROOT / "Dockerfile").exists()


def test_production_settings_come_from_the_environment():
    env = compose()["services"]["web"]["environment"]
    assert env["DEBUG"] == "0"
    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")
    assert env["DATABASE_URL"].startswith("postgres://")
    assert env["REDIS_URL"] == "redis://redis:6379/0"


def test_waiting_requests_never_hold_every_web_worker():
    # A request waiting for a job holds its thread, not its process: gthread workers with
    # many threads each, and the longest wait well below gunicorn's worker timeout.
    from webapp.jobs.waiting import MAX_WAIT_S

    web = compose()["services"]["web"]["command"]
    assert "--worker-class gthread" in web
    threads = int(re.search(r"--threads (\d+)", web).group(1))
    workers = int(re.search(r"--workers (\d+)", web).group(1))
    timeout = int(re.search(r"--timeout (\d+)", web).group(1))
    assert workers * threads >= 16 and timeout / 2 >= MAX_WAIT_S
    docker = (ROOT / "Dockerfile").read_text()
    assert '"gthread"' in docker and '"--threads"' in docker
