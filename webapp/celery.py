"""The Celery application. Workers: `celery -A webapp worker -Q gpu,default`."""

from __future__ import annotations

import os
import threading

from celery import Celery
from celery.signals import worker_process_init, worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("webapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["webapp.jobs"])


@worker_process_init.connect
def _limit_threads(**_: object) -> None:
    # Each worker process gets its share of the cores instead of all of them, so N
    # processes on N cores do not thrash. Models are loaded lazily per process.
    threads = os.environ.get("TORCH_NUM_THREADS")
    if threads:
        import torch

        torch.set_num_threads(int(threads))


_sweeping = threading.Event()


@worker_ready.connect
def _start_sweeper(**_: object) -> None:
    # The worker's main process sweeps for jobs the broker lost or never got.
    from webapp.jobs.sweeper import start_sweeping

    start_sweeping(_sweeping)


@worker_shutdown.connect
def _stop_sweeper(**_: object) -> None:
    _sweeping.set()
