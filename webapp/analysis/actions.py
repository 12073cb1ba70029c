"""What a tag sets going: a review queue, an augmentation in the next run, a note to
collect more data like it (the notes' "what to do next" after error analysis).

- ``review_queue``: the tag's page lists the images of its cases, each linking to its
  labeling page (every role can follow it; nothing changes by looking), and a reviewer can
  send them all back as *needs fix* with the tag as the comment
  (:func:`send_back_tagged`). That reuses the labeling queue, which serves images sent
  back first, instead of a second queue with its own rules; it needs a reviewer because
  sending back is a reviewer's act everywhere else too.
- ``augment_blur`` / ``augment_color`` / ``augment_rotate`` / ``augment_occlude``:
  switched on for the next training run of the dataset, read by
  :func:`training_augmentations` (the notes' artificial data synthesis: "blurry" errors →
  blur the training images; "half hidden" → cover part of an object).
- ``collect_more``: the tag's note is shown on the dataset page
  (``templates/analysis/_dataset_notes.html``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from webapp.accounts.models import User
from webapp.analysis.models import ErrorCase, ErrorTag, Evaluation, TagAction
from webapp.images.models import Dataset, Image, ImageStatus
from webapp.labeling import services as labeling

# The augmentation each action switches on, by the name the training run knows it by.
AUGMENTATIONS: dict[str, str] = {
    TagAction.AUGMENT_BLUR.value: "blur",
    TagAction.AUGMENT_COLOR.value: "color",
    TagAction.AUGMENT_ROTATE.value: "rotate",
    TagAction.AUGMENT_OCCLUDE.value: "occlude",
}
MAX_REVIEW_COMMENT = 1000


def training_augmentations(dataset: Dataset | int) -> set[str]:
    """The augmentations the dataset's error tags switch on for its next training run.

    Returns a subset of ``{"blur", "color", "rotate", "occlude"}``: one name per tag whose
    action is ``augment_blur``, ``augment_color``, ``augment_rotate`` or
    ``augment_occlude``. Reads the tags and changes nothing, so a training run can call it
    as often as it likes.
    """
    dataset_id = dataset if isinstance(dataset, int) else dataset.pk
    actions = ErrorTag.objects.filter(dataset_id=dataset_id, action__in=list(AUGMENTATIONS))
    return {AUGMENTATIONS[a] for a in actions.values_list("action", flat=True)}


def collect_more_tags(dataset: Dataset) -> list[ErrorTag]:
    """The tags that ask for more data like their cases (shown on the dataset page)."""
    return list(ErrorTag.objects.filter(dataset=dataset, action=TagAction.COLLECT_MORE))


@dataclass
class TaggedImage:
    """One image with the cases of one evaluation that carry one tag."""

    image: Image
    cases: list[ErrorCase] = field(default_factory=list)

    @property
    def comments(self) -> list[str]:
        return [c.comment for c in self.cases if c.comment]


def tagged_images(evaluation: Evaluation, tag: ErrorTag) -> list[TaggedImage]:
    """The images of ``evaluation``'s cases ticked with ``tag``, in case order."""
    cases = (
        ErrorCase.objects.filter(evaluation=evaluation, tags__tag=tag)
        .select_related("image", "image__reviewed_by")
        .order_by("sample_key", "pk")
    )
    found: dict[int, TaggedImage] = {}
    for case in cases:
        found.setdefault(case.image_id, TaggedImage(case.image)).cases.append(case)
    return list(found.values())


def review_comment(evaluation: Evaluation, tag: ErrorTag, item: TaggedImage) -> str:
    """What the labeler reads on an image sent back: the tag, and what was noted."""
    text = f"Error sheet of evaluation #{evaluation.pk}: tagged “{tag.name}”."
    if item.comments:
        text += " " + " / ".join(item.comments)
    return text[:MAX_REVIEW_COMMENT]


@dataclass(frozen=True)
class SendBack:
    sent: int
    skipped: int  # already waiting for a fix: their reviewer's comment is kept


def send_back_tagged(evaluation: Evaluation, tag: ErrorTag, *, user: User) -> SendBack:
    """Send every image tagged ``tag`` back to the label queue as *needs fix*.

    Images already sent back keep their comment (it is another reviewer's request).

    Raises:
        LabelError: the user may not review (403), as everywhere else.
    """
    if not labeling.can_review(user):
        raise labeling.LabelError(
            "Only reviewers and admins may send images back for a fix.",
            code="permission_denied",
            status=403,
        )
    sent = skipped = 0
    for item in tagged_images(evaluation, tag):
        if item.image.status == ImageStatus.NEEDS_FIX:
            skipped += 1
            continue
        comment = review_comment(evaluation, tag, item)
        labeling.review(item.image, "needs_fix", user=user, comment=comment)
        sent += 1
    return SendBack(sent, skipped)
