"""Labeling speed in the browser test's terms: the keystrokes, clicks and drags it takes to
label real BCCD demo images when the suggestions are right, against the same images
labelled by drawing every box (the annotation page without suggestions).

Run with ``make bench-labeling-speed``. It drives the annotation page in Chromium, checks
that both ways end with the same boxes (to a pixel), and prints a table; the numbers are
counts of actions, so they are the same on any machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser_fixtures import log_in
from training.formats.voc import read_voc
from training.models import ModelVersion
from webapp.images.ingest import ingest_image
from webapp.images.models import Box, Dataset, Image
from webapp.labeling.classes import ensure_classes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]
DEMO = Path(__file__).resolve().parent.parent / "demo" / "bccd"
STEMS = ("BloodImage_00007", "BloodImage_00031", "BloodImage_00041")
Truth = list[tuple[str, list[float]]]  # (class name, xyxy pixels) per box


@dataclass
class Actions:
    keys: int = 0
    clicks: int = 0
    drags: int = 0
    log: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.keys + self.clicks + self.drags


def _images(tiny_detector: ModelVersion) -> list[tuple[Image, Truth]]:
    records = {r.stem: r for r in read_voc(DEMO).records}
    dataset = Dataset.objects.create(name="speed")
    classes = ensure_classes(dataset, sorted({n for s in STEMS for n in records[s].class_names}))
    out = []
    for stem in STEMS:
        record = records[stem]
        image = ingest_image(
            record.image_path.read_bytes(),
            dataset=dataset,
            user=None,
            original_name=record.image_path.name,
        )
        truth = [
            (n, [float(v) for v in b])
            for n, b in zip(record.class_names, record.boxes, strict=True)
        ]
        out.append((image, truth))
        for name, box in truth:  # suggestions that are exactly right
            Box.objects.create(
                image=image, label_class=classes[name], x1=box[0], y1=box[1], x2=box[2],
                y2=box[3], origin="model", model_version=tiny_detector, score=0.9,
            )  # fmt: skip
    return out


def _point(page: Page, x: float, y: float) -> tuple[float, float]:
    return tuple(
        page.evaluate(
            """([x, y]) => { const s = document.getElementById('stage');
               const p = s.createSVGPoint(); p.x = x; p.y = y;
               const q = p.matrixTransform(s.getScreenCTM()); return [q.x, q.y]; }""",
            [x, y],
        )
    )


def _with_suggestions(page: Page, acts: Actions) -> None:
    page.keyboard.press("Shift+A")
    acts.keys += 1
    page.keyboard.press("Control+Enter")
    acts.keys += 1


def _by_drawing(page: Page, acts: Actions, truth: Truth) -> None:
    """The fewest actions without suggestions: a drag per box, and a number key when the
    box's class differs from the last one (the key sets the new box's class and the next's)."""
    names = [t.split()[-1] for t in page.locator("#class-list li").all_inner_texts()]
    current = 0  # the page starts drawing with the first class
    page.keyboard.press("s")  # hide the suggestions: this is labelling without them
    acts.keys += 1
    for name, (x1, y1, x2, y2) in truth:
        page.mouse.move(*_point(page, x1, y1))
        page.mouse.down()
        page.mouse.move(*_point(page, x2, y2), steps=3)
        page.mouse.up()
        acts.drags += 1
        if names.index(name) != current:
            current = names.index(name)
            page.keyboard.press(str(current + 1))
            acts.keys += 1
    page.keyboard.press("Control+Enter")
    acts.keys += 1


def _label(page: Page, base: str, image: Image, how: str, truth: Truth) -> Actions:
    acts = Actions()
    page.goto(f"{base}/label/images/{image.pk}/")
    expect(page.locator("#stage g.box.suggestion")).to_have_count(len(truth))
    if how == "suggestions":
        _with_suggestions(page, acts)
    else:
        _by_drawing(page, acts, truth)
    deadline = time.monotonic() + 15
    while Image.objects.get(pk=image.pk).status != "labeled":  # Ctrl+Enter marked it done
        assert time.monotonic() < deadline, f"{image} was not marked done"
        time.sleep(0.1)
    # Then the page opens the next image (or says there is none): let it finish.
    page.wait_for_function(
        f"""() => location.pathname !== '/label/images/{image.pk}/'
            || document.getElementById('save-state').textContent.startsWith('No more')"""
    )
    page.wait_for_load_state()
    return acts


def _boxes(image: Image) -> list[tuple[str, tuple[int, ...]]]:
    rows = Box.objects.filter(image=image, origin="human").select_related("label_class")
    return sorted((b.label_class.name, tuple(round(v) for v in b.xyxy)) for b in rows)


def test_labeling_speed(
    page: Page, live_server: Any, labeler: Any, tiny_detector: ModelVersion
) -> None:
    images = _images(tiny_detector)
    log_in(page, live_server.url, labeler.username)
    rows = []
    for image, truth in images:
        expected = sorted((n, tuple(round(v) for v in b)) for n, b in truth)
        fast = _label(page, live_server.url, image, "suggestions", truth)
        assert _boxes(image) == expected
        Box.objects.filter(image=image, origin="human").delete()
        for name, box in truth:  # restore the suggestions the first pass consumed
            Box.objects.create(
                image=image, label_class=image.dataset.classes.get(name=name), x1=box[0],
                y1=box[1], x2=box[2], y2=box[3], origin="model",
                model_version=tiny_detector, score=0.9,
            )  # fmt: skip
        Image.objects.filter(pk=image.pk).update(status="new")
        slow = _label(page, live_server.url, image, "drawing", truth)
        drawn = _boxes(image)
        assert [n for n, _ in drawn] == [n for n, _ in expected]
        assert all(
            max(abs(a - b) for a, b in zip(d, e, strict=True)) <= 1
            for (_, d), (_, e) in zip(drawn, expected, strict=True)
        )
        rows.append((image.original_name or str(image.pk), len(truth), fast, slow))
    print(
        "\n| image | boxes | with suggestions (keys + clicks + drags) | drawing every box | ratio |"
    )
    print("|---|---|---|---|---|")
    for name, n, fast, slow in rows:
        print(
            f"| {name} | {n} | {fast.total} ({fast.keys} + {fast.clicks} + {fast.drags}) "
            f"| {slow.total} ({slow.keys} + {slow.clicks} + {slow.drags}) "
            f"| {slow.total / fast.total:.1f}× fewer actions |"
        )
    assert all(fast.total < slow.total for _, _, fast, slow in rows)
