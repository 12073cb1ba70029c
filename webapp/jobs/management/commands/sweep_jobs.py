"""`manage.py sweep_jobs`: send again the jobs the broker lost or never got, once (workers
do it every JOB_SWEEP_S seconds; this is for cron or an operator)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from webapp.jobs.sweeper import broker_task_ids, sweep


class Command(BaseCommand):
    help = "Send again jobs the broker lost or never got, and revive jobs of dead workers."

    def handle(self, *args: Any, **options: Any) -> None:
        if broker_task_ids() is None:
            raise CommandError("The job broker (Redis) does not answer; nothing can be sent.")
        report = sweep()
        self.stdout.write(
            f"sent {len(report.sent)} never sent, {len(report.resent)} lost by the broker, "
            f"revived {len(report.revived)} of dead workers"
        )
