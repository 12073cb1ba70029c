"""Admin pages for datasets, classes, images and boxes: the labelers' bulk tools.

Images are never added here (uploads and imports validate and hash them). Human boxes are
edited inline on their image's page and on the box page, and saved through the labeling
services (validated, versioned, with history); model boxes (predictions) are read-only.
The drawing and the bulk actions are in ``webapp/labeling/admin.py``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from training.splits import SPLIT_SCHEME
from webapp.accounts.models import User, signed_in_user
from webapp.accounts.permissions import user_is_admin
from webapp.api.ids import is_id
from webapp.images.models import (
    Box,
    BoxOrigin,
    Dataset,
    Image,
    LabelChange,
    LabelClass,
    Split,
    SplitAssignment,
)
from webapp.labeling.admin import (
    ADMIN_ACTION,
    COLOR,
    IMAGE_ACTIONS,
    HumanBoxForm,
    box_change,
    boxes_svg,
    save_box_change,
    set_status,
    status_refusal,
)
from webapp.labeling.classes import color_for
from webapp.labeling.services import Change, LabelError, StaleLabels

LOADED_VERSION = "loaded_labels_version"  # the labels version the change page showed
LIST_THUMB_PX = 120
PAGE_IMAGE_PX = 640
ADMIN_CSS = {"all": ("css/admin.css",)}


def _is_admin(request: HttpRequest) -> bool:
    return signed_in_user(request.user).is_admin_role


class KeepsHistoryOnDelete(admin.ModelAdmin):  # type: ignore[type-arg]
    """Deleting an image (or its dataset) takes the image's label history with it.

    The history admin refuses every delete, so it is left out of the "permissions
    lacking" list Django builds from the cascade; nothing else is.
    """

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        deleted, counts, lacking, protected = super().get_deleted_objects(objs, request)
        lacking.discard(str(LabelChange._meta.verbose_name))
        return deleted, counts, lacking, protected


# ---------------------------------------------------------------------------- datasets


def _is_system(dataset: Any) -> bool:
    """A dataset the workbench itself relies on (the face gallery, FACES_GALLERY_DATASET)."""
    return dataset is not None and dataset.name == settings.FACES_GALLERY_DATASET


@admin.register(Dataset)
class DatasetAdmin(KeepsHistoryOnDelete):
    list_display = ("name", "task", "target_source", "n_images", "n_classes", "created_at")
    list_filter = ("task",)
    search_fields = ("name",)
    fields = ("name", "task", "description", "target_source", "class_list", "created_by")
    readonly_fields = ("class_list", "created_by")

    class Media:
        css = ADMIN_CSS

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The face gallery is found by its name and must stay a faces dataset: renaming it
        # emptied recognition, a new task broke every face endpoint.
        fields = tuple(super().get_readonly_fields(request, obj))
        return (*fields, "name", "task") if _is_system(obj) else fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if _is_system(obj) and not user_is_admin(request.user):
            return False
        return super().has_delete_permission(request, obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Dataset]:
        return cast(
            "QuerySet[Dataset]",
            super()
            .get_queryset(request)
            .annotate(
                images_n=Count("images", distinct=True), classes_n=Count("classes", distinct=True)
            ),
        )

    @admin.display(description="images", ordering="images_n")
    def n_images(self, obj: Any) -> int:
        return int(obj.images_n)

    @admin.display(description="classes", ordering="classes_n")
    def n_classes(self, obj: Any) -> int:
        return int(obj.classes_n)

    @admin.display(description="classes")
    def class_list(self, obj: Dataset) -> SafeString:
        return format_html_join(
            " ",
            '<span class="wb-class"><span class="wb-swatch" style="background:{}"></span>{}</span>',
            ((c.color if COLOR.match(c.color) else "#888", c.name) for c in obj.classes.all()),
        )

    def save_model(self, request: HttpRequest, obj: Dataset, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = signed_in_user(request.user)
        super().save_model(request, obj, form, change)


# ---------------------------------------------------------------------------- classes


class LabelClassForm(forms.ModelForm):  # type: ignore[type-arg]
    color = forms.CharField(
        max_length=7,
        required=False,
        help_text="#rrggbb. A class name has one colour in every dataset: changing it here "
        "changes it everywhere. Blank: the colour the name already has, or a free one.",
    )

    class Meta:
        model = LabelClass
        fields = ("dataset", "name", "color")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        # On the change page the dataset is read-only, so the model's unique check skips
        # it; a duplicate name would otherwise be an IntegrityError.
        dataset = cleaned.get("dataset") or getattr(self.instance, "dataset", None)
        name = cleaned.get("name")
        taken = LabelClass.objects.filter(dataset=dataset, name=name).exclude(pk=self.instance.pk)
        if dataset is not None and name and taken.exists():
            raise ValidationError(f"{dataset} already has a class called {name}.")
        return cleaned

    def clean_color(self) -> str:
        color = str(self.cleaned_data.get("color") or "").strip()
        if color and not COLOR.match(color):
            raise ValidationError("Use a colour like #e6194b.")
        return color


@admin.register(LabelClass)
class LabelClassAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = LabelClassForm
    list_display = ("name", "swatch", "dataset", "n_labels", "n_predictions")
    list_filter = ("dataset",)
    search_fields = ("name", "dataset__name")
    list_select_related = ("dataset",)

    class Media:
        css = ADMIN_CSS

    def get_queryset(self, request: HttpRequest) -> QuerySet[LabelClass]:
        human, model = Q(boxes__origin=BoxOrigin.HUMAN), Q(boxes__origin=BoxOrigin.MODEL)
        return cast(
            "QuerySet[LabelClass]",
            super()
            .get_queryset(request)
            .annotate(
                labels_n=Count("boxes", filter=human), predictions_n=Count("boxes", filter=model)
            ),
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # A class moving to another dataset would leave its boxes on the old one's images.
        return ("dataset",) if obj is not None else ()

    @admin.display(description="colour")
    def swatch(self, obj: LabelClass) -> SafeString:
        color = obj.color if COLOR.match(obj.color) else "#888"
        return format_html('<span class="wb-swatch" style="background:{}"></span>{}', color, color)

    @admin.display(description="labels", ordering="labels_n")
    def n_labels(self, obj: Any) -> int:
        return int(obj.labels_n)

    @admin.display(description="predictions", ordering="predictions_n")
    def n_predictions(self, obj: Any) -> int:
        return int(obj.predictions_n)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting a class deletes its boxes with no label history: admins only, once it
        # has boxes (merge it into another class with the class API instead).
        allowed = super().has_delete_permission(request, obj)
        if obj is None or not allowed or _is_admin(request):
            return allowed
        return not Box.objects.filter(label_class=obj).exists()

    def save_model(self, request: HttpRequest, obj: LabelClass, form: Any, change: bool) -> None:
        if not obj.color:
            obj.color = color_for(obj.dataset, obj.name)
        super().save_model(request, obj, form, change)
        if "color" in form.changed_data:
            # One colour per class name in every dataset (case aside, as the palette does).
            same_name = LabelClass.objects.filter(name__iexact=obj.name).exclude(pk=obj.pk)
            same_name.update(color=obj.color)


# ---------------------------------------------------------------------------- filters


class SplitFilter(admin.SimpleListFilter):
    title = "split"
    parameter_name = "split"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [*((str(v), str(label)) for v, label in Split.choices), ("none", "No split")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        assigned = SplitAssignment.objects.filter(image=OuterRef("pk"), scheme=SPLIT_SCHEME)
        if value == "none":
            return queryset.filter(~Exists(assigned))
        return queryset.filter(Exists(assigned.filter(split=value)))


class ClassFilter(admin.SimpleListFilter):
    """Images with at least one box (label or prediction) of a class."""

    title = "class (has a box of)"
    parameter_name = "label_class"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        classes = LabelClass.objects.select_related("dataset").order_by("dataset__name", "name")
        dataset = request.GET.get("dataset__id__exact", "")
        if is_id(dataset):  # with a dataset chosen, only its classes
            classes = classes.filter(dataset_id=int(dataset))
        return [(str(c.pk), str(c)) for c in classes]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        if not is_id(value):
            return queryset.none()
        boxes = Box.objects.filter(image=OuterRef("pk"), label_class_id=int(value))
        return queryset.filter(Exists(boxes))


# ---------------------------------------------------------------------------- image boxes


class HumanBoxFormSet(BaseInlineFormSet):  # type: ignore[type-arg]
    """An image's human boxes, saved in one :func:`services.apply_change` (not row by row)."""

    instance: Image
    loaded_version: int | None = None

    def add_fields(self, form: Any, index: Any) -> None:
        super().add_fields(form, index)
        field = form.fields.get("label_class")
        if isinstance(field, forms.ModelChoiceField):
            field.queryset = LabelClass.objects.filter(
                dataset_id=self.instance.dataset_id
            ).select_related("dataset")

    def clean(self) -> None:
        super().clean()
        if not self.has_changed():
            return
        loaded = str(self.data.get(LOADED_VERSION, ""))
        plain = loaded.isascii() and loaded.isdigit() and len(loaded) < 19  # 0 is a version
        self.loaded_version = int(loaded) if plain else None
        current = Image.objects.get(pk=self.instance.pk)
        if self.loaded_version is not None and self.loaded_version != current.labels_version:
            raise ValidationError(StaleLabels(current, self.loaded_version).message)

    def save_labels(self, request: HttpRequest) -> None:
        deleted = self.deleted_forms
        edited = [f for f in self.forms if f not in deleted and f.has_changed()]
        # What the admin's log line lists (formset.save() would have set these).
        self.new_objects = [f.instance for f in edited if f.instance.pk is None]
        self.changed_objects = [(f.instance, f.changed_data) for f in edited if f.instance.pk]
        self.deleted_objects = [f.instance for f in deleted if f.instance.pk]
        change = box_change(cast(list[HumanBoxForm], edited), cast(list[HumanBoxForm], deleted))
        save_box_change(self.instance, change, request, expected_version=self.loaded_version)


class HumanBoxInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Box
    form = HumanBoxForm
    formset = HumanBoxFormSet
    fields = ("label_class", "x1", "y1", "x2", "y2", "suggested", "created_by")
    readonly_fields = ("suggested", "created_by")
    extra = 0
    verbose_name = "label (human box)"
    verbose_name_plural = "labels (human boxes, in pixels of the stored image)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Box]:
        return (
            super()
            .get_queryset(request)
            .filter(origin=BoxOrigin.HUMAN)
            .select_related("label_class__dataset", "suggested_by", "created_by")
        )

    @admin.display(description="accepted from")
    def suggested(self, obj: Box) -> str:
        if obj.suggested_by is None:
            return "—"
        score = "" if obj.suggested_score is None else f" at {obj.suggested_score:.2f}"
        return f"{obj.suggested_by}{score}"


class ModelBoxInline(admin.TabularInline):  # type: ignore[type-arg]
    """Predictions: read-only here; accept or delete them with the list's bulk actions."""

    model = Box
    fields = ("label_class", "score", "model_version", "x1", "y1", "x2", "y2")
    readonly_fields = fields
    extra = 0
    verbose_name = "prediction (model box)"
    verbose_name_plural = "predictions (model boxes, read-only)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Box]:
        return (
            super()
            .get_queryset(request)
            .filter(origin=BoxOrigin.MODEL)
            .select_related("label_class__dataset", "model_version")
            .order_by("-score", "pk")
        )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# ---------------------------------------------------------------------------- images


class ImageAdminForm(forms.ModelForm):  # type: ignore[type-arg]
    loaded_labels_version = forms.IntegerField(widget=forms.HiddenInput, required=False)
    user: User | None = None  # the one signed in: ImageAdmin.get_form sets it per request

    class Meta:
        model = Image
        fields = ("source", "status", "review_comment")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields[LOADED_VERSION].initial = self.instance.labels_version

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        status = cleaned.get("status")
        if status and "status" in self.changed_data:
            comment = cleaned.get("review_comment", "")
            refusal = status_refusal(self.user, status, comment) if self.user else None
            if refusal:
                self.add_error("status", refusal)
        return cleaned


@admin.register(Image)
class ImageAdmin(KeepsHistoryOnDelete):
    form = ImageAdminForm
    list_display = (
        "thumbnail_boxes",
        "name",
        "dataset",
        "source",
        "status",
        "split",
        "n_labels",
        "n_predictions",
        "labels_version",
        "created_at",
    )
    list_display_links = ("thumbnail_boxes", "name")
    list_filter = ("dataset", "source", "status", SplitFilter, ClassFilter)
    search_fields = ("original_name",)
    list_per_page = 50
    actions = IMAGE_ACTIONS
    inlines = [HumanBoxInline, ModelBoxInline]
    fieldsets = (
        (None, {"fields": ("page_boxes", "links", "dataset", "original_name")}),
        ("Review", {"fields": ("source", "status", "review_comment", LOADED_VERSION)}),
        (
            "Labels",
            {
                "fields": (
                    "split",
                    "labels_version",
                    "labeled_by",
                    "labeled_at",
                    "reviewed_by",
                    "reviewed_at",
                )
            },
        ),
        (
            "File",
            {
                "classes": ["collapse"],
                "fields": ("file", "sha256", "width", "height", "size_bytes", "format"),
            },
        ),
        ("Upload", {"classes": ["collapse"], "fields": ("uploaded_by", "created_at")}),
    )
    readonly_fields = (
        "page_boxes",
        "links",
        "dataset",
        "original_name",
        "split",
        "labels_version",
        "labeled_by",
        "labeled_at",
        "reviewed_by",
        "reviewed_at",
        "file",
        "sha256",
        "width",
        "height",
        "size_bytes",
        "format",
        "uploaded_by",
        "created_at",
    )

    class Media:
        css = ADMIN_CSS

    def get_queryset(self, request: HttpRequest) -> QuerySet[Image]:
        split = SplitAssignment.objects.filter(image=OuterRef("pk"), scheme=SPLIT_SCHEME)
        boxes = Box.objects.select_related("label_class").order_by("pk")
        return cast(
            "QuerySet[Image]",
            super()
            .get_queryset(request)
            .select_related("dataset")
            .annotate(split_name=Subquery(split.values("split")[:1]))
            .prefetch_related(Prefetch("boxes", queryset=boxes)),
        )

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        base = super().get_form(request, obj, change, **kwargs)
        # The form checks review steps against the one signed in (services.can_review).
        return type(base.__name__, (base,), {"user": signed_in_user(request.user)})

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # images come in through upload and import, which validate them

    def has_split_permission(self, request: HttpRequest) -> bool:
        return signed_in_user(request.user).has_perms(
            ["images.add_splitassignment", "images.change_splitassignment"]
        )

    def has_label_permission(self, request: HttpRequest) -> bool:
        user = signed_in_user(request.user)
        return user.has_perms(["images.add_box", "images.change_box", "images.delete_box"])

    @admin.display(description="boxes")
    def thumbnail_boxes(self, obj: Image) -> SafeString:
        return boxes_svg(obj, list(obj.boxes.all()), size=LIST_THUMB_PX)

    @admin.display(description="image")
    def page_boxes(self, obj: Image) -> SafeString:
        return boxes_svg(obj, list(obj.boxes.all()), size=PAGE_IMAGE_PX, full=True)

    @admin.display(description="file name", ordering="original_name")
    def name(self, obj: Image) -> str:
        return str(obj)

    @admin.display(description="split", ordering="split_name")
    def split(self, obj: Any) -> str:
        return str(obj.split_name or "—")

    @admin.display(description="labels")
    def n_labels(self, obj: Image) -> int:
        return sum(b.origin == BoxOrigin.HUMAN for b in obj.boxes.all())

    @admin.display(description="predictions")
    def n_predictions(self, obj: Image) -> int:
        return sum(b.origin == BoxOrigin.MODEL for b in obj.boxes.all())

    @admin.display(description="open")
    def links(self, obj: Image) -> SafeString:
        history = reverse("admin:images_labelchange_changelist") + f"?image={obj.pk}"
        return format_html(
            '<a href="{}">annotation page</a> · <a href="{}">review page</a> · '
            '<a href="{}">label history ({})</a>',
            reverse("labeling:annotate", args=[obj.pk]),
            obj.get_absolute_url(),
            history,
            obj.label_changes.count(),
        )

    def save_model(self, request: HttpRequest, obj: Image, form: Any, change: bool) -> None:
        # Only the fields edited here are written: a full save would write back a labels
        # version that another editor may have bumped since this request read the row.
        fields = [f for f in ("source", "review_comment") if f in form.changed_data]
        if fields:
            obj.save(update_fields=fields)
        if "status" in form.changed_data:
            user = signed_in_user(request.user)
            set_status([obj.pk], obj.status, user=user, comment=obj.review_comment)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if isinstance(formset, HumanBoxFormSet):
            formset.save_labels(request)
        else:  # the predictions inline is read-only: nothing to write
            super().save_formset(request, form, formset, change)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # A refusal from the services while saving (another editor saved in between the
        # form's check and the write) rolls the whole save back; say so and reload.
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except LabelError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


# ---------------------------------------------------------------------------- boxes


@admin.register(Box)
class BoxAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Every box; human ones edited through the labeling services, predictions read-only."""

    form = HumanBoxForm
    list_display = ("__str__", "image", "origin", "score", "model_version", "created_by")
    list_filter = (
        "origin",
        "image__dataset",
        ("model_version", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("image__original_name", "label_class__name")
    list_select_related = ("image", "label_class", "model_version", "created_by")
    fields = (
        "image",
        "label_class",
        ("x1", "y1", "x2", "y2"),
        "origin",
        ("model_version", "score"),
        ("suggested_by", "suggested_score"),
        "created_by",
        "created_at",
    )
    readonly_fields = (
        "image",
        "origin",
        "model_version",
        "score",
        "suggested_by",
        "suggested_score",
        "created_by",
        "created_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # boxes are drawn on their image's page, where they are checked

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.origin == BoxOrigin.MODEL:
            return False
        return super().has_change_permission(request, obj)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        field = form.base_fields.get("label_class")
        if obj is not None and isinstance(field, forms.ModelChoiceField):
            field.queryset = LabelClass.objects.filter(dataset_id=obj.image.dataset_id)
        return form

    def save_model(self, request: HttpRequest, obj: Box, form: Any, change: bool) -> None:
        if isinstance(form, HumanBoxForm) and form.spec is not None:
            update = Change(update={obj.pk: form.spec}, action=ADMIN_ACTION)
            save_box_change(obj.image, update, request)

    def delete_model(self, request: HttpRequest, obj: Box) -> None:
        self.delete_queryset(request, Box.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Box]) -> None:
        # Predictions simply go; human boxes leave a history row on their image.
        queryset.filter(origin=BoxOrigin.MODEL).delete()
        humans: dict[int, list[int]] = defaultdict(list)
        for pk, image_id in queryset.filter(origin=BoxOrigin.HUMAN).values_list("pk", "image_id"):
            humans[image_id].append(pk)
        for image in Image.objects.filter(pk__in=humans):
            save_box_change(image, Change(delete=humans[image.pk], action=ADMIN_ACTION), request)
