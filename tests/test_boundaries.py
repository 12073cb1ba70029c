"""inference/ and the pure half of training/ are a library: no Django, DRF or webapp in them.

Checked on the source with ``ast``, so an import inside a function (where a lazy import would
hide from a test that only imports the module) fails too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("django", "rest_framework", "webapp")
# training/'s Django app parts: the only modules of the two packages allowed to import Django.
TRAINING_DJANGO_PARTS = {
    "training/apps.py",
    "training/models.py",
    "training/samples.py",  # dataset rows -> samples
    "training/services.py",  # train / register / evaluate as functions for commands and jobs
    "training/split_service.py",  # dataset rows -> data-mismatch splits and their report
    "training/split_views.py",  # the splits API
    "training/urls.py",
    "training/runs.py",  # training runs: start, trials as jobs, advance, finish
    "training/trials.py",  # one trial's training and measuring on the dataset's rows
    "training/jobs.py",
    "training/run_views.py",  # the training runs and registry API
    "training/registry.py",  # which version serves each dataset
    "training/backbones.py",  # uploaded backbone files, checked and stored
    "training/pages.py",
    "training/page_urls.py",
}
TRAINING_DJANGO_FOLDERS = ("training/migrations/", "training/management/")
DJANGO_MODULES = {p.removesuffix(".py").replace("/", ".") for p in TRAINING_DJANGO_PARTS}
DJANGO_MODULES |= {f.rstrip("/").replace("/", ".") for f in TRAINING_DJANGO_FOLDERS}


def pure_modules() -> list[Path]:
    files = sorted((ROOT / "inference").rglob("*.py")) + sorted((ROOT / "training").rglob("*.py"))
    pure = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        if rel in TRAINING_DJANGO_PARTS or rel.startswith(TRAINING_DJANGO_FOLDERS):
            continue
        pure.append(path)
    return pure


def imported_modules(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` of every import anywhere in the file.

    Relative imports are resolved against the file's package; ``importlib.import_module`` and
    ``__import__`` calls with a literal name count too.
    """
    package = list(path.relative_to(root).with_suffix("").parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
            found.append((node.lineno, module))
        elif isinstance(node, ast.Call) and node.args:
            name = ast.unparse(node.func)
            arg = node.args[0]
            if name in ("importlib.import_module", "import_module", "__import__") and (
                isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            ):
                found.append((node.lineno, arg.value))
    return found


def _forbidden(module: str) -> bool:
    top = module.split(".")[0]
    return top in FORBIDDEN or any(
        module == part or module.startswith(f"{part}.") for part in DJANGO_MODULES
    )


def test_the_scan_sees_the_modules_it_guards() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in pure_modules()}
    assert {"inference/boxes.py", "training/fit.py", "training/splits.py"} <= names
    assert {"training/formats/voc.py", "training/crossval.py", "training/options.py"} <= names
    assert not names & TRAINING_DJANGO_PARTS
    for part in TRAINING_DJANGO_PARTS:
        assert (ROOT / part).is_file(), f"{part} is listed as a Django part but does not exist"


def test_the_scan_finds_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "training" / "sneaky.py"
    module.parent.mkdir()
    module.write_text(
        "import numpy\n"
        "def f():\n"
        "    from django.conf import settings\n"
        "    from .models import ModelVersion\n"
        "    import importlib\n"
        "    importlib.import_module('webapp.images')\n"
    )
    bad = [m for _, m in imported_modules(module, tmp_path) if _forbidden(m)]
    assert "django.conf" in bad and "training.models" in bad and "webapp.images" in bad
    assert "numpy" not in bad


@pytest.mark.parametrize("path", pure_modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_pure_module_imports_no_django(path: Path) -> None:
    bad = [f"line {n}: {module}" for n, module in imported_modules(path) if _forbidden(module)]
    assert not bad, f"{path.relative_to(ROOT)} imports Django-side code: {bad}"
