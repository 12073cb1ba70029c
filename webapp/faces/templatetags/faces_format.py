"""Number formats for the faces pages: rates as percentages."""

from __future__ import annotations

import math
from typing import Any

from django import template

register = template.Library()


@register.filter
def percent(value: Any, digits: int = 1) -> str:
    """``0.0451`` → ``4.5%`` (``digits`` decimals); "—" for a missing or odd value."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "—"
    return f"{value * 100:.{int(digits)}f}%"
