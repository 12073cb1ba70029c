"""Load benchmark: many clients uploading and asking for detections, against gunicorn and two
Celery worker processes, once on the embedded SQLite default and once on PostgreSQL; then
the pipeline's overhead with a warm worker.

Everything runs on loopback, bounded in time: ``--clients`` threads for ``--seconds``,
each in turn uploading a BCCD photo (``POST /api/v1/images/``) and asking for its boxes
(``POST /api/v1/detect/?wait=30`` with the photo). A request fails when it answers anything
but 200/201 (a 202 "not finished within the wait" is counted apart). After the clients stop,
every job must finish. Then, with one client: the median ``POST /api/v1/detect/?wait=``
time over the median forward (plus decode and NMS) of the same model on the same photo
in this process, with the worker's thread count: the pipeline's overhead.

Usage::

    .venv/bin/python -m bench.load --clients 50 --seconds 60
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.training import start_workers

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PHOTOS = sorted((REPO / "demo" / "bccd" / "JPEGImages").iterdir())


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def multipart(field: str, name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def call(port: int, key: str, path: str, field: str, photo: Path) -> tuple[int, float]:
    body, kind = multipart(field, photo.name, photo.read_bytes())
    began = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("POST", path, body, {"Content-Type": kind, "x-api-key": key})
        response = connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - began
    except OSError:
        return 0, time.perf_counter() - began
    finally:
        connection.close()


class Stack:
    """gunicorn (gthread, as docker-compose) and two workers on one database."""

    def __init__(self, name: str, database_url: str, redis_url: str) -> None:
        self.work = Path(f"/tmp/bench-load-{name}")
        subprocess.run(["rm", "-rf", str(self.work)], check=True)
        self.work.mkdir(parents=True)
        self.port = free_port()
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "webapp.settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "QUEUE_GPU": f"load-{name}-gpu-{os.getpid()}",
            "QUEUE_DEFAULT": f"load-{name}-default-{os.getpid()}",
            "VAR_DIR": str(self.work),
            "MEDIA_ROOT": str(self.work / "media"),
            "PYTHONPATH": str(REPO),
            "TORCH_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "THROTTLE_PREFIX": f"load-{name}-{os.getpid()}",
        }
        self.procs: list[subprocess.Popen[bytes]] = []

    def manage(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=REPO, env=self.env,
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return out.stdout

    def start(self) -> str:
        self.manage("migrate", "-v", "0")
        self.manage("load_demo")
        key = self.manage(
            "shell", "-c",
            "from webapp.accounts.models import ApiToken, Role, User;"
            "u, _ = User.objects.get_or_create(username='load', defaults={'role': Role.LABELER});"
            "print(ApiToken.issue(u, 'load')[1])",
        ).strip().splitlines()[-1]  # fmt: skip
        logs = self.work / "logs"
        logs.mkdir()
        self.procs += start_workers(2, 1, self.env, logs)
        self.procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "webapp.wsgi:application",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--worker-class",
                    "gthread",
                    "--workers",
                    "2",
                    "--threads",
                    "32",
                    "--timeout",
                    "120",
                ],
                cwd=REPO,
                env=self.env,
                stdout=(logs / "gunicorn.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            time.sleep(0.2)
        time.sleep(5)  # the workers' start
        return key

    def unfinished(self) -> int:
        out = self.manage(
            "shell", "-c",
            "from webapp.jobs.models import Job;"
            "print(Job.objects.filter(status__in=['queued','running']).count())",
        )  # fmt: skip
        return int(out.strip().splitlines()[-1])

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def load(stack: Stack, key: str, clients: int, seconds: float) -> dict[str, Any]:
    results: dict[str, list[tuple[int, float]]] = {"upload": [], "detect": []}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(n: int) -> None:
        i = n
        while time.monotonic() < stop_at:
            photo = PHOTOS[i % len(PHOTOS)]
            # The 24 demo photos again and again: a photo already in the dataset answers 409
            # (a duplicate, refused before storing), counted as a right answer.
            up = call(stack.port, key, "/api/v1/images/", "file", photo)
            det = call(stack.port, key, "/api/v1/detect/?wait=30", "image", photo)
            with lock:
                results["upload"].append(up)
                results["detect"].append(det)
            i += clients

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - began
    deadline = time.monotonic() + 120
    while stack.unfinished() and time.monotonic() < deadline:
        time.sleep(1)
    out: dict[str, Any] = {"wall_s": round(wall, 1), "unfinished_jobs": stack.unfinished()}
    for kind, rows in results.items():
        ok_codes = {200, 201, 409} if kind == "upload" else {200}
        times = sorted(t for _, t in rows)
        q = statistics.quantiles(times, n=100) if len(times) >= 2 else [0.0] * 99
        out[kind] = {
            "requests": len(rows),
            "errors": sum(1 for code, _ in rows if code not in ok_codes and code != 202),
            "not_finished_202": sum(1 for code, _ in rows if code == 202),
            "per_s": round(len(rows) / wall, 2),
            "p50_ms": round(1000 * statistics.median(times), 1) if times else None,
            "p95_ms": round(1000 * q[94], 1),
            "p99_ms": round(1000 * q[98], 1),
            "codes": sorted({code for code, _ in rows}),
        }
    return out


def overhead(stack: Stack, key: str, runs: int = 30) -> dict[str, float]:
    """Median API time with a warm worker over the model's own median time, one photo."""
    import torch

    os.environ.update({k: stack.env[k] for k in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")})
    torch.set_num_threads(1)
    from inference.predict import Predictor

    photo = PHOTOS[0]
    for _ in range(3):
        call(stack.port, key, "/api/v1/detect/?wait=30", "image", photo)  # warm
    api = [call(stack.port, key, "/api/v1/detect/?wait=30", "image", photo)[1] for _ in range(runs)]
    predictor = Predictor.from_checkpoint(REPO / "demo" / "models" / "detector-bccd.safetensors")
    from inference.preprocess import load_rgb

    pixels = load_rgb(photo)
    predictor.predict([pixels])
    model = []
    for _ in range(runs):
        began = time.perf_counter()
        predictor.predict([pixels])
        model.append(time.perf_counter() - began)
    a, m = statistics.median(api), statistics.median(model)
    return {"api_ms": round(1000 * a, 1), "model_ms": round(1000 * m, 1), "ratio": round(a / m, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/11")
    args = parser.parse_args()
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        c.execute("DROP DATABASE IF EXISTS bench_load WITH (FORCE)")
        c.execute("CREATE DATABASE bench_load")
    rows = []
    for name, url in (
        ("sqlite", "sqlite:////tmp/bench-load-sqlite/db.sqlite3"),
        ("postgres", "postgres://postgres@127.0.0.1:5432/bench_load"),
    ):
        stack = Stack(name, url, args.redis)
        try:
            key = stack.start()
            log(f"{name}: {args.clients} clients for {args.seconds} s")
            result = load(stack, key, args.clients, args.seconds)
            result["overhead"] = overhead(stack, key) if name == "postgres" else None
        finally:
            stack.stop()
        log(json.dumps(result))
        rows.append((name, result))
    lines = [
        f"{args.clients} clients for {args.seconds:g} s, gunicorn gthread 2×32, 2 workers "
        "(1 thread each), loopback.",
        "",
        "| database | kind | requests | per s | errors | 202 (not finished in 30 s) | p50 ms "
        "| p95 ms | p99 ms | jobs left unfinished |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows:
        for kind in ("upload", "detect"):
            k = r[kind]
            lines.append(
                f"| {name} | {kind} | {k['requests']} | {k['per_s']} | {k['errors']} | "
                f"{k['not_finished_202']} | {k['p50_ms']} | {k['p95_ms']} | {k['p99_ms']} | "
                f"{r['unfinished_jobs']} |"
            )
    o = rows[-1][1]["overhead"]
    if o:
        lines += [
            "",
            "| pipeline overhead (warm worker, one client) | API median ms | model median ms "
            "| ratio | target |",
            "|---|---|---|---|---|",
            f"| POST /api/v1/detect/?wait=30 | {o['api_ms']} | {o['model_ms']} | {o['ratio']} "
            "| ≤ 1.3 |",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    (BENCH / "out").mkdir(exist_ok=True)
    (BENCH / "out" / "load.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
