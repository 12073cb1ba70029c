"""Admin pages for people (subjects) and their faces.

A face's crop is drawn as on the People page (an SVG window onto the stored photo, no crop
file). Faces are never added here (enrollment and detection make them, with embeddings);
a face's subject and label are edited here. Deletes go through :mod:`webapp.faces.enrollment`
so an enrollment photo no face uses any more goes too.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from webapp.accounts.models import signed_in_user
from webapp.faces import enrollment
from webapp.faces.models import Face, FaceLabel, Subject
from webapp.faces.people_views import face_thumb

ADMIN_CSS = {"all": ("css/admin.css",)}


def face_svg(face: Face) -> SafeString:
    """The face as a square crop of its stored photo (the photo drawn in its own pixels)."""
    thumb = face_thumb(face)
    title = " · ".join([f"face #{face.pk}", *thumb["warnings"]])
    return format_html(
        '<svg class="wb-face" viewBox="{}" preserveAspectRatio="xMidYMid slice" role="img" '
        'aria-label="face {}"><title>{}</title><image href="{}" x="0" y="0" width="{}" '
        'height="{}" preserveAspectRatio="none"></image></svg>',
        thumb["viewbox"],
        face.pk,
        title,
        reverse("media", args=[thumb["path"]]),
        thumb["width"],
        thumb["height"],
    )


class FaceForm(forms.ModelForm):  # type: ignore[type-arg]
    """A face's subject and label, kept consistent: a known person has a subject."""

    class Meta:
        model = Face
        fields = ("subject", "label")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        # The changelist edits only the label: the subject is then the stored one.
        subject = cleaned.get("subject") if "subject" in self.fields else self.instance.subject
        label = cleaned.get("label", self.instance.label)
        if subject is not None and label == FaceLabel.PENDING:
            cleaned["label"] = label = FaceLabel.PERSON  # choosing the person says who it is
        if label == FaceLabel.PERSON and subject is None:
            raise ValidationError("Choose the person this face is of, or pick another label.")
        if subject is not None and label != FaceLabel.PERSON:
            raise ValidationError(
                f"This face is assigned to {subject}: clear the subject to mark it "
                f"“{FaceLabel(label).label}”."
            )
        return cleaned


class SubjectForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Subject
        fields = ("dataset", "name")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        # The dataset is read-only once the person exists, so the model's unique check
        # skips it; a taken name would otherwise be an IntegrityError.
        dataset = cleaned.get("dataset") or getattr(self.instance, "dataset", None)
        name = cleaned.get("name")
        taken = Subject.objects.filter(dataset=dataset, name=name).exclude(pk=self.instance.pk)
        if dataset is not None and name and taken.exists():
            raise ValidationError(f"{dataset} already has a person called {name}.")
        return cleaned


class FaceInline(admin.TabularInline):  # type: ignore[type-arg]
    """A subject's faces; open one to change its label, delete one to remove it."""

    model = Face
    fields = ("crop", "image", "label", "origin", "score", "warnings")
    readonly_fields = fields
    extra = 0
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[Face]:
        return super().get_queryset(request).select_related("image")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="face")
    def crop(self, obj: Face) -> SafeString:
        return face_svg(obj)


@admin.register(Subject)
class SubjectAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = SubjectForm
    list_display = ("name", "dataset", "n_faces", "created_at")
    list_filter = ("dataset",)
    search_fields = ("name",)
    list_select_related = ("dataset",)
    fields = ("dataset", "name", "created_by", "created_at")
    readonly_fields = ("created_by", "created_at")
    inlines = [FaceInline]

    class Media:
        css = ADMIN_CSS

    def get_queryset(self, request: HttpRequest) -> QuerySet[Subject]:
        return cast(
            "QuerySet[Subject]",
            super().get_queryset(request).annotate(faces_n=Count("faces")),
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # A person's faces are photos of their dataset; moving the person would split them.
        fixed = ("dataset",) if obj is not None else ()
        return (*fixed, *self.readonly_fields)

    @admin.display(description="faces", ordering="faces_n")
    def n_faces(self, obj: Any) -> int:
        return int(obj.faces_n)

    def save_model(self, request: HttpRequest, obj: Subject, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = signed_in_user(request.user)
        super().save_model(request, obj, form, change)

    def delete_model(self, request: HttpRequest, obj: Subject) -> None:
        enrollment.delete_subject(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Subject]) -> None:
        for subject in queryset:
            enrollment.delete_subject(subject)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        # The faces inline only deletes; through enrollment, like the People page.
        deleted = [f.instance.pk for f in formset.deleted_forms if f.instance.pk]
        formset.new_objects, formset.changed_objects = [], []
        formset.deleted_objects = [f.instance for f in formset.deleted_forms if f.instance.pk]
        if deleted:
            enrollment.delete_faces(Face.objects.filter(pk__in=deleted))


@admin.register(Face)
class FaceAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = FaceForm
    list_display = ("crop", "__str__", "subject", "label", "dataset", "origin", "score")
    list_display_links = ("crop", "__str__")
    list_editable = ("label",)
    list_filter = (
        # Every dataset: a filter with a single choice is hidden and ignored by Django.
        "image__dataset",
        ("subject", admin.RelatedOnlyFieldListFilter),
        "label",
        "origin",
    )
    search_fields = ("subject__name", "image__original_name")
    list_select_related = ("image__dataset", "subject")
    autocomplete_fields = ("subject",)
    fields = (
        "large_crop",
        "image",
        "subject",
        "label",
        ("x1", "y1", "x2", "y2"),
        ("score", "origin"),
        "warnings",
        "embedding_version",
        "created_by",
        "created_at",
    )
    readonly_fields = (
        "large_crop",
        "image",
        "x1",
        "y1",
        "x2",
        "y2",
        "score",
        "origin",
        "warnings",
        "embedding_version",
        "created_by",
        "created_at",
    )

    class Media:
        css = ADMIN_CSS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # faces come from enrollment and detection, with their embeddings

    def get_changelist_form(self, request: HttpRequest, **kwargs: Any) -> Any:
        # The list's label column is checked like the change page (a known person has a
        # subject); Django's default list form would skip FaceForm.clean.
        return super().get_changelist_form(request, form=FaceForm, **kwargs)

    @admin.display(description="face")
    def crop(self, obj: Face) -> SafeString:
        return face_svg(obj)

    @admin.display(description="face")
    def large_crop(self, obj: Face) -> SafeString:
        return format_html('<div class="wb-face-large">{}</div>', face_svg(obj))

    @admin.display(description="dataset", ordering="image__dataset__name")
    def dataset(self, obj: Face) -> str:
        return str(obj.image.dataset)

    def delete_model(self, request: HttpRequest, obj: Face) -> None:
        enrollment.delete_faces(Face.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Face]) -> None:
        enrollment.delete_faces(queryset)
