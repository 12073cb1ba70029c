from __future__ import annotations

import json

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from webapp.accounts.models import signed_in_user
from webapp.accounts.permissions import user_can_edit, user_is_admin
from webapp.jobs.models import Job, JobStatus
from webapp.jobs.services import cancel_job
from webapp.jobs.summaries import summarise


def visible_jobs(request: HttpRequest) -> QuerySet[Job]:
    """The jobs a user may see: all for admins, else their own (as the jobs API)."""
    jobs = Job.objects.select_related("dataset", "user")
    return jobs if user_is_admin(request.user) else jobs.filter(user=signed_in_user(request.user))


@require_GET
def job_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(visible_jobs(request), 50).get_page(request.GET.get("page"))
    return render(request, "jobs/list.html", {"page": page})


# The raw result is shown collapsed below the summary; a dataset-wide job's can be huge.
RAW_RESULT_CHARS = 20_000


@require_GET
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(visible_jobs(request), pk=job_id)
    raw = json.dumps(job.result, indent=2, ensure_ascii=False) if job.result else ""
    return render(
        request,
        "jobs/detail.html",
        {
            "job": job,
            "can_edit": user_can_edit(request.user),
            "summary": summarise(job) if job.status == JobStatus.DONE else None,
            "raw_result": raw[:RAW_RESULT_CHARS],
            "raw_truncated": len(raw) > RAW_RESULT_CHARS,
        },
    )


@require_POST
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(visible_jobs(request), pk=job_id)
    if not user_can_edit(request.user):
        messages.error(request, "Your role (viewer) cannot cancel jobs.")
    elif cancel_job(job):
        messages.info(request, f"Job #{job.pk} cancelled.")
    else:
        messages.warning(request, f"Job #{job.pk} is {job.status}; nothing to cancel.")
    return redirect(job)
