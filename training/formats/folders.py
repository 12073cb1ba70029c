"""Identity folders: ``root/<person>/<image>``, one sub-folder per person (ORL's layout).

Pure code (no Django). This is the layout of ORL / AT&T (``faces/sN/K.pgm``) and of most face
collections people keep; each image is a whole-image face of the person its folder names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

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
