"""Training-run benchmark: a random search against the default config, and the same search
on one and on two Celery worker processes (the notes' "caviar": trials in parallel).

Everything goes through the product: BCCD imported by its VOC importer (the authors'
splits), runs started by ``training.runs.start_run`` with the defaults, trials carried out
by real Celery workers on real Redis, the best trial's test mAP@0.5 read from its row. It
uses its own PostgreSQL database (``bench_training``, created, emptied at the start), its own
Redis database and queue names, and its own media folder, so it never touches the app's.

Phases, each with the same CPU budget ``B`` (``--minutes``):

1. the default config alone, one trial of ``B`` minutes, one worker with every core;
2. a random search of ``--trials`` trials (coarse round, then a finer one around the best),
   each trial ``B / trials`` minutes, one worker with every core;
3. the same search (same seed, same sampled settings) on two workers, half the cores each.

Prints a markdown table (the ratio column is against the default config, and for the wall
time against one worker) and writes it to ``bench/out/training.md``.

Usage::

    .venv/bin/python -m bench.training --minutes 8 --trials 8
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DATA = REPO.parent / "shared" / "data" / "bccd"
WORK = Path("/tmp/bench-training")
DATABASE = "bench_training"


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def environment(args: argparse.Namespace) -> dict[str, str]:
    env = os.environ.copy()
    env.update(
        DJANGO_SETTINGS_MODULE="webapp.settings",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
        REDIS_URL=args.redis,
        QUEUE_GPU=f"bench-gpu-{os.getpid()}",
        QUEUE_DEFAULT=f"bench-default-{os.getpid()}",
        VAR_DIR=str(WORK),
        MEDIA_ROOT=str(WORK / "media"),
        PYTHONPATH=str(REPO),
    )
    return env


def create_database() -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {DATABASE}")


def start_workers(
    count: int, threads: int, env: dict[str, str], logs: Path = WORK
) -> list[subprocess.Popen[bytes]]:
    """``count`` Celery worker processes of one thread pool each, on the env's queues."""
    workers = []
    for n in range(count):
        worker_env = {**env, "OMP_NUM_THREADS": str(threads), "TORCH_NUM_THREADS": str(threads)}
        log_file = (logs / f"worker-{count}-{n}.log").open("wb")
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "webapp",
                    "worker",
                    "-Q",
                    f"{env['QUEUE_GPU']},{env['QUEUE_DEFAULT']}",
                    "--concurrency",
                    "1",
                    "--without-gossip",
                    "--without-mingle",
                    "-n",
                    f"bench{n}-{os.getpid()}@%h",
                ],
                cwd=REPO,
                env=worker_env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        )
    return workers


def stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for w in workers:
        w.terminate()
    for w in workers:
        try:
            w.wait(30)
        except subprocess.TimeoutExpired:
            w.kill()


def run_phase(
    name: str, config: Any, dataset: Any, workers: int, cores: int, env: dict[str, str]
) -> dict[str, Any]:
    from training import runs
    from training.models import TrainingRun

    log(f"{name}: {workers} worker(s) × {cores // workers} thread(s)")
    procs = start_workers(workers, max(1, cores // workers), env)
    try:
        began = time.monotonic()
        run = runs.start_run(dataset, config, user=None)
        while True:
            run = TrainingRun.objects.get(pk=run.pk)
            if run.is_finished:
                break
            time.sleep(2)
        wall = time.monotonic() - began
    finally:
        stop(procs)
    trials = list(run.trials.order_by("number"))
    done = [t for t in trials if t.objective is not None]
    best = run.best_trial
    out = {
        "phase": name,
        "status": run.status,
        "wall_s": round(wall, 1),
        "trials": len(trials),
        "trials_done": len(done),
        "best_val_map50": best.objective if best else None,
        "best_test_map50": best.metrics.get("test", {}).get("map50") if best else None,
        "best_params": best.params if best else None,
        "epochs_of_best": len(best.curves) if best else None,
        "message": run.message,
        "run": run.pk,
    }
    log(json.dumps(out))
    return out


def table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    default, one, two = results
    rows = [
        "| measure | default config | search, 1 worker | search, 2 workers | ratio |",
        "|---|---|---|---|---|",
    ]

    def f(v: Any) -> str:
        return "—" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    ratio = (
        one["best_test_map50"] / default["best_test_map50"]
        if one["best_test_map50"] and default["best_test_map50"]
        else None
    )
    rows.append(
        f"| best test mAP@0.5 | {f(default['best_test_map50'])} | {f(one['best_test_map50'])} | "
        f"{f(two['best_test_map50'])} | search ÷ default {f(ratio)} |"
    )
    rows.append(
        f"| its val mAP@0.5 | {f(default['best_val_map50'])} | {f(one['best_val_map50'])} | "
        f"{f(two['best_val_map50'])} | |"
    )
    speed = one["wall_s"] / two["wall_s"] if two["wall_s"] else None
    rows.append(
        f"| wall time (s) | {default['wall_s']} | {one['wall_s']} | {two['wall_s']} | "
        f"1 ÷ 2 workers {f(speed)} |"
    )
    rows.append(
        f"| trials finished | {default['trials_done']} | {one['trials_done']} | "
        f"{two['trials_done']} | |"
    )
    head = (
        f"BCCD (authors' splits), CPU budget {args.minutes} min per phase, search of "
        f"{args.trials} trials ({args.minutes / args.trials:.2f} min each), {args.cores} cores."
    )
    return head + "\n\n" + "\n".join(rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"needs {DATA} (the BCCD dataset)", file=sys.stderr)
        return 2
    WORK.mkdir(parents=True, exist_ok=True)
    env = environment(args)
    os.environ.update(env)
    create_database()
    import django

    django.setup()
    from django.core.management import call_command

    from training.models import TrainingRun
    from training.run_config import RunConfig, SearchSpec
    from webapp.labeling.importers import import_voc

    call_command("migrate", verbosity=0)
    dataset = import_voc(DATA, name="bccd").dataset
    log(f"imported {dataset.images.count()} images")
    default = RunConfig(minutes=args.minutes)
    search = RunConfig(minutes=args.minutes, search=SearchSpec(trials=args.trials, seed=1))
    results = [run_phase("default", default, dataset, 1, args.cores, env)]
    results.append(run_phase("search-1", search, dataset, 1, args.cores, env))
    TrainingRun.objects.all().delete()  # the same search again: not skipped as unchanged
    results.append(run_phase("search-2", search, dataset, 2, args.cores, env))
    text = table(results, args)
    print(text)
    out = BENCH / "out"
    out.mkdir(exist_ok=True)
    (out / "training.md").write_text(text)
    (out / "training.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
