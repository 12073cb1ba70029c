"""The labeling half of the admin: boxes drawn over thumbnails, the image bulk actions, the
human-box form that goes through the labeling services, and the label history (read-only).

The model admins of datasets, classes, images and boxes are in ``webapp/images/admin.py``;
they use what is here. Every change of human boxes made in the admin goes through
:func:`webapp.labeling.services.apply_change` (validated, versioned, with history), and
every status change through :func:`webapp.labeling.services.review` where one applies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import Count, F, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from training.models import ModelKind, ModelVersion
from training.splits import SPLIT_SCHEME
from webapp.accounts.models import User, signed_in_user
from webapp.images.models import (
    Box,
    BoxOrigin,
    Image,
    ImageStatus,
    LabelChange,
    Split,
    SplitAssignment,
    slug_validator,
)
from webapp.labeling import services
from webapp.labeling.services import BoxSpec, Change, LabelError

ADMIN_ACTION = "admin_edit"  # LabelChange.action of edits made in the admin

# ---------------------------------------------------------------------------- drawing

COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
FALLBACK_COLOR = "#888888"
# A thumbnail shows at most this many boxes (labels first, then the best predictions);
# its title says how many there are in all.
MAX_DRAWN_BOXES = 200


def box_color(box: Box) -> str:
    """The class colour, if it is one (a colour is data: never trust it into markup)."""
    color = box.label_class.color
    return color if COLOR.match(color) else FALLBACK_COLOR


def _n(value: float) -> str:
    # format_html escapes its arguments to strings first, so numbers are formatted here.
    return f"{value:.1f}"


def _box_svg(box: Box, unit: float, named: bool) -> SafeString:
    """One box: human solid, model dashed with its score. ``unit``: image px per screen px."""
    name = box.label_class.name
    is_model = box.origin == BoxOrigin.MODEL
    score = "" if box.score is None else f"{box.score:.2f}"
    caption = " ".join(part for part in (name if named else "", score if is_model else "") if part)
    dashes = f"{_n(5 * unit)} {_n(3 * unit)}" if is_model else "none"
    text = (
        format_html(
            '<text x="{}" y="{}" font-size="{}" fill="{}">{}</text>',
            _n(box.x1 + unit),
            _n(max(box.y1 - 2 * unit, 10 * unit)),
            _n(10 * unit),
            box_color(box),
            caption,
        )
        if caption
        else ""
    )
    return format_html(
        '<g class="box {}" data-label="{}"><title>{}</title>'
        '<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="{}" stroke-width="{}" '
        'stroke-dasharray="{}"></rect>{}</g>',
        box.origin,
        name,
        f"{name} {score} (prediction)" if is_model else f"{name} (label)",
        _n(box.x1),
        _n(box.y1),
        _n(box.x2 - box.x1),
        _n(box.y2 - box.y1),
        box_color(box),
        _n(2 * unit),
        dashes,
        text,
    )


def drawn_boxes(boxes: Sequence[Box]) -> tuple[list[Box], int, int]:
    """What a thumbnail draws: labels, then predictions by score; and the two counts."""
    human = [b for b in boxes if b.origin == BoxOrigin.HUMAN]
    model = sorted((b for b in boxes if b.origin == BoxOrigin.MODEL), key=lambda b: -(b.score or 0))
    return (human + model)[:MAX_DRAWN_BOXES], len(human), len(model)


def boxes_svg(image: Image, boxes: Sequence[Box], *, size: int, full: bool = False) -> SafeString:
    """``image`` (its stored thumbnail, or the full file when ``full``) with ``boxes`` drawn,
    as inline SVG ``size`` px on its long side; the SVG works in the image's own pixels."""
    width, height = max(image.width, 1), max(image.height, 1)
    unit = max(width, height) / size
    stored = image.file if full or not image.thumbnail else image.thumbnail
    drawn, n_human, n_model = drawn_boxes(boxes)
    label = f"{image}: {n_human} labels, {n_model} predictions"
    return format_html(
        '<svg class="wb-boxes" viewBox="0 0 {} {}" width="{}" height="{}" role="img" '
        'aria-label="{}"><title>{}</title>'
        '<image href="{}" x="0" y="0" width="{}" height="{}" preserveAspectRatio="none"></image>'
        "{}</svg>",
        width,
        height,
        round(width / unit),
        round(height / unit),
        label,
        label,
        reverse("media", args=[stored.name]),
        width,
        height,
        format_html_join("", "{}", ((_box_svg(b, unit, full),) for b in drawn)),
    )


# ---------------------------------------------------------------------------- human boxes


class HumanBoxForm(forms.ModelForm):  # type: ignore[type-arg]
    """A human box edited in the admin, validated as the API validates it."""

    spec: BoxSpec | None = None

    class Meta:
        model = Box
        fields = ("label_class", "x1", "y1", "x2", "y2")

    def _image(self) -> Image:
        parent = self.cleaned_data.get("image")  # an inline's parent image
        return parent if isinstance(parent, Image) else self.instance.image

    def _row(self) -> int:
        """The row's number in an inline (``boxes-2`` is row 3), for the error message."""
        tail = (self.prefix or "").rsplit("-", 1)[-1]
        return int(tail) + 1 if tail.isdigit() else 1

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        label_class = cleaned.get("label_class")
        if not self.has_changed() or label_class is None or self.errors:
            return cleaned
        raw = {k: cleaned.get(k) for k in ("x1", "y1", "x2", "y2")}
        try:
            self.spec = services.validate_box(
                self._image(), {**raw, "label_class": label_class.pk}, self._row()
            )
        except LabelError as exc:
            raise ValidationError(exc.message) from None
        return cleaned

    def _post_clean(self) -> None:
        # validate_box said what is wrong in the labeler's words; the model's check
        # constraint would only repeat it as "Constraint box_has_area is violated".
        if self.has_error(NON_FIELD_ERRORS):
            return
        super()._post_clean()  # type: ignore[misc]


def box_change(forms_: Sequence[HumanBoxForm], deleted: Sequence[HumanBoxForm]) -> Change:
    """The :class:`Change` that the admin's edited, added and deleted box forms ask for."""
    add = [f.spec for f in forms_ if f.spec is not None and f.instance.pk is None]
    update = {f.instance.pk: f.spec for f in forms_ if f.spec is not None and f.instance.pk}
    gone = [f.instance.pk for f in deleted if f.instance.pk]
    return Change(add=add, update=update, delete=gone, action=ADMIN_ACTION)


def is_empty(change: Change) -> bool:
    return not (change.add or change.update or change.delete)


def save_box_change(
    image: Image, change: Change, request: HttpRequest, expected_version: int | None = None
) -> None:
    """Apply an admin edit of ``image``'s human boxes (version bump, history row)."""
    if not is_empty(change):
        services.apply_change(
            image.pk, change, user=signed_in_user(request.user), expected_version=expected_version
        )


# ---------------------------------------------------------------------------- status


# Statuses that are a review step: set through services.review, with who and when.
REVIEW_STEP = {
    ImageStatus.LABELED: "done",
    ImageStatus.REVIEWED: "approve",
    ImageStatus.NEEDS_FIX: "needs_fix",
}


def status_refusal(user: User, status: str, comment: str) -> str | None:
    """Why ``user`` may not set ``status`` (with ``comment``), or None."""
    if REVIEW_STEP.get(ImageStatus(status)) in ("approve", "needs_fix") and not (
        services.can_review(user)
    ):
        return "Only reviewers and admins may approve or send back labels."
    if status == ImageStatus.NEEDS_FIX and not comment.strip():
        return "Say what needs fixing: a comment is required with Needs fix."
    return None


def set_status(image_ids: Sequence[int], status: str, *, user: User, comment: str = "") -> int:
    """Give the images ``status``; review steps record who and when. Returns the count."""
    step = REVIEW_STEP.get(ImageStatus(status))
    if step is None:  # new / predicted: no one to record
        return Image.objects.filter(pk__in=image_ids).update(status=status)
    images = list(Image.objects.filter(pk__in=image_ids))
    for image in images:
        services.review(image, step, user=user, comment=comment)
    return len(images)


# ---------------------------------------------------------------------------- actions


PARAMETERS_TEMPLATE = "admin/labeling/action_parameters.html"


def _images(n: int) -> str:
    return f"{n} image" if n == 1 else f"{n} images"


def _ids(queryset: QuerySet[Image]) -> list[int]:
    return list(queryset.order_by().values_list("pk", flat=True))


def _with_parameters(
    modeladmin: admin.ModelAdmin,  # type: ignore[type-arg]
    request: HttpRequest,
    queryset: QuerySet[Image],
    *,
    action: str,
    title: str,
    form: forms.Form,
    apply: Callable[[dict[str, Any]], None],
) -> TemplateResponse | None:
    """Run ``apply`` with the form's values once the parameters page was sent, else show
    that page (again, with the form's errors)."""
    if "apply" in request.POST and form.is_valid():
        apply(form.cleaned_data)
        return None
    ids = _ids(queryset)
    across = request.POST.get("select_across") == "1"
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "opts": modeladmin.model._meta,
        "form": form,
        "action": action,
        "count": len(ids),
        # With "select all" the changelist's own filters (kept in the URL) choose the
        # images, as on the changelist; Django still wants one selected id posted.
        "ids": ids[:1] if across else ids,
        "select_across": across,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": modeladmin.media + form.media,
    }
    return TemplateResponse(request, PARAMETERS_TEMPLATE, context)


def _bound(request: HttpRequest) -> Any:
    return request.POST if "apply" in request.POST else None


class SourceForm(forms.Form):
    source = forms.CharField(
        max_length=32,
        validators=[slug_validator],
        help_text="The distribution the images came from, for example web or app.",
    )


@admin.action(description="Set source…", permissions=["change"])
def set_source(
    modeladmin: admin.ModelAdmin,  # type: ignore[type-arg]
    request: HttpRequest,
    queryset: QuerySet[Image],
) -> TemplateResponse | None:
    def apply(data: dict[str, Any]) -> None:
        n = Image.objects.filter(pk__in=_ids(queryset)).update(source=data["source"])
        modeladmin.message_user(request, f"{_images(n)} now have source {data['source']}.")

    form = SourceForm(_bound(request))
    return _with_parameters(
        modeladmin,
        request,
        queryset,
        action="set_source",
        title="Set source",
        form=form,
        apply=apply,
    )


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=ImageStatus.choices)
    comment = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Required with Needs fix: the labeler sees it.",
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        status = cleaned.get("status")
        refusal = status and status_refusal(self.user, status, cleaned.get("comment", ""))
        if refusal:
            raise ValidationError(refusal)
        return cleaned


@admin.action(description="Set status…", permissions=["change"])
def set_status_action(
    modeladmin: admin.ModelAdmin,  # type: ignore[type-arg]
    request: HttpRequest,
    queryset: QuerySet[Image],
) -> TemplateResponse | None:
    user = signed_in_user(request.user)

    def apply(data: dict[str, Any]) -> None:
        status = ImageStatus(data["status"])
        n = set_status(_ids(queryset), status, user=user, comment=data["comment"])
        modeladmin.message_user(request, f"{_images(n)} set to {status.label}.")

    form = StatusForm(_bound(request), user=user)
    return _with_parameters(
        modeladmin,
        request,
        queryset,
        action="set_status_action",
        title="Set status",
        form=form,
        apply=apply,
    )


class SplitForm(forms.Form):
    split = forms.ChoiceField(
        choices=Split.choices,
        help_text="Validation and test should come from the target distribution.",
    )


def assign_split(image_ids: Sequence[int], split: str) -> int:
    """Put the images in ``split`` of the split scheme (moving them if they had one)."""
    rows = [SplitAssignment(image_id=pk, scheme=SPLIT_SCHEME, split=split) for pk in image_ids]
    SplitAssignment.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["image", "scheme"], update_fields=["split"]
    )
    return len(rows)


def off_target(image_ids: Sequence[int]) -> int:
    """How many of the images are not from their dataset's target source (when it has one)."""
    rows = Image.objects.filter(pk__in=image_ids).exclude(dataset__target_source="")
    return rows.exclude(source=F("dataset__target_source")).count()


@admin.action(description="Assign to a split…", permissions=["split"])
def assign_split_action(
    modeladmin: admin.ModelAdmin,  # type: ignore[type-arg]
    request: HttpRequest,
    queryset: QuerySet[Image],
) -> TemplateResponse | None:
    def apply(data: dict[str, Any]) -> None:
        ids = _ids(queryset)
        n = assign_split(ids, data["split"])
        modeladmin.message_user(request, f"{_images(n)} moved to {data['split']}.")
        stray = off_target(ids) if data["split"] in (Split.VAL, Split.TEST) else 0
        if stray:
            modeladmin.message_user(
                request,
                f"{_images(stray)} of them are not from their dataset's target source: "
                "validation and test should come from the distribution the model will serve.",
                messages.WARNING,
            )

    form = SplitForm(_bound(request))
    return _with_parameters(
        modeladmin,
        request,
        queryset,
        action="assign_split_action",
        title="Assign to a split",
        form=form,
        apply=apply,
    )


class VersionChoice(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj} ({obj.n_predictions} predictions on these images)"


class PredictionsForm(forms.Form):
    model_version = VersionChoice(queryset=ModelVersion.objects.none())

    def __init__(self, *args: Any, images: QuerySet[Image], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only the versions that predicted something on these images, with how much.
        field = self.fields["model_version"]
        assert isinstance(field, VersionChoice)
        field.queryset = (
            ModelVersion.objects.filter(
                kind=ModelKind.DETECTOR,
                boxes__image__in=images.order_by().values("pk"),
                boxes__origin=BoxOrigin.MODEL,
            )
            .annotate(n_predictions=Count("boxes"))
            .order_by("-created_at", "-pk")
        )
        field.empty_label = None
        if not field.queryset.exists():
            field.help_text = "No model has predictions on these images."


class AcceptForm(PredictionsForm):
    min_score = forms.FloatField(
        min_value=0.0,
        max_value=1.0,
        initial=0.5,
        help_text="Predictions scoring at least this become labels.",
    )


@admin.action(description="Accept a model's predictions as labels…", permissions=["label"])
def accept_predictions_action(
    modeladmin: admin.ModelAdmin,  # type: ignore[type-arg]
    request: HttpRequest,
    queryset: QuerySet[Image],
) -> TemplateResponse | None:
    user = signed_in_user(request.user)

    def apply(data: dict[str, Any]) -> None:
        version, min_score = data["model_version"], data["min_score"]
        accepted = touched = 0
        for image in Image.objects.filter(pk__in=_ids(queryset)).order_by("pk"):
            n = services.accept_predictions(image, version, min_score, user=user)
            accepted, touched = accepted + n, touched + (n > 0)
        modeladmin.message_user(
            request,
            f"Accepted {accepted} predictions on {_images(touched)} "
            f"(score ≥ {min_score:g}, {version}).",
        )

    form = AcceptForm(_bound(request), images=queryset)
    return _with_parameters(
        modeladmin,
        request,
        queryset,
        action="accept_predictions_action",
        title="Accept predictions as labels",
        form=form,
        apply=apply,
    )


@admin.action(description="Delete a model's predictions…", permissions=["label"])
def delete_predictions_action(
    modeladmin: admin.ModelAdmin,  # type: ignore[type-arg]
    request: HttpRequest,
    queryset: QuerySet[Image],
) -> TemplateResponse | None:
    def apply(data: dict[str, Any]) -> None:
        version = data["model_version"]
        predictions = Box.objects.filter(
            image_id__in=_ids(queryset), origin=BoxOrigin.MODEL, model_version=version
        )
        touched = predictions.values("image_id").distinct().count()
        deleted, _ = predictions.delete()
        modeladmin.message_user(
            request, f"Deleted {deleted} predictions of {version} on {_images(touched)}."
        )

    form = PredictionsForm(_bound(request), images=queryset)
    return _with_parameters(
        modeladmin,
        request,
        queryset,
        action="delete_predictions_action",
        title="Delete a model's predictions",
        form=form,
        apply=apply,
    )


IMAGE_ACTIONS = [
    set_source,
    set_status_action,
    assign_split_action,
    accept_predictions_action,
    delete_predictions_action,
]


# ---------------------------------------------------------------------------- history


@admin.register(LabelChange)
class LabelChangeAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The label history: written only by the labeling services, never edited."""

    list_display = ("created_at", "image", "version", "action", "user", "boxes")
    list_filter = ("action", "image__dataset")
    search_fields = ("image__original_name", "user__username")
    date_hierarchy = "created_at"
    list_select_related = ("image", "user")
    fields = ("image", "version", "action", "user", "created_at", "before_json", "after_json")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="boxes before → after")
    def boxes(self, obj: LabelChange) -> str:
        return f"{len(obj.before)} → {len(obj.after)}"

    @admin.display(description="before")
    def before_json(self, obj: LabelChange) -> SafeString:
        return format_html("<pre>{}</pre>", json.dumps(obj.before, indent=1))

    @admin.display(description="after")
    def after_json(self, obj: LabelChange) -> SafeString:
        return format_html("<pre>{}</pre>", json.dumps(obj.after, indent=1))
