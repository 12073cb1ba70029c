"""``/api/v1/datasets/{id}/splits/``: roles, validation before any write, the stored
assignment (val/test only from the target, people and near-duplicates whole, nothing moved
when images are added), and the counts per split × source × class."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import cv2
import pytest
from django.core.files.storage import default_storage
from rest_framework.test import APIClient

from inference.phash import PHASH_VERSION, phash_bytes
from tests.conftest import token_client
from tests.images import jpeg_bytes
from tests.shared_data import shared_path
from training.splits import SPLIT_SCHEME
from webapp.faces.models import Face, FaceLabel, FaceOrigin, Subject
from webapp.images.ingest import ingest_image
from webapp.images.models import Box, BoxOrigin, Dataset, Image, LabelClass, SplitAssignment, Task

pytestmark = pytest.mark.django_db


def url(dataset: Dataset | int) -> str:
    pk = dataset if isinstance(dataset, int) else dataset.pk
    return f"/api/v1/datasets/{pk}/splits/"


def add_images(dataset: Dataset, count: int, source: str, start: int = 0) -> list[Image]:
    return [
        ingest_image(
            jpeg_bytes(64, 48, seed=1000 + i),
            dataset=dataset,
            user=None,
            original_name=f"{source}-{i}.jpg",
            source=source,
        )
        for i in range(start, start + count)
    ]


def stored(dataset: Dataset) -> dict[int, str]:
    rows = SplitAssignment.objects.filter(image__dataset=dataset, scheme=SPLIT_SCHEME)
    return dict(rows.values_list("image_id", "split"))


@pytest.fixture
def mixed(dataset: Dataset) -> Dataset:
    """30 web and 20 app images; two classes; some boxes."""
    web = add_images(dataset, 30, "web")
    app = add_images(dataset, 20, "app", start=100)
    rbc = LabelClass.objects.create(dataset=dataset, name="RBC")
    wbc = LabelClass.objects.create(dataset=dataset, name="WBC")
    for image in web[:10] + app[:10]:
        Box.objects.create(image=image, label_class=rbc, x1=1, y1=1, x2=20, y2=20)
        Box.objects.create(image=image, label_class=rbc, x1=5, y1=5, x2=30, y2=30)
    for image in app[:4]:
        Box.objects.create(image=image, label_class=wbc, x1=1, y1=1, x2=9, y2=9)
        Box.objects.create(  # a prediction: never counted
            image=image, label_class=wbc, x1=2, y1=2, x2=9, y2=9, origin=BoxOrigin.MODEL
        )
    return dataset


# ---------------------------------------------------------------------------- roles


def test_viewers_read_but_cannot_build(mixed: Dataset, viewer_api: APIClient) -> None:
    assert viewer_api.get(url(mixed)).status_code == 200
    answer = viewer_api.post(url(mixed), {"target_source": "app"}, format="json")
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "permission_denied"
    assert not stored(mixed)


def test_anonymous_is_refused(mixed: Dataset) -> None:
    assert APIClient().get(url(mixed)).status_code in (401, 403)


def test_labelers_and_admins_build(mixed: Dataset, labeler_api: APIClient, admin_user: Any) -> None:
    assert labeler_api.post(url(mixed), {"target_source": "app"}, format="json").status_code == 200
    admin = token_client(admin_user)
    assert admin.post(url(mixed), {}, format="json").status_code == 200  # the stored target


# ------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ({"target_source": "phone"}, "unknown_source", "phone"),
        ({}, "target_source_required", "target_source"),
        ({"target_source": "Not A Slug"}, "invalid", "target_source"),
        ({"target_source": "app", "sizes": {"val": "a lot"}}, "invalid", "sizes.val"),
        ({"target_source": "app", "sizes": {"dev": 0.1}}, "invalid", "dev"),
        ({"target_source": "app", "sizes": [0.1]}, "invalid", "sizes"),
        ({"target_source": "app", "sizes": {"val": 15, "test": 10}}, "sizes_too_large", "20"),
        ({"target_source": "app", "sizes": {"test": 2.5}}, "invalid_sizes", "whole"),
        ({"target_source": "app", "sizes": {"val": -1}}, "invalid_sizes", "negative"),
        ({"target_source": "app", "keep_existing": "no"}, "invalid", "keep_existing"),
        ({"target": "app"}, "invalid", "Unknown field"),
    ],
)
def test_bad_requests_write_nothing(
    mixed: Dataset, labeler_api: APIClient, body: dict[str, Any], code: str, fragment: str
) -> None:
    answer = labeler_api.post(url(mixed), body, format="json")
    assert answer.status_code == 400, answer.json()
    error = answer.json()["error"]
    assert error["code"] == code and fragment in error["message"]
    assert not stored(mixed)
    mixed.refresh_from_db()
    assert mixed.target_source == ""


def test_unknown_source_lists_the_sources(mixed: Dataset, labeler_api: APIClient) -> None:
    error = labeler_api.post(url(mixed), {"target_source": "phone"}, format="json").json()
    assert error["error"]["details"] == {"sources": ["app", "web"]}


def test_unknown_and_empty_datasets(dataset: Dataset, labeler_api: APIClient) -> None:
    missing = labeler_api.post(url(999_999), {"target_source": "app"}, format="json")
    assert missing.status_code == 404 and "999999" in missing.json()["error"]["message"]
    assert labeler_api.get(url(999_999)).status_code == 404
    empty = labeler_api.post(url(dataset), {"target_source": "app"}, format="json")
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "empty_dataset"


# ------------------------------------------------------------------------ building


def test_build_stores_val_and_test_only_from_the_target(
    mixed: Dataset, labeler_api: APIClient
) -> None:
    answer = labeler_api.post(url(mixed), {"target_source": "app"}, format="json")
    assert answer.status_code == 200
    body = answer.json()
    # 20 app of 50: share 0.2 + 0.2 * 0.6 = 32% each -> 6; train_val min(6, 10% of 38) = 4
    assert body["result"]["sizes"] | {"rule": ""} == {
        "val": 6,
        "test": 6,
        "train_val": 4,
        "target_images": 20,
        "all_images": 50,
        "rule": "",
    }
    assert body["result"]["added"] == {"train": 34, "train_val": 4, "val": 6, "test": 6}
    splits = stored(mixed)
    assert len(splits) == 50
    source = dict(Image.objects.filter(dataset=mixed).values_list("pk", "source"))
    for image_id, split in splits.items():
        if split in ("val", "test"):
            assert source[image_id] == "app"
    mixed.refresh_from_db()
    assert mixed.target_source == "app"
    assert body["target_source"] == "app"
    assert body["splits"]["val"]["sources"].keys() == {"app"}
    assert body["splits"]["train"]["images"] + body["splits"]["train_val"]["images"] == 38


def test_counts_per_split_source_and_class(mixed: Dataset, labeler_api: APIClient) -> None:
    labeler_api.post(url(mixed), {"target_source": "app"}, format="json")
    report = labeler_api.get(url(mixed)).json()
    # recount from the rows, the slow way
    expected: dict[str, dict[str, dict[str, list[int]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(lambda: [0, 0]))
    )
    for image in Image.objects.filter(dataset=mixed):
        split = stored(mixed)[image.pk]
        boxes = list(image.boxes.filter(origin=BoxOrigin.HUMAN).select_related("label_class"))
        names = {b.label_class.name for b in boxes} or {"background"}
        for name in names:
            expected[split][image.source][name][0] += 1
            expected[split][image.source][name][1] += sum(b.label_class.name == name for b in boxes)
    for split, sources in expected.items():
        for source, classes in sources.items():
            cell = report["splits"][split]["sources"][source]
            got = {n: [c["images"], c["boxes"]] for n, c in cell["classes"].items()}
            assert got == {n: v for n, v in classes.items()}
    total = {
        name: sum(
            c["classes"].get(name, {"boxes": 0})["boxes"]
            for s in report["splits"].values()
            for c in s["sources"].values()
        )
        for name in ("RBC", "WBC", "background")
    }
    assert total == {"RBC": 40, "WBC": 4, "background": 0}  # predictions are not counted
    background = sum(
        c["classes"].get("background", {"images": 0})["images"]
        for s in report["splits"].values()
        for c in s["sources"].values()
    )
    assert background == 30
    assert report["unassigned"] == {"images": 0, "sources": {}}


def test_adding_images_moves_none(mixed: Dataset, labeler_api: APIClient) -> None:
    labeler_api.post(url(mixed), {"target_source": "app"}, format="json")
    before = stored(mixed)
    add_images(mixed, 40, "app", start=500)
    add_images(mixed, 10, "web", start=700)
    report = labeler_api.get(url(mixed)).json()
    assert report["unassigned"] == {"images": 50, "sources": {"app": 40, "web": 10}}
    answer = labeler_api.post(url(mixed), {"target_source": "app"}, format="json").json()
    after = stored(mixed)
    assert {k: after[k] for k in before} == before
    assert len(after) == 100 and answer["result"]["moved"] == {"count": 0, "images": []}
    # 60 app of 100: 28% each -> 17 val and 17 test in all
    assert answer["splits"]["val"]["images"] == answer["result"]["sizes"]["val"] == 17
    assert answer["splits"]["test"]["images"] == 17


def test_sizes_can_be_asked_for(mixed: Dataset, labeler_api: APIClient) -> None:
    body = {"target_source": "app", "sizes": {"val": 0.25, "test": 3, "train_val": 0}}
    answer = labeler_api.post(url(mixed), body, format="json").json()
    assert answer["result"]["added"] == {"train": 42, "train_val": 0, "val": 5, "test": 3}


def test_a_folders_split_is_kept_and_a_target_change_reported(
    mixed: Dataset, labeler_api: APIClient
) -> None:
    web = list(Image.objects.filter(dataset=mixed, source="web").order_by("pk"))
    # as an importer keeps a folder's own split: some web images in val and test
    for image, split in zip(web[:6], ["val", "val", "val", "test", "test", "train"], strict=True):
        SplitAssignment.objects.create(image=image, scheme=SPLIT_SCHEME, split=split)
    kept = labeler_api.post(url(mixed), {"target_source": "app"}, format="json").json()
    assert {k: stored(mixed)[k] for k in (i.pk for i in web[:6])} == {
        i.pk: s
        for i, s in zip(web[:6], ["val", "val", "val", "test", "test", "train"], strict=True)
    }
    violations = {(v["code"], tuple(v["splits"])): v for v in kept["violations"]}
    assert violations[("not_target", ("val",))]["images"] == [i.pk for i in web[:3]]
    assert violations[("not_target", ("test",))]["count"] == 2
    repaired = labeler_api.post(
        url(mixed), {"target_source": "app", "keep_existing": False}, format="json"
    ).json()
    moved = {m["image"]: (m["from"], m["to"]) for m in repaired["result"]["moved"]["images"]}
    assert {i.pk for i in web[:5]} <= moved.keys()
    assert all(moved[i.pk][1] in ("train", "train_val") for i in web[:5])
    assert stored(mixed)[web[5].pk] == "train"  # nothing wrong with it: it stays
    assert repaired["violations"] == []
    assert repaired["splits"]["val"]["sources"].keys() == {"app"}


# --------------------------------------------------------------------------- faces


def test_faces_are_split_by_person(labeler_api: APIClient) -> None:
    dataset = Dataset.objects.create(name="people", task=Task.FACES)
    people = [Subject.objects.create(dataset=dataset, name=f"p{p}") for p in range(15)]
    seed = 0
    for subject in people:
        for _ in range(4):
            seed += 1
            image = ingest_image(
                jpeg_bytes(48, 48, seed=seed), dataset=dataset, user=None, source="app"
            )
            Face.objects.create(
                image=image, subject=subject, origin=FaceOrigin.HUMAN, label=FaceLabel.PERSON
            )
    group_photo = ingest_image(
        jpeg_bytes(48, 48, seed=999), dataset=dataset, user=None, source="app"
    )
    for subject in (people[2], people[11]):
        Face.objects.create(image=group_photo, subject=subject, origin=FaceOrigin.HUMAN)
    answer = labeler_api.post(url(dataset), {"target_source": "app"}, format="json")
    assert answer.status_code == 200
    splits = stored(dataset)
    of_person: dict[int, set[str]] = defaultdict(set)
    for face in Face.objects.filter(image__dataset=dataset):
        of_person[face.subject_id].add(splits[face.image_id])
    assert all(len(s) == 1 for s in of_person.values()), of_person
    assert of_person[people[2].pk] == of_person[people[11].pk] == {splits[group_photo.pk]}
    report = answer.json()
    assert sum(c["people"] for s in report["splits"].values() for c in s["sources"].values()) == 15
    assert report["splits"]["val"]["images"] >= 8  # whole people of 4 (or 9) photos
    assert report["duplicate_groups"] == []


# ------------------------------------------------------------------ near-duplicates


def test_a_reencoded_copy_lands_with_its_original(dataset: Dataset, labeler_api: APIClient) -> None:
    photos = sorted(shared_path("bccd", "JPEGImages").glob("*.jpg"))[:12]
    for photo in photos:
        ingest_image(
            photo.read_bytes(), dataset=dataset, user=None, original_name=photo.name, source="app"
        )
    original = photos[3]
    pixels = cv2.convertScaleAbs(cv2.imread(str(original)), alpha=1.0, beta=35)
    small = cv2.resize(pixels, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    copy = bytes(cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 60])[1].tobytes())
    ingest_image(copy, dataset=dataset, user=None, original_name="copy-of-3.jpg", source="app")
    # the same bytes under another name: the dataset already has them (not stored twice)
    duplicate = labeler_api.post(
        "/api/v1/images/",
        {"file": _upload(original.read_bytes(), "renamed.jpg"), "dataset": dataset.pk},
        format="multipart",
    )
    assert duplicate.status_code == 409
    for seed in range(3):
        SplitAssignment.objects.filter(image__dataset=dataset).delete()
        body = {"target_source": "app", "sizes": {"val": 0.3, "test": 0.3}}
        report = labeler_api.post(url(dataset), body, format="json").json()
        splits = stored(dataset)
        by_name = {i.original_name: splits[i.pk] for i in Image.objects.filter(dataset=dataset)}
        assert by_name[original.name] == by_name["copy-of-3.jpg"], seed
    groups = [{i["name"] for i in g["images"]} for g in report["duplicate_groups"]]
    assert {original.name, "copy-of-3.jpg"} in groups
    group = next(
        g for g in report["duplicate_groups"] if "copy-of-3.jpg" in {i["name"] for i in g["images"]}
    )
    assert group["kind"] == "near" and group["max_distance"] <= 8 and len(group["splits"]) == 1
    assert report["unhashed"] == {"count": 0, "images": []}


def _upload(data: bytes, name: str) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="image/jpeg")


def test_perceptual_hashes_are_cached_per_content(mixed: Dataset, labeler_api: APIClient) -> None:
    labeler_api.post(url(mixed), {"target_source": "app"}, format="json")
    image = Image.objects.filter(dataset=mixed).first()
    assert image is not None
    path = f"phash/{PHASH_VERSION}/{image.sha256[:2]}/{image.sha256}.txt"
    with default_storage.open(path) as cached:
        value = int(cached.read().decode(), 16)
    with default_storage.open(image.thumbnail.name) as thumb:
        assert value == phash_bytes(thumb.read())
    # a cached value is used as it is (here: a planted one joins two unrelated images)
    other = Image.objects.filter(dataset=mixed, source="web").exclude(pk=image.pk).first()
    assert other is not None
    default_storage.delete(f"phash/{PHASH_VERSION}/{other.sha256[:2]}/{other.sha256}.txt")
    default_storage.save(
        f"phash/{PHASH_VERSION}/{other.sha256[:2]}/{other.sha256}.txt",
        _content(f"{value:016x}"),
    )
    report = labeler_api.get(url(mixed)).json()
    assert any(
        {image.pk, other.pk} == {i["id"] for i in g["images"]} for g in report["duplicate_groups"]
    )


def _content(text: str) -> Any:
    from django.core.files.base import ContentFile

    return ContentFile(text.encode())


def test_unreadable_files_are_split_without_a_perceptual_hash(
    mixed: Dataset, labeler_api: APIClient
) -> None:
    image = Image.objects.filter(dataset=mixed).first()
    assert image is not None
    for stored_file in (image.file.name, image.thumbnail.name):
        default_storage.delete(stored_file)
    answer = labeler_api.post(url(mixed), {"target_source": "app"}, format="json").json()
    assert answer["unhashed"] == {"count": 1, "images": [image.pk]}
    assert image.pk in stored(mixed)
    assert len(stored(mixed)) == 50
