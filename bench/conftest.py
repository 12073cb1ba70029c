"""Fixtures for the benchmarks that run under pytest (the browser-driven ones): the tests'."""

from tests.browser_fixtures import browser, page  # noqa: F401
from tests.conftest import _clean_media, labeler, tiny_detector  # noqa: F401
