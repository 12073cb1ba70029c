"""Identity folders: ``root/<person>/<image>``, one sub-folder per person (ORL's layout).

Pure code (no Django). This is the layout of ORL / AT&T (``faces/sN/K.pgm``) and of most face
collections people keep; each image is a whole-image face of the person its folder names.
:func:`load_identity_folder` reads it; :func:`identity_files` writes it (the faces export).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image

from training.formats.records import ExportFile

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class FaceSample:
    """One face image of a known person.

    Attributes:
        image_path: the image file (any format ``inference.preprocess.load_rgb`` decodes).
        identity: the person's id (for a folder layout, the sub-folder's name).
        box: face box ``(x1, y1, x2, y2)`` in pixels of the decoded image, or ``None`` when
            the whole image is the face (ORL, or crops a user uploaded).
    """

    image_path: Path
    identity: str
    box: Box | None = None


def is_image_file(path: Path) -> bool:
    """Whether ``path`` is a visible file with an extension PIL can open."""
    # PIL's registry of extensions is the list of formats it can open; hidden files (.DS_Store)
    # and notes next to the pictures are skipped without a decode attempt.
    return (
        path.is_file()
        and not path.name.startswith(".")
        and path.suffix.lower() in Image.registered_extensions()
    )


def load_identity_folder(root: str | Path) -> list[FaceSample]:
    """List ``root/<person>/<image>`` files as whole-image face samples.

    Args:
        root: a folder with one sub-folder per person (e.g. ORL's ``faces/sN/K.pgm``).

    Returns:
        Samples sorted by person then file name, ``box=None``. Sub-folders without images
        are skipped; files are not decoded here (that happens once, when training).

    Raises:
        FileNotFoundError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    samples: list[FaceSample] = []
    for person in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for image in sorted(p for p in person.iterdir() if is_image_file(p)):
            samples.append(FaceSample(image_path=image, identity=person.name))
    return samples


def folder_name(identity: str) -> str:
    """A person's name as one safe folder name (separators and leading dots replaced)."""
    name = re.sub(r"[\\/\x00-\x1f]+", "_", identity).strip()
    return re.sub(r"^\.+", "_", name) or "_"


def identity_files(
    faces: Sequence[tuple[FaceSample, str, str | None]],
) -> Iterator[ExportFile]:
    """The files of an identity-folder export: ``[<split>/]<person>/<file>``.

    Args:
        faces: ``(sample, file name, split or None)`` per face. A sample without a box is
            the whole image (copied as it is); one with a box is cropped to it and written
            as PNG (so a photo of several people gives each person their own face).
    """
    for sample, name, split in faces:
        folder = f"{split}/" if split else ""
        folder += folder_name(sample.identity)
        if sample.box is None:
            yield f"{folder}/{name}", sample.image_path
            continue
        with Image.open(sample.image_path) as image:
            x1, y1, x2, y2 = (round(v) for v in sample.box)
            crop = image.crop((x1, y1, x2, y2))
            buffer = io.BytesIO()
            crop.save(buffer, format="PNG")
        yield f"{folder}/{PurePosixPath(name).stem}.png", buffer.getvalue()
