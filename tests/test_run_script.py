"""`make run`'s script on a fresh folder: DEBUG off, a kept secret, its own Redis with an
append-only file, the demo loaded, a worker that is started again when it dies."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("run_script", ROOT / "scripts" / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_prepare_environment_turns_debug_off_and_keeps_one_secret(tmp_path):
    run = _script()
    first = run.prepare_environment({"VAR_DIR": str(tmp_path)})
    assert first["DEBUG"] == "0" and first["SESSION_COOKIE_SECURE"] == "0"
    key_file = tmp_path / "secret-key"
    assert first["SECRET_KEY"] == key_file.read_text().strip() and len(first["SECRET_KEY"]) > 40
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = run.prepare_environment({"VAR_DIR": str(tmp_path)})
    assert again["SECRET_KEY"] == first["SECRET_KEY"]  # kept, not made anew at each start
    asked = run.prepare_environment({"VAR_DIR": str(tmp_path), "DEBUG": "1", "SECRET_KEY": "s"})
    assert (asked["DEBUG"], asked["SECRET_KEY"]) == ("1", "s")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def celery_pids(queue: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"celery.*-Q {queue}"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


@pytest.mark.worker
@pytest.mark.timeout(400)
def test_make_run_on_a_fresh_folder(tmp_path):
    port, redis_port, run_id = free_port(), free_port(), uuid.uuid4().hex[:8]
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DEBUG", "SECRET_KEY", "DATABASE_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        PORT=str(port),
        VAR_DIR=str(tmp_path / "var"),
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",  # none answers: the script starts one
        QUEUE_GPU=f"run-{run_id}-gpu",
        QUEUE_DEFAULT=f"run-{run_id}-default",
        TORCH_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    process = subprocess.Popen(
        [sys.executable, "scripts/run.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while not any("is running at" in line for line in lines):
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.5)
        url = f"http://127.0.0.1:{port}"
        status, body = get(f"{url}/login/")
        assert status == 200 and "Vision Workbench" in body
        status, body = get(f"{url}/no-such-page/")
        assert status == 404 and "Not found" in body
        assert "DEBUG = True" not in body and "URLconf" not in body and "REDIS_URL" not in body
        assert get(f"{url}/static/css/app.css")[0] == 200  # served with DEBUG off
        assert (tmp_path / "var" / "secret-key").exists()
        assert (tmp_path / "var" / "redis" / "appendonlydir").is_dir()

        deadline = time.monotonic() + 60
        while not celery_pids(env["QUEUE_GPU"]):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        for pid in celery_pids(env["QUEUE_GPU"]):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while not any("starting it again" in line for line in lines):
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.5)
        while not celery_pids(env["QUEUE_GPU"]):
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.5)
        assert get(f"{url}/login/")[0] == 200  # the web server kept running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
        for pid in celery_pids(env["QUEUE_GPU"]):
            os.kill(pid, signal.SIGKILL)
    assert process.returncode == 0, "".join(lines)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", redis_port), 1).close()  # its Redis stopped
