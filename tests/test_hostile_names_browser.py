"""Names are data, never markup: a dataset, a class, a file, a person and a tag named with
script, shown on every page that shows names, in Chromium under the site's
Content-Security-Policy. No script runs (no dialog), the names read as text, and no page
breaks the policy (no inline script or handler of ours is blocked)."""

from __future__ import annotations

import pytest

from tests.browser_fixtures import log_in
from tests.images import jpeg_bytes
from webapp.faces.models import Subject
from webapp.images.ingest import ingest_image
from webapp.images.models import Box, Dataset, LabelClass, Task
from webapp.security import POLICY

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]
HOSTILE = "<svg onload=alert(1)><img src=x onerror=alert(2)>\"'&"
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
  e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


@pytest.fixture
def hostile(admin_user, tiny_detector):
    dataset = Dataset.objects.create(name=f"cells {HOSTILE}", task=Task.DETECTION)
    image = ingest_image(
        jpeg_bytes(200, 150), dataset=dataset, user=admin_user, original_name=f"{HOSTILE}.png"
    )
    cls = LabelClass.objects.create(dataset=dataset, name=f"RBC {HOSTILE}", color="#e6194b")
    Box.objects.create(image=image, label_class=cls, x1=10, y1=10, x2=60, y2=60, origin="human")
    people = Dataset.objects.create(name=f"people {HOSTILE}", task=Task.FACES)
    Subject.objects.create(dataset=people, name=f"Ann {HOSTILE}")
    return dataset, image, people


def test_hostile_names_stay_text_on_every_page(page, live_server, admin_user, hostile):
    dataset, image, _people = hostile
    dialogs: list[str] = []

    def on_dialog(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.add_init_script(RECORD_VIOLATIONS)
    log_in(page, live_server.url, admin_user.username)
    pages = [
        "/",
        "/datasets/",
        f"/datasets/{dataset.pk}/",
        f"/images/{image.pk}/",
        f"/label/images/{image.pk}/",
        f"/label/datasets/{dataset.pk}/queue/",
        f"/training/?dataset={dataset.pk}",
        f"/training/datasets/{dataset.pk}/splits/",
        "/training/models/",
        f"/analysis/datasets/{dataset.pk}/evaluations/",
        "/faces/people/",
        "/jobs/",
        "/admin/images/image/",
        "/api/v1/docs/",
    ]
    for path in pages:
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None and response.status < 400, path
        assert response.headers["content-security-policy"] == POLICY, path
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.__violations") == [], path
        assert page.locator("svg[onload], img[onerror]").count() == 0, path
    assert dialogs == []
    page.goto(f"{live_server.url}/datasets/")
    assert HOSTILE in page.locator("table").inner_text()  # shown, as text
