"""`make run`: migrate, make the demo account and data, start web + worker, print the URL.

Ctrl-C stops everything this script started. With no Redis reachable it starts a local
redis-server when one is installed, and otherwise runs jobs inside the web process.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = os.environ.get("PORT", "8000")


def redis_answers(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "localhost", parsed.port or 6379), 1
        ) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def wait_until_listening(
    host: str, port: int, children: list[subprocess.Popen[bytes]], timeout: float = 60
) -> None:
    """Print the URL only once it answers (and the worker has had its start-up time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and all(c.poll() is None for c in children):
        try:
            with socket.create_connection((host, port), 1):
                return
        except OSError:
            time.sleep(0.3)


def manage(*args: str) -> str:
    out = subprocess.run(
        [PY, "manage.py", *args], cwd=ROOT, check=True, text=True, stdout=subprocess.PIPE
    )
    return out.stdout.strip()


def start_redis(env: dict[str, str], children: list[subprocess.Popen[bytes]]) -> None:
    url = env.setdefault("REDIS_URL", "redis://localhost:6379/0")
    if redis_answers(url):
        print(f"Redis: using {url}")
        return
    server = shutil.which("redis-server")
    port = urlparse(url).port or 6379
    if server:
        print(f"Redis: none answered at {url}; starting {server} on port {port}")
        children.append(
            subprocess.Popen([server, "--port", str(port), "--save", ""], stdout=subprocess.DEVNULL)
        )
        for _ in range(50):
            if redis_answers(url):
                return
            time.sleep(0.1)
    print(
        "Redis: NOT AVAILABLE (no server answers and redis-server is not installed).\n"
        "       Jobs will run inside the web process instead of a worker."
    )
    env["JOBS_IN_PROCESS"] = "1"


def main() -> int:
    children: list[subprocess.Popen[bytes]] = []
    try:
        return start(children)
    except KeyboardInterrupt:
        # Ctrl-C during start-up: stop whatever was already started.
        print("\nStopping…")
        stop_all(children)
        return 0


def start(children: list[subprocess.Popen[bytes]]) -> int:
    env = os.environ.copy()
    (ROOT / "var").mkdir(exist_ok=True)
    start_redis(env, children)
    os.environ.update(env)  # manage() below inherits REDIS_URL / JOBS_IN_PROCESS
    manage("migrate", "--noinput")
    login = manage("ensure_demo_admin")
    print(manage("load_demo"))
    if env.get("JOBS_IN_PROCESS") != "1":
        children.append(
            subprocess.Popen(
                [
                    PY,
                    "-m",
                    "celery",
                    "-A",
                    "webapp",
                    "worker",
                    "-Q",
                    "gpu,default",
                    "--loglevel",
                    "INFO",
                    "--concurrency",
                    env.get("WORKER_CONCURRENCY", "1"),
                ],
                cwd=ROOT,
                env=env,
            )
        )
    children.append(
        subprocess.Popen(
            [PY, "manage.py", "runserver", "--noreload", f"{HOST}:{PORT}"], cwd=ROOT, env=env
        )
    )
    wait_until_listening(HOST, int(PORT), children)
    print("\n" + "=" * 60)
    print(f"  Vision Workbench is running at http://{HOST}:{PORT}/")
    print(f"  {login}")
    print("  Press Ctrl-C to stop.")
    print("=" * 60 + "\n", flush=True)
    return wait(children)


def stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()


def wait(children: list[subprocess.Popen[bytes]]) -> int:
    def stop(*_: object) -> None:
        stop_all(children)

    def on_sigterm(*_: object) -> None:
        stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("A process stopped; shutting the others down.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping…")
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
