"""Retry-After as sent by Graph and by webhook receivers: seconds (fractional too) or an HTTP date. Pure.

Apart from shared/graph/answers.py so the webhook adapter can read a receiver's Retry-After without importing
the Graph decisions.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait. Graph sends fractional seconds (`2.128`); HTTP dates are accepted too."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if now is None:
            return None
        seconds = when.timestamp() - now
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)
