"""The error spreadsheet's services: tag columns, ticks and comments, totals and ceilings,
exports and imports.

The notes' workflow (chapter 2, "Carrying out error analysis"): take about 100 mistakes
at random, tick for each the tags that describe it, and read each tag's share of all
errors; the share bounds what fixing that kind of mistake can gain. If a tag's share of
the errors is ``s`` and the split's error is ``e``, then fixing every such mistake leaves
at least the others, so the error becomes at most::

    ceiling = e × (1 − s)

(the notes: validation error 10%, 43% of the errors are great cats → fixing them all
lowers it to at most 5.7%). A case may carry several tags, so the shares need not sum to 1.

Scopes: ``sample`` is the evaluation's random sample (the :data:`SAMPLE_SIZE` cases with
the lowest ``sample_key``: random, fixed at creation) and its shares *estimate* the shares
of all errors; ``all`` is every case. Totals are always over the whole scope, never over a
filtered view, so a filter cannot change a share's denominator.

Several people tag at once: a tick is its own row (adding one twice is a no-op, removing
one is a delete), so ticks never overwrite each other; a comment is one text, so a save
names the ``comment_version`` it edited and a stale one is refused (409) with the other
person's text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from django.db import IntegrityError, transaction
from django.db.models import Count, QuerySet
from django.utils import timezone
from openpyxl import Workbook
from openpyxl.cell import Cell

from training.models import ModelKind
from webapp.accounts.models import User
from webapp.analysis.models import (
    INCORRECTLY_LABELED,
    ErrorCase,
    ErrorCaseTag,
    ErrorTag,
    Evaluation,
    TagAction,
)
from webapp.api.ids import is_id
from webapp.images.models import Dataset, Split
from webapp.jobs.errors import JobError

SAMPLE_SIZE = 100  # "get ~100 mislabeled validation examples" (the notes)
SCOPES = ("sample", "all")
MAX_TAG_NAME = 100
MAX_COMMENT = 5000
MAX_NOTE = 5000


class SheetError(JobError):
    """A sheet request refused: 400 bad input, 404 unknown ids, 409 conflicts."""

    def __init__(
        self, message: str, *, code: str = "invalid", status: int = 400, details: Any = None
    ) -> None:
        super().__init__(message, code=code, status=status, details=details)


# ---------------------------------------------------------------------------- tag columns


def normalize_name(raw: Any) -> str:
    """A tag name as stored: words separated by single spaces."""
    return " ".join(str(raw if raw is not None else "").split())


def ensure_incorrectly_labeled(dataset: Dataset) -> ErrorTag:
    """The "incorrectly labeled" column every evaluated dataset has from the start."""
    tag, _ = ErrorTag.objects.get_or_create(dataset=dataset, name=INCORRECTLY_LABELED)
    return tag


def dataset_tags(dataset: Dataset) -> list[ErrorTag]:
    """The dataset's columns in sheet order ("incorrectly labeled" first, then by name)."""
    ensure_incorrectly_labeled(dataset)
    tags = list(ErrorTag.objects.filter(dataset=dataset).order_by("name", "pk"))
    return sorted(tags, key=lambda t: t.name != INCORRECTLY_LABELED)


def _valid_name(dataset: Dataset, raw: Any, *, exclude: int | None = None) -> str:
    name = normalize_name(raw)
    if not name:
        raise SheetError("A tag needs a name.", details={"field": "name"})
    if len(name) > MAX_TAG_NAME:
        raise SheetError(f"A tag name has at most {MAX_TAG_NAME} characters.")
    # Unique regardless of case: "Blurry" and "blurry" would split one column in two.
    clash = ErrorTag.objects.filter(dataset=dataset, name__iexact=name)
    if clash.exclude(pk=exclude or 0).exists():
        raise SheetError(
            f"The dataset already has a tag “{name}”.",
            code="duplicate_tag",
            status=409,
            details={"name": name},
        )
    return name


def _valid_action(raw: Any) -> str:
    action = "" if raw is None else str(raw)
    if action not in TagAction.values:
        allowed = ", ".join(repr(v) for v in TagAction.values)
        raise SheetError(f"action must be one of {allowed}.", details={"field": "action"})
    return action


def _valid_note(raw: Any) -> str:
    note = str(raw if raw is not None else "").strip()
    if len(note) > MAX_NOTE:
        raise SheetError(f"A note has at most {MAX_NOTE} characters.")
    return note


def create_tag(dataset: Dataset, data: dict[str, Any], *, user: User | None) -> ErrorTag:
    """A new column of ``dataset``'s sheet (``name``, optional ``action`` and ``note``)."""
    name = _valid_name(dataset, data.get("name"))
    action, note = _valid_action(data.get("action", "")), _valid_note(data.get("note", ""))
    try:
        with transaction.atomic():
            return ErrorTag.objects.create(
                dataset=dataset, name=name, action=action, note=note, created_by=user
            )
    except IntegrityError:  # someone created the same name between the check and now
        raise SheetError(
            f"The dataset already has a tag “{name}”.", code="duplicate_tag", status=409
        ) from None


def update_tag(tag: ErrorTag, data: dict[str, Any]) -> ErrorTag:
    """Rename a column, or set its action or note. Every field is checked before saving."""
    fields: dict[str, Any] = {}
    if "name" in data:
        if tag.name == INCORRECTLY_LABELED and normalize_name(data["name"]) != tag.name:
            raise SheetError(
                f"“{INCORRECTLY_LABELED}” is the column every sheet has; it keeps its name.",
                code="protected_tag",
                status=409,
            )
        fields["name"] = _valid_name(tag.dataset, data["name"], exclude=tag.pk)
    if "action" in data:
        fields["action"] = _valid_action(data["action"])
    if "note" in data:
        fields["note"] = _valid_note(data["note"])
    unknown = set(data) - {"name", "action", "note", "id", "dataset"}
    if unknown:
        raise SheetError(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    for key, value in fields.items():
        setattr(tag, key, value)
    if fields:
        tag.save(update_fields=list(fields))
    return tag


def delete_tag(tag: ErrorTag) -> None:
    """Delete a column and its ticks (not "incorrectly labeled": every sheet has it)."""
    if tag.name == INCORRECTLY_LABELED:
        raise SheetError(
            f"“{INCORRECTLY_LABELED}” cannot be deleted: every sheet has it.",
            code="protected_tag",
            status=409,
        )
    tag.delete()


def tag_json(tag: ErrorTag) -> dict[str, Any]:
    return {
        "id": tag.pk,
        "dataset": tag.dataset_id,
        "name": tag.name,
        "action": tag.action,
        "note": tag.note,
        "protected": tag.name == INCORRECTLY_LABELED,
    }


# ---------------------------------------------------------------------------- scopes


def parse_scope(raw: str | None) -> str:
    scope = raw or "sample"
    if scope not in SCOPES:
        raise SheetError("scope must be 'sample' or 'all'.", details={"field": "scope"})
    return scope


def sample_ids(evaluation: Evaluation) -> list[int]:
    """The random sample: the :data:`SAMPLE_SIZE` cases with the lowest ``sample_key``."""
    ordered = evaluation.cases.order_by("sample_key", "pk")
    return list(ordered.values_list("pk", flat=True)[:SAMPLE_SIZE])


def scoped_cases(evaluation: Evaluation, scope: str) -> QuerySet[ErrorCase]:
    cases = ErrorCase.objects.filter(evaluation=evaluation)
    return cases.filter(pk__in=sample_ids(evaluation)) if scope == "sample" else cases


def ticks_by_case(case_ids: Iterable[int]) -> dict[int, set[int]]:
    """``{case id: {tag id, ...}}`` for the given cases."""
    found: dict[int, set[int]] = {}
    rows = ErrorCaseTag.objects.filter(case_id__in=list(case_ids)).values_list("case_id", "tag_id")
    for case_id, tag_id in rows:
        found.setdefault(case_id, set()).add(tag_id)
    return found


# ---------------------------------------------------------------------------- totals


def ceiling(error_rate: float | None, share: float | None) -> float | None:
    """The lowest error fixing every case of a tag can reach: ``error_rate × (1 − share)``.

    Fixing them all removes at most that share of the errors; the rest remain.
    """
    if error_rate is None or share is None:
        return None
    return error_rate * (1.0 - share)


SPLIT_WORDS: dict[str, str] = {
    Split.TRAIN.value: "training",
    Split.TRAIN_VAL.value: "train-val",
    Split.VAL.value: "validation",
    Split.TEST.value: "test",
}


def split_error(evaluation: Evaluation) -> str:
    """Which error ``error_rate`` is: "validation error", "test error", ..."""
    return f"{SPLIT_WORDS.get(evaluation.split, evaluation.split)} error"


def error_measure(evaluation: Evaluation) -> str:
    """How ``error_rate`` was measured, in words."""
    if evaluation.model_version.kind == ModelKind.VERIFIER:
        return "the error rate at the verifier's threshold"
    return "1 − F1 at the working threshold"


@dataclass(frozen=True)
class TagTotal:
    tag_id: int
    name: str
    action: str
    count: int
    share: float | None  # of the errors in scope, 0..1
    ceiling: float | None  # error_rate × (1 − share)
    sentence: str

    @property
    def share_text(self) -> str:
        return percent(self.share)

    @property
    def ceiling_text(self) -> str:
        return percent(self.ceiling)


@dataclass(frozen=True)
class Totals:
    evaluation: int
    scope: str
    errors: int  # the denominator: errors in scope
    all_errors: int
    error_rate: float | None
    split_error: str  # e.g. "validation error"
    measure: str  # e.g. "1 − F1 at the working threshold"
    split: str
    untagged: int
    tags: list[TagTotal] = field(default_factory=list)

    @property
    def error_rate_text(self) -> str:
        return percent(self.error_rate)

    def as_json(self) -> dict[str, Any]:
        return {
            "evaluation": self.evaluation,
            "scope": self.scope,
            "errors": self.errors,
            "all_errors": self.all_errors,
            "error_rate": self.error_rate,
            "split_error": self.split_error,
            "measure": self.measure,
            "split": self.split,
            "untagged": self.untagged,
            "tags": [asdict(t) for t in self.tags],
        }


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _sentence(split_error: str, name: str, error_rate: float | None, cap: float | None) -> str:
    """The notes' reading of a ceiling, e.g. "Fixing every “blurry” error would lower
    validation error from 10.0% to at most 5.7%."."""
    if error_rate is None:
        return f"Fixing every “{name}” error: this evaluation has no error rate to scale."
    if cap is None:
        return f"Fixing every “{name}” error: no errors in scope yet."
    return (
        f"Fixing every “{name}” error would lower {split_error} from {percent(error_rate)} "
        f"to at most {percent(cap)}."
    )


def totals(evaluation: Evaluation, scope: str = "sample") -> Totals:
    """Each tag's count, share of the errors in ``scope``, and the ceiling it implies."""
    cases = scoped_cases(evaluation, scope)
    errors = cases.count()
    counts = dict(
        ErrorCaseTag.objects.filter(case__in=cases)
        .values("tag")
        .annotate(n=Count("id"))
        .values_list("tag", "n")
    )
    untagged = cases.filter(tags__isnull=True).count()
    words = split_error(evaluation)
    rows = []
    for tag in dataset_tags(evaluation.dataset):
        count = int(counts.get(tag.pk, 0))
        share = count / errors if errors else None
        cap = ceiling(evaluation.error_rate, share)
        sentence = _sentence(words, tag.name, evaluation.error_rate, cap)
        rows.append(TagTotal(tag.pk, tag.name, tag.action, count, share, cap, sentence))
    return Totals(
        evaluation=evaluation.pk,
        scope=scope,
        errors=errors,
        all_errors=evaluation.cases.count(),
        error_rate=evaluation.error_rate,
        split_error=words,
        measure=error_measure(evaluation),
        split=evaluation.split,
        untagged=untagged,
        tags=rows,
    )


# ---------------------------------------------------------------------------- one case


def case_json(case: ErrorCase, tag_ids: set[int]) -> dict[str, Any]:
    """A case as the API and the sheet see it."""
    return {
        "id": case.pk,
        "evaluation": case.evaluation_id,
        "kind": case.kind,
        "image": case.image_id,
        "other_image": case.other_image_id,
        "label_class": case.label_class,
        "predicted_class": case.predicted_class,
        "score": case.score,
        "iou": case.iou,
        "distance": case.distance,
        "label_error_score": case.label_error_score,
        "label_error_kind": case.label_error_kind,
        "tags": sorted(tag_ids),
        "comment": case.comment,
        "comment_version": case.comment_version,
        "updated_by": case.updated_by.username if case.updated_by else None,
        "updated_at": case.updated_at.isoformat() if case.updated_at else None,
    }


def load_case(case_id: int) -> ErrorCase:
    found = (
        ErrorCase.objects.select_related("evaluation__dataset", "updated_by")
        .filter(pk=case_id)
        .first()
    )
    if found is None:
        raise SheetError(f"No error case with id {case_id}.", code="unknown_case", status=404)
    return found


def _tag_ids(raw: Any, name: str, allowed: set[int]) -> list[int]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in raw
    ):
        raise SheetError(f"{name} must be a list of tag ids.", details={"field": name})
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise SheetError(
            f"{name}: tag(s) {unknown} are not columns of this dataset.",
            code="unknown_tag",
            details={"field": name, "tags": unknown},
        )
    return list(dict.fromkeys(raw))


@dataclass(frozen=True)
class CaseUpdate:
    """A validated change of one case: ticks to add and remove, maybe a comment."""

    add: list[int]
    remove: list[int]
    comment: str | None
    comment_version: int | None


def parse_update(case: ErrorCase, data: Any) -> CaseUpdate:
    """Check a PATCH body (``add_tags``, ``remove_tags``, ``comment`` + ``comment_version``)."""
    if not isinstance(data, dict):
        raise SheetError("The body must be a JSON object.")
    unknown = set(data) - {"add_tags", "remove_tags", "comment", "comment_version"}
    if unknown:
        raise SheetError(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    allowed = set(
        ErrorTag.objects.filter(dataset_id=case.evaluation.dataset_id).values_list("pk", flat=True)
    )
    add = _tag_ids(data.get("add_tags"), "add_tags", allowed)
    remove = _tag_ids(data.get("remove_tags"), "remove_tags", allowed)
    if set(add) & set(remove):
        raise SheetError("A tag cannot be added and removed at once.")
    comment, version = data.get("comment"), data.get("comment_version")
    if comment is not None:
        if not isinstance(comment, str):
            raise SheetError("comment must be text.", details={"field": "comment"})
        if len(comment) > MAX_COMMENT:
            raise SheetError(f"A comment has at most {MAX_COMMENT} characters.")
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise SheetError(
                "Send the comment_version you edited with the comment, so a save cannot "
                "overwrite someone else's.",
                details={"field": "comment_version"},
            )
    return CaseUpdate(add, remove, comment, version if comment is not None else None)


class StaleComment(SheetError):
    """The comment changed since the caller read it."""

    def __init__(self, case: ErrorCase, expected: int) -> None:
        who = case.updated_by.username if case.updated_by else "someone"
        when = f" at {timezone.localtime(case.updated_at):%H:%M:%S}" if case.updated_at else ""
        super().__init__(
            f"{who} changed this comment{when} after you loaded it; yours was not saved. "
            f"Their text: “{case.comment}”",
            code="stale_comment",
            status=409,
            details={
                "comment": case.comment,
                "comment_version": case.comment_version,
                "expected": expected,
                "updated_by": who,
                "updated_at": case.updated_at.isoformat() if case.updated_at else None,
            },
        )


def apply_update(case_id: int, update: CaseUpdate, *, user: User) -> ErrorCase:
    """Write a validated change; a stale comment writes nothing (the whole change is one
    transaction and the version is checked with the row locked)."""
    with transaction.atomic():
        case = ErrorCase.objects.select_for_update().get(pk=case_id)
        now = timezone.now()
        fields: dict[str, Any] = {"updated_by": user, "updated_at": now}
        if update.comment is not None:
            assert update.comment_version is not None
            if case.comment_version != update.comment_version:
                case.refresh_from_db()  # with updated_by for the message
                raise StaleComment(case, update.comment_version)
            if case.comment != update.comment:
                fields["comment"] = update.comment
                fields["comment_version"] = case.comment_version + 1
        ErrorCaseTag.objects.bulk_create(
            [ErrorCaseTag(case_id=case_id, tag_id=t, user=user) for t in update.add],
            ignore_conflicts=True,  # ticked by someone else meanwhile: one tick is enough
        )
        if update.remove:
            ErrorCaseTag.objects.filter(case_id=case_id, tag_id__in=update.remove).delete()
        if update.add or update.remove or len(fields) > 2:
            ErrorCase.objects.filter(pk=case_id).update(**fields)
    return load_case(case_id)


# ---------------------------------------------------------------------------- export

TAG_PREFIX = "tag:"
BASE_COLUMNS = [
    "case",
    "image",
    "image_name",
    "labeling_url",
    "other_image",
    "kind",
    "true_class",
    "predicted_class",
    "score",
    "iou",
    "distance",
    "label_error_score",
    "label_error_kind",
    "in_sample",
]
TAIL_COLUMNS = ["comment", "comment_version"]
NUMBER_COLUMNS = {"score", "iou", "distance", "label_error_score"}
# Spreadsheets run text that starts with these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[Any]]  # numbers as numbers, text as text, None for empty


def export_table(evaluation: Evaluation, scope: str, image_url: Callable[[int], str]) -> Table:
    """The sheet's rows: one per case in ``scope``, tags as 1/0 columns ``tag:<name>``.

    ``image_url(image id)`` gives the absolute link to the image's labeling page.
    """
    tags = dataset_tags(evaluation.dataset)
    cases = list(
        scoped_cases(evaluation, scope).select_related("image").order_by("sample_key", "pk")
    )
    ticks = ticks_by_case(c.pk for c in cases)
    in_sample = set(sample_ids(evaluation))
    columns = BASE_COLUMNS + [TAG_PREFIX + t.name for t in tags] + TAIL_COLUMNS
    rows = []
    for case in cases:
        mine = ticks.get(case.pk, set())
        base: list[Any] = [
            *(case.pk, case.image_id, str(case.image), image_url(case.image_id)),
            *(case.other_image_id, case.kind, case.label_class, case.predicted_class),
            *(case.score, case.iou, case.distance, case.label_error_score),
            *(case.label_error_kind, int(case.pk in in_sample)),
        ]
        tick_cells = [int(t.pk in mine) for t in tags]
        rows.append([*base, *tick_cells, case.comment, case.comment_version])
    return Table(columns, rows)


def totals_table(summary: Totals) -> Table:
    """The totals as rows: tag, count, share, ceiling (numbers; shares as fractions)."""
    rows: list[list[Any]] = [
        [t.name, t.count, t.share, t.ceiling, t.action, t.sentence] for t in summary.tags
    ]
    rows.append(["(no tag)", summary.untagged, _share(summary.untagged, summary.errors), None])
    return Table(["tag", "count", "share", "ceiling", "action", "meaning"], rows)


def _share(count: int, total: int) -> float | None:
    return count / total if total else None


def _csv_text(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return "" if value is None else value


def write_csv(table: Table, stream: IO[str]) -> None:
    writer = csv.writer(stream)
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow([_csv_text(v) for v in row])


def _text_cell(cell: Cell, value: Any) -> None:
    cell.value = value
    if isinstance(value, str):
        cell.data_type = "s"  # never a formula, whatever the text starts with


def _write_sheet(sheet: Any, table: Table, *, links: str | None = None) -> None:
    sheet.append(table.columns)
    link_col = table.columns.index(links) + 1 if links else None
    for r, row in enumerate(table.rows, start=2):
        for c, value in enumerate(row, start=1):
            cell = sheet.cell(row=r, column=c)
            _text_cell(cell, value)
            if c == link_col and value:
                cell.hyperlink = str(value)
                cell.style = "Hyperlink"
    sheet.freeze_panes = "A2"


def write_xlsx(evaluation: Evaluation, table: Table, summary: Totals, stream: IO[bytes]) -> None:
    """Two sheets: ``errors`` (the rows, with links) and ``totals`` (counts, shares and
    ceilings as numbers, shares formatted as percentages)."""
    book = Workbook()
    rows = book.active
    assert rows is not None
    rows.title = "errors"
    _write_sheet(rows, table, links="labeling_url")
    sheet = book.create_sheet("totals")
    _write_sheet(sheet, totals_table(summary))
    for row in sheet.iter_rows(min_row=2, min_col=3, max_col=4):
        for cell in row:
            cell.number_format = "0.0%"
    facts: list[tuple[str, Any]] = [
        ("evaluation", evaluation.pk),
        ("split", evaluation.split),
        ("error rate", summary.error_rate),
        ("error", f"{summary.split_error} ({summary.measure})"),
        ("scope", summary.scope),
        ("errors in scope", summary.errors),
        ("all errors", summary.all_errors),
    ]
    start = sheet.max_row + 2
    for i, (name, value) in enumerate(facts):
        _text_cell(sheet.cell(row=start + i, column=1), name)
        _text_cell(sheet.cell(row=start + i, column=2), value)
    sheet.cell(row=start + 2, column=2).number_format = "0.0%"
    book.save(stream)


# ---------------------------------------------------------------------------- import

IMPORT_MAX_BYTES = 20 * 1024 * 1024
IMPORT_MAX_ROWS = 200_000
YES = {"1", "1.0", "yes", "y", "true", "x", "✓"}
NO = {"", "0", "0.0", "no", "n", "false"}


@dataclass
class ImportReport:
    rows: int = 0
    matched: int = 0
    ticks_added: int = 0
    ticks_removed: int = 0
    comments_changed: int = 0
    created_tags: list[str] = field(default_factory=list)
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Row:
    line: int
    case: ErrorCase
    ticks: dict[str, bool]  # tag name -> ticked
    comment: str | None
    comment_version: int | None


def _uncsv(value: str) -> str:
    """Undo the export's formula guard ("'=x" was "=x")."""
    if value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def _read_csv(data: bytes) -> tuple[list[str], list[list[str]]]:
    if len(data) > IMPORT_MAX_BYTES:
        raise SheetError(
            f"The file is over {IMPORT_MAX_BYTES // (1024 * 1024)} MB.",
            code="too_large",
            status=413,
        )
    try:
        text = data.decode("utf-8-sig")  # Excel writes a BOM
    except UnicodeDecodeError:
        raise SheetError("The file is not UTF-8 text (save the sheet as CSV UTF-8).") from None
    try:
        lines = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as error:
        raise SheetError(f"The file is not a readable CSV: {error}.") from None
    if not lines:
        raise SheetError("The file is empty.")
    if len(lines) > IMPORT_MAX_ROWS:
        raise SheetError(f"The file has over {IMPORT_MAX_ROWS} rows.")
    header = [h.strip() for h in lines[0]]
    if "case" not in header:
        raise SheetError(
            "The file has no “case” column: import a CSV exported from this sheet "
            "(the case id is how rows are matched)."
        )
    repeated = sorted({h for h in header if h and header.count(h) > 1})
    if repeated:
        raise SheetError(f"Column(s) named twice: {', '.join(repeated)}.")
    return header, lines[1:]


def _tick(raw: str, line: int, column: str) -> bool:
    value = raw.strip().casefold()
    if value in YES:
        return True
    if value in NO:
        return False
    raise SheetError(
        f"Row {line}, column “{column}”: “{raw}” is not a tick (use 1 or 0).",
        details={"row": line, "column": column},
    )


def _tag_columns(
    evaluation: Evaluation, header: list[str], create: bool
) -> tuple[dict[str, str], list[str]]:
    """``{column: tag name}`` and the names to create; unknown names refused unless
    ``create``."""
    known = {t.name.casefold(): t.name for t in dataset_tags(evaluation.dataset)}
    columns: dict[str, str] = {}
    new: list[str] = []
    for column in header:
        if not column.startswith(TAG_PREFIX):
            continue
        name = normalize_name(column[len(TAG_PREFIX) :])
        if not name or len(name) > MAX_TAG_NAME:
            raise SheetError(f"Column “{column}” does not name a tag.")
        if name.casefold() in known:
            columns[column] = known[name.casefold()]
            continue
        columns[column] = name
        new.append(name)
    if new and not create:
        raise SheetError(
            f"The file has tag column(s) this dataset does not: {', '.join(new)}. Create them "
            "first, or import with create_tags=1; nothing was imported.",
            code="unknown_tag",
            details={"tags": new},
        )
    return columns, new


def _case_for(
    raw: str, line: int, cases: dict[int, ErrorCase], evaluation: Evaluation, seen: dict[int, int]
) -> tuple[ErrorCase | None, dict[str, Any] | None]:
    value = raw.strip()
    if not is_id(value):
        return None, {"row": line, "case": raw, "reason": "not a case id"}
    case = cases.get(int(value))
    if case is None:
        return None, {"row": line, "case": raw, "reason": "no such error case"}
    if case.evaluation_id != evaluation.pk:
        reason = f"a case of evaluation {case.evaluation_id}, not of this one"
        return None, {"row": line, "case": raw, "reason": reason}
    if case.pk in seen:
        return None, {"row": line, "case": raw, "reason": f"the same case as row {seen[case.pk]}"}
    seen[case.pk] = line
    return case, None


def _version(raw: str | None, line: int) -> int | None:
    if raw is None or not raw.strip():
        return None
    text = raw.strip().removesuffix(".0")
    if not (text.isascii() and text.isdigit() and len(text) < 19):  # 0 is a version
        raise SheetError(f"Row {line}: comment_version “{raw}” is not a whole number.")
    return int(text)


def _parse_rows(
    evaluation: Evaluation, header: list[str], lines: list[list[str]], tag_columns: dict[str, str]
) -> tuple[list[_Row], list[dict[str, Any]]]:
    index = {name: i for i, name in enumerate(header)}
    ids = [ln[index["case"]].strip() for ln in lines if len(ln) > index["case"]]
    wanted = [int(i) for i in ids if is_id(i)]
    cases = ErrorCase.objects.in_bulk(wanted)
    rows: list[_Row] = []
    unmatched: list[dict[str, Any]] = []
    seen: dict[int, int] = {}
    for offset, cells in enumerate(lines):
        line = offset + 2  # the header is line 1, as a spreadsheet numbers it
        if not any(c.strip() for c in cells):
            continue
        cells = cells + [""] * (len(header) - len(cells))

        def get(name: str, cells: list[str] = cells) -> str | None:
            return cells[index[name]] if name in index else None

        case, problem = _case_for(cells[index["case"]], line, cases, evaluation, seen)
        ticks = {tag: _tick(cells[index[col]], line, col) for col, tag in tag_columns.items()}
        comment = get("comment")
        version = _version(get("comment_version"), line)
        if comment is not None and len(comment) > MAX_COMMENT:
            raise SheetError(f"Row {line}: a comment has at most {MAX_COMMENT} characters.")
        if problem:
            unmatched.append(problem)
            continue
        assert case is not None
        rows.append(_Row(line, case, ticks, None if comment is None else _uncsv(comment), version))
    return rows, unmatched


def import_csv(
    evaluation: Evaluation, data: bytes, *, user: User, create_tags: bool = False
) -> ImportReport:
    """Apply tags and comments made offline in a CSV exported from this sheet.

    Rows are matched by ``case`` id. The whole file is checked before anything is written:
    a malformed file, a value that is not a tick, or (without ``create_tags``) a tag column
    the dataset lacks refuses the import. Rows that match no case of this evaluation are
    skipped and listed; a comment edited here since the export (its ``comment_version``
    moved on) is not overwritten but listed as a conflict. A tag column sets the tick
    exactly (1 ticks, 0 or empty unticks); a missing column leaves those ticks alone.
    """
    header, lines = _read_csv(data)
    tag_columns, new_tags = _tag_columns(evaluation, header, create_tags)
    rows, unmatched = _parse_rows(evaluation, header, lines, tag_columns)
    report = ImportReport(rows=len(rows) + len(unmatched), matched=len(rows), unmatched=unmatched)
    with transaction.atomic():
        for name in new_tags:
            ErrorTag.objects.get_or_create(
                dataset=evaluation.dataset, name=name, defaults={"created_by": user}
            )
        report.created_tags = new_tags
        by_name = {t.name: t.pk for t in ErrorTag.objects.filter(dataset=evaluation.dataset)}
        _apply_ticks(rows, by_name, user, report)
        _apply_comments(rows, user, report)
    return report


def _apply_ticks(
    rows: list[_Row], by_name: dict[str, int], user: User, report: ImportReport
) -> None:
    current = ticks_by_case(r.case.pk for r in rows)
    add: list[ErrorCaseTag] = []
    remove: dict[int, list[int]] = {}  # tag id -> case ids
    touched: set[int] = set()
    for row in rows:
        have = current.get(row.case.pk, set())
        for name, ticked in row.ticks.items():
            tag_id = by_name[name]
            if ticked and tag_id not in have:
                add.append(ErrorCaseTag(case_id=row.case.pk, tag_id=tag_id, user=user))
            elif not ticked and tag_id in have:
                remove.setdefault(tag_id, []).append(row.case.pk)
            else:
                continue
            touched.add(row.case.pk)
    ErrorCaseTag.objects.bulk_create(add, ignore_conflicts=True)
    report.ticks_added = len(add)
    for tag_id, case_ids in remove.items():
        deleted, _ = ErrorCaseTag.objects.filter(tag_id=tag_id, case_id__in=case_ids).delete()
        report.ticks_removed += deleted
    if touched:
        ErrorCase.objects.filter(pk__in=touched).update(updated_by=user, updated_at=timezone.now())


def _apply_comments(rows: list[_Row], user: User, report: ImportReport) -> None:
    changing = [r for r in rows if r.comment is not None and r.comment != r.case.comment]
    locked = ErrorCase.objects.select_for_update().in_bulk([r.case.pk for r in changing])
    for row in changing:
        case = locked[row.case.pk]
        if row.comment_version is not None and row.comment_version != case.comment_version:
            report.conflicts.append(
                {
                    "row": row.line,
                    "case": case.pk,
                    "reason": "the comment was changed on the sheet after the export",
                    "their_comment": case.comment,
                    "your_comment": row.comment,
                }
            )
            continue
        ErrorCase.objects.filter(pk=case.pk).update(
            comment=row.comment,
            comment_version=case.comment_version + 1,
            updated_by=user,
            updated_at=timezone.now(),
        )
        report.comments_changed += 1
