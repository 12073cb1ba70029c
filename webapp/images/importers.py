"""Where the dataset importer used to live; it is now ``webapp.labeling.importers``.

Kept so ``load_demo``, the faces importer and older callers keep importing ``import_voc``
and ``ImportReport`` from here.
"""

from __future__ import annotations

from webapp.labeling.importers import ImportReport, import_voc

__all__ = ["ImportReport", "import_voc"]
