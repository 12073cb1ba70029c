"""JSON bodies are objects: every endpoint of this API takes named fields, so a body that
is an array, a string or a number is refused with 400 before a view looks inside it (a
list once reached ``.get`` and answered 500)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        data = super().parse(stream, media_type, parser_context)
        if not isinstance(data, dict):
            raise ParseError(f"The body must be a JSON object, not {type(data).__name__}.")
        return data
