"""Database ids from text (a query parameter, a path, a form): ASCII digits that fit a
bigint. ``str.isdigit`` alone also accepts "²" and "١" (which ``int`` refuses or reads) and
25-digit numbers (which overflow the query): both answered 500 once."""

from __future__ import annotations


def is_id(raw: str) -> bool:
    """True for text ``int`` reads as a positive id a database column can hold."""
    return raw.isascii() and raw.isdigit() and 0 < len(raw) < 19 and int(raw) > 0


def parse_id(raw: str | None) -> int | None:
    """The id, or None when the text is not one."""
    return int(raw) if raw is not None and is_id(raw) else None
