"""Fixtures of the analytics tests beyond tests/conftest.py's."""

from tests.factories.disk import small_disk

__all__ = ["small_disk"]
