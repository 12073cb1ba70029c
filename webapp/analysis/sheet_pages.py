"""The error sheet's pages: the sheet per evaluation, each case's thumbnail, the CSV import
form, a tag's review list, and a split's review list.

The sheet is rendered on the server (rows, ticks, totals); ``static/js/sheet.js`` makes
it a keyboard grid whose every change is saved at once through the sheet API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from webapp.accounts.models import signed_in_user
from webapp.accounts.permissions import user_can_edit
from webapp.analysis import actions, fixes, sheet
from webapp.analysis.crops import crop_jpeg
from webapp.analysis.models import (
    INCORRECTLY_LABELED,
    ErrorCase,
    ErrorCaseTag,
    ErrorKind,
    ErrorTag,
    Evaluation,
    TagAction,
)
from webapp.images.models import Split
from webapp.jobs.errors import JobError
from webapp.labeling import services as labeling

ALL_PAGE_SIZE = 200
SPLIT_PAGE_SIZE = 100
SORTS = {
    "sample": ("sample_key", "pk"),
    "score": ("-score", "pk"),
    "-score": ("score", "pk"),
    "kind": ("kind", "sample_key", "pk"),
    "class": ("label_class", "predicted_class", "sample_key", "pk"),
    "label_error": ("-label_error_score", "sample_key", "pk"),
    "iou": ("iou", "sample_key", "pk"),
}
SORT_LABELS = {
    "sample": "random (sample order)",
    "score": "score, highest first",
    "-score": "score, lowest first",
    "kind": "kind",
    "class": "class",
    "label_error": "likely label error first",
    "iou": "IoU, lowest first",
}


def _evaluation(evaluation_id: int) -> Evaluation:
    return get_object_or_404(
        Evaluation.objects.select_related("dataset", "model_version"), pk=evaluation_id
    )


@dataclass(frozen=True)
class Filters:
    kind: str
    label: str  # a class name, true or predicted
    tag: str  # a tag id, "none" (untagged) or ""
    sort: str

    def query(self, **extra: str) -> str:
        values = {"kind": self.kind, "class": self.label, "tag": self.tag, "sort": self.sort}
        values.update(extra)
        kept = {k: v for k, v in values.items() if v and not (k == "sort" and v == "sample")}
        return urlencode(kept)


def _filters(request: HttpRequest, tags: list[ErrorTag]) -> Filters:
    kind = request.GET.get("kind", "")
    tag = request.GET.get("tag", "")
    sort = request.GET.get("sort", "sample")
    tag_ids = {str(t.pk) for t in tags}
    sort_ok = sort in SORTS or (sort.startswith("tag:") and sort[4:] in tag_ids)
    return Filters(
        kind=kind if kind in ErrorKind.values else "",
        label=request.GET.get("class", "")[:100],
        tag=tag if tag == "none" or tag in tag_ids else "",
        sort=sort if sort_ok else "sample",
    )


def filtered(cases: QuerySet[ErrorCase], filters: Filters) -> QuerySet[ErrorCase]:
    """The cases the sheet shows under ``filters``, in their order."""
    if filters.kind:
        cases = cases.filter(kind=filters.kind)
    if filters.label:
        cases = cases.filter(Q(label_class=filters.label) | Q(predicted_class=filters.label))
    if filters.tag == "none":
        cases = cases.filter(tags__isnull=True)
    elif filters.tag:
        cases = cases.filter(tags__tag_id=int(filters.tag))
    if filters.sort.startswith("tag:"):
        ticked = ErrorCaseTag.objects.filter(case=OuterRef("pk"), tag_id=int(filters.sort[4:]))
        return cases.annotate(ticked=Exists(ticked)).order_by("-ticked", "sample_key", "pk")
    return cases.order_by(*SORTS[filters.sort])


@dataclass(frozen=True)
class Row:
    case: ErrorCase
    cells: list[tuple[ErrorTag, bool]]
    in_sample: bool

    @property
    def mislabeled(self) -> bool:
        return any(t.name == INCORRECTLY_LABELED and on for t, on in self.cells)


def _rows(cases: list[ErrorCase], tags: list[ErrorTag], sample: set[int]) -> list[Row]:
    ticks = sheet.ticks_by_case(c.pk for c in cases)
    return [
        Row(c, [(t, t.pk in ticks.get(c.pk, set())) for t in tags], c.pk in sample) for c in cases
    ]


def _choices(evaluation: Evaluation) -> dict[str, list[Any]]:
    cases = evaluation.cases.order_by()
    kinds = set(cases.values_list("kind", flat=True).distinct())
    names = set(cases.values_list("label_class", flat=True).distinct())
    names |= set(cases.values_list("predicted_class", flat=True).distinct())
    return {
        "kinds": [(v, label) for v, label in ErrorKind.choices if v in kinds],
        "classes": sorted(n for n in names if n),
    }


def _fix_context(evaluation: Evaluation) -> dict[str, Any]:
    per_split = fixes.fixes_per_split(evaluation)
    shown = [s for s in per_split if s.images or s.fixes]
    return {
        "fixes": fixes.listed_fixes(evaluation),
        "fix_count": fixes.fixes(evaluation).count(),
        "per_split": shown,
        "other_splits": [
            (s, Split(s).label, fixes.latest_evaluation_on(evaluation, s))
            for s in fixes.other_splits(evaluation.split)
        ],
    }


def _compare_context(evaluation: Evaluation) -> dict[str, Any]:
    previous = fixes.previous_evaluation(evaluation)
    return {
        "previous": previous,
        "later": fixes.next_evaluation(evaluation),
        "comparison": fixes.compare(previous, evaluation) if previous else [],
    }


@require_GET
def sheet_page(request: HttpRequest, evaluation_id: int) -> HttpResponse:
    """The error spreadsheet of one evaluation."""
    evaluation = _evaluation(evaluation_id)
    tags = sheet.dataset_tags(evaluation.dataset)
    scope = "all" if request.GET.get("all") else "sample"
    flt = _filters(request, tags)
    cases = filtered(sheet.scoped_cases(evaluation, scope), flt).select_related("image")
    page = None
    if scope == "all":
        page = Paginator(cases, ALL_PAGE_SIZE).get_page(request.GET.get("page"))
        shown = list(page.object_list)
    else:
        shown = list(cases)
    sample = set(sheet.sample_ids(evaluation))
    user = request.user
    context = {
        "evaluation": evaluation,
        "dataset": evaluation.dataset,
        "tags": tags,
        "rows": _rows(shown, tags, sample),
        "scope": scope,
        "page": page,
        "query": flt.query(all="1") if scope == "all" else flt.query(),
        "filters": flt,
        "sorts": [*SORT_LABELS.items(), *[(f"tag:{t.pk}", f"“{t.name}” first") for t in tags]],
        "totals": sheet.totals(evaluation, scope),
        "sample_size": sheet.SAMPLE_SIZE,
        "actions": TagAction.choices,
        "can_edit": user_can_edit(user),
        "can_review": labeling.can_review(user),  # type: ignore[arg-type]
        "export_url": reverse("api:evaluation-export", args=[evaluation.pk]),
        **_choices(evaluation),
        **_fix_context(evaluation),
        **_compare_context(evaluation),
    }
    return render(request, "analysis/sheet.html", context)


@require_GET
def case_crop(request: HttpRequest, case_id: int) -> HttpResponse:
    """The case's thumbnail: a JPEG cropped around the mistake with its boxes drawn."""
    case = get_object_or_404(
        ErrorCase.objects.select_related("evaluation", "image", "other_image"), pk=case_id
    )
    try:
        data, name = crop_jpeg(case)
    except (OSError, ValueError):  # the stored image is gone or unreadable
        raise Http404("The image of this case cannot be read.") from None
    etag = f'"{name.rsplit("-", 1)[-1].removesuffix(".jpg")}"'
    if request.headers.get("If-None-Match") == etag:
        return HttpResponse(status=304)
    response = HttpResponse(data, content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=86400"
    response["ETag"] = etag
    return response


@require_POST
def import_page(request: HttpRequest, evaluation_id: int) -> HttpResponse:
    """The sheet's upload form: apply a CSV and show what it did."""
    evaluation = _evaluation(evaluation_id)
    if not user_can_edit(request.user):
        messages.error(request, "Your role (viewer) cannot tag errors.")
        return redirect("analysis:sheet", evaluation.pk)
    uploaded = request.FILES.get("file")
    if uploaded is None:
        messages.error(request, "Choose a CSV file to import.")
        return redirect("analysis:sheet", evaluation.pk)
    try:
        if uploaded.size and uploaded.size > sheet.IMPORT_MAX_BYTES:
            raise sheet.SheetError("The file is too large.", code="too_large", status=413)
        report = sheet.import_csv(
            evaluation,
            uploaded.read(),
            user=signed_in_user(request.user),
            create_tags=bool(request.POST.get("create_tags")),
        )
    except JobError as error:
        messages.error(request, f"Import refused, nothing was changed: {error.message}")
        return redirect("analysis:sheet", evaluation.pk)
    return render(
        request,
        "analysis/sheet_import.html",
        {"evaluation": evaluation, "report": report, "file_name": uploaded.name},
    )


def _tag_of(evaluation: Evaluation, tag_id: int) -> ErrorTag:
    return get_object_or_404(ErrorTag, pk=tag_id, dataset_id=evaluation.dataset_id)


@require_GET
def tag_page(request: HttpRequest, evaluation_id: int, tag_id: int) -> HttpResponse:
    """A tag's review queue: the images of its cases, each linking to its labeling page."""
    evaluation = _evaluation(evaluation_id)
    tag = _tag_of(evaluation, tag_id)
    return render(
        request,
        "analysis/sheet_tag.html",
        {
            "evaluation": evaluation,
            "tag": tag,
            "items": actions.tagged_images(evaluation, tag),
            "can_review": labeling.can_review(request.user),  # type: ignore[arg-type]
        },
    )


@require_POST
def tag_send_back(request: HttpRequest, evaluation_id: int, tag_id: int) -> HttpResponse:
    """Send the tag's images back to the label queue as needs fix (reviewers)."""
    evaluation = _evaluation(evaluation_id)
    tag = _tag_of(evaluation, tag_id)
    try:
        done = actions.send_back_tagged(evaluation, tag, user=signed_in_user(request.user))
    except JobError as error:
        messages.error(request, error.message)
        return redirect("analysis:sheet-tag", evaluation.pk, tag.pk)
    kept = f"; {done.skipped} already waiting for a fix kept their comment" if done.skipped else ""
    messages.success(
        request,
        f"Sent {done.sent} image{'s' if done.sent != 1 else ''} tagged “{tag.name}” back to "
        f"the label queue{kept}.",
    )
    return redirect("analysis:sheet-tag", evaluation.pk, tag.pk)


@require_GET
def split_page(request: HttpRequest, evaluation_id: int, split: str) -> HttpResponse:
    """The same review on another split: its images, not yet fixed and most suspect first."""
    evaluation = _evaluation(evaluation_id)
    if split not in Split.values:
        raise Http404("No such split.")
    images, there = fixes.split_review(evaluation, split)
    page = Paginator(images, SPLIT_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "analysis/sheet_split.html",
        {
            "evaluation": evaluation,
            "split": split,
            "split_label": Split(split).label,
            "page": page,
            "there": there,
            "fixed": fixes.images_fixed(evaluation, split),
            "total": page.paginator.count,
        },
    )
