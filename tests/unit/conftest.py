"""Fixtures shared by the in-process tests (tests/unit/fakes.py holds the fakes themselves)."""

from tests.unit.fakes import clock

__all__ = ["clock"]
