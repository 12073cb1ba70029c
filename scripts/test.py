"""`make test`: lint, type-check and run the whole suite against real services.

PostgreSQL and Redis are used when they answer (CI has both at 127.0.0.1); otherwise the
suite falls back to SQLite and, for Redis, starts a local redis-server if installed.
Tests use their own Redis database number and queue names (see tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), 1):
            return True
    except OSError:
        return False


def configure_services(env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    started: list[subprocess.Popen[bytes]] = []
    if "DATABASE_URL" not in env and answers("127.0.0.1", 5432):
        env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/test"
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    if not answers("127.0.0.1", 6379) and shutil.which("redis-server"):
        started.append(
            subprocess.Popen(
                ["redis-server", "--port", "6379", "--save", ""], stdout=subprocess.DEVNULL
            )
        )
        time.sleep(0.5)
    print(f"database: {env.get('DATABASE_URL', 'sqlite (no PostgreSQL answered)')}")
    print(f"redis:    {env['REDIS_URL']} (tests use their own db number and queues)")
    return started


def run(step: str, cmd: list[str], env: dict[str, str]) -> int:
    print(f"\n== {step}: {' '.join(cmd)}", flush=True)
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


def main() -> int:
    env = os.environ.copy()
    started = configure_services(env)
    try:
        failed = [
            step
            for step, cmd in [
                ("ruff", [str(BIN / "ruff"), "check", "."]),
                ("mypy", [str(BIN / "mypy"), "."]),
            ]
            if run(step, cmd, env) != 0
        ]
        code = run("pytest", [str(BIN / "pytest"), *sys.argv[1:]], env)
        if failed:
            print(f"\nFAILED checks: {', '.join(failed)}")
            return 1
        return code
    finally:
        for proc in started:
            proc.terminate()


if __name__ == "__main__":
    sys.exit(main())
