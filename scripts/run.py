"""`make run`: migrate, make the demo account and data, start web + worker, print the URL.

Ctrl-C stops everything this script started. With no Redis reachable it starts a local
redis-server (keeping an append-only file under var/, so queued jobs survive a restart)
when one is installed, and otherwise runs jobs inside the web process. A worker that dies
is started again; the web server stopping stops everything.

The app runs with DEBUG off unless the environment says ``DEBUG=1``: a 404 is then a
plain page, not Django's debug page with the settings. The secret key is generated once
and kept in ``var/secret-key`` (readable by this user only) unless ``SECRET_KEY`` is set.
"""

from __future__ import annotations

import os
import secrets
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
# A worker that keeps dying is a bug to report, not to hide: give up after this many
# restarts within RESTART_WINDOW_S.
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0


def var_dir(env: dict[str, str]) -> Path:
    return Path(env.get("VAR_DIR", str(ROOT / "var")))


def secret_key(folder: Path) -> str:
    """The secret kept in ``folder/secret-key``, generated on first use."""
    path = folder / "secret-key"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def prepare_environment(env: dict[str, str]) -> dict[str, str]:
    """The app's environment: DEBUG off unless asked, a kept secret, cookies over http."""
    env.setdefault("DEBUG", "0")
    if "SECRET_KEY" not in env:
        env["SECRET_KEY"] = secret_key(var_dir(env))
    # `make run` serves plain http on this machine: secure-only cookies would never be sent.
    env.setdefault("SESSION_COOKIE_SECURE", "0")
    env.setdefault("CSRF_COOKIE_SECURE", "0")
    if "ALLOWED_HOSTS" not in env and HOST not in ("127.0.0.1", "localhost", "0.0.0.0"):
        env["ALLOWED_HOSTS"] = f"localhost,127.0.0.1,[::1],{HOST}"
    return env


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
        data = var_dir(env) / "redis"
        data.mkdir(parents=True, exist_ok=True)
        print(f"Redis: none answered at {url}; starting {server} on port {port} (data in {data})")
        children.append(
            subprocess.Popen(
                [server, "--port", str(port), "--appendonly", "yes", "--dir", str(data)],
                stdout=subprocess.DEVNULL,
            )
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


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    queues = f"{env.get('QUEUE_GPU', 'gpu')},{env.get('QUEUE_DEFAULT', 'default')}"
    return subprocess.Popen(
        [
            PY,
            "-m",
            "celery",
            "-A",
            "webapp",
            "worker",
            "-Q",
            queues,
            "--loglevel",
            "INFO",
            "--concurrency",
            env.get("WORKER_CONCURRENCY", "1"),
        ],
        cwd=ROOT,
        env=env,
    )


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
    env = prepare_environment(os.environ.copy())
    var_dir(env).mkdir(parents=True, exist_ok=True)
    start_redis(env, children)
    os.environ.update(env)  # manage() below inherits REDIS_URL / JOBS_IN_PROCESS / DEBUG
    manage("migrate", "--noinput")
    manage("collectstatic", "--noinput", "--verbosity", "0")  # DEBUG off: WhiteNoise serves
    login = manage("ensure_demo_admin")
    print(manage("load_demo"))
    worker = None if env.get("JOBS_IN_PROCESS") == "1" else start_worker(env)
    web = subprocess.Popen(
        [PY, "manage.py", "runserver", "--noreload", f"{HOST}:{PORT}"], cwd=ROOT, env=env
    )
    children += [c for c in (worker, web) if c is not None]
    wait_until_listening(HOST, int(PORT), children)
    print("\n" + "=" * 60)
    print(f"  Vision Workbench is running at http://{HOST}:{PORT}/")
    print(f"  {login}")
    print("  Press Ctrl-C to stop.")
    print("=" * 60 + "\n", flush=True)
    return supervise(children, web, worker, env)


def stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()


def supervise(
    children: list[subprocess.Popen[bytes]],
    web: subprocess.Popen[bytes],
    worker: subprocess.Popen[bytes] | None,
    env: dict[str, str],
) -> int:
    """Keep the worker running until the web server stops (or Ctrl-C / SIGTERM)."""

    def on_sigterm(*_: object) -> None:
        stop_all(children)
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    restarts: list[float] = []
    try:
        while web.poll() is None:
            if worker is not None and worker.poll() is not None:
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < RESTART_WINDOW_S] + [now]
                if len(restarts) > MAX_RESTARTS:
                    print("The worker keeps stopping; shutting down.", file=sys.stderr)
                    return 1
                print(
                    f"The worker stopped (exit code {worker.returncode}); starting it again.",
                    file=sys.stderr,
                    flush=True,
                )
                children.remove(worker)
                worker = start_worker(env)
                children.append(worker)
            time.sleep(0.5)
        print("The web server stopped; shutting the others down.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping…")
        return 0
    finally:
        stop_all(children)


if __name__ == "__main__":
    sys.exit(main())
