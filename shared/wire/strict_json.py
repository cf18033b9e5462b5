"""Strict JSON: what the bridge accepts from outside and what it lets out. Pure: no I/O.

Python's `json` accepts more than RFC 8259 JSON and fails in ways that are not `JSONDecodeError`:
- `NaN`, `Infinity`, `-Infinity` are read as floats (RFC 8259 section 6: "Numeric values that cannot be
  represented in the grammar below (such as Infinity and NaN) are not permitted"), and `1e999` becomes `inf`;
- deep nesting raises `RecursionError`; an integer of more than 4,300 digits raises `ValueError`
  (CPython's int max_str_digits limit);
- a repeated object key silently keeps the last value (RFC 8259 section 4: names "SHOULD be unique";
  receivers differ on which one wins, so the bridge refuses the ambiguity).
`loads` refuses all of these with `JsonRefused` (a ValueError), whatever the cause; `dumps` never writes
NaN or Infinity (`allow_nan=False`: a ValueError instead of invalid JSON).

JSON's `\\ud800` escape reads as a lone surrogate, which is not a Unicode scalar value: such text is not I-JSON
(RFC 7493 section 2.1) and cannot be encoded as UTF-8. `lone_surrogate_at` finds one, so the edge can refuse it
naming its field.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64  # arrays and objects nested in each other
MAX_NUMBER_CHARS = 64  # characters of one number literal (sign, digits, fraction, exponent)

_TOKEN = re.compile(r'[\[\]{}"]')
_SURROGATE = re.compile("[\ud800-\udfff]")  # after parsing, a proper pair is one character: only lone ones remain
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


class JsonRefused(ValueError):
    """The text is not strict JSON within the bridge's limits; the message says why (safe to show)."""


def _constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not JSON (RFC 8259 numbers are finite)")


def _integer(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise JsonRefused(f"a number has more than {MAX_NUMBER_CHARS} characters")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise JsonRefused(f"a number has more than {MAX_NUMBER_CHARS} characters")
    value = float(text)
    if not math.isfinite(value):
        raise JsonRefused(f"the number {text[:20]} is out of range")
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise JsonRefused(f"duplicate key {key[:40]!r}")
        out[key] = value
    return out


def nesting_depth(text: str, stop_above: int | None = None) -> int:
    """How deep arrays and objects nest (brackets inside strings do not count). One linear pass, no
    recursion: each string is skipped from its opening quote, and an unterminated one ends the scan (that
    text is not JSON; the parser says why). With `stop_above`, the scan stops once the depth passes it."""
    depth = deepest = pos = 0
    while (token := _TOKEN.search(text, pos)) is not None:
        char = token.group()
        if char == '"':
            string = _STRING.match(text, token.start())
            if string is None:
                break
            pos = string.end()
            continue
        depth += 1 if char in "[{" else -1
        deepest = max(deepest, depth)
        if stop_above is not None and deepest > stop_above:
            break
        pos = token.end()
    return deepest


def too_deep(text: str, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` deep (cheap when there are few brackets at all)."""
    return text.count("[") + text.count("{") > limit and nesting_depth(text, stop_above=limit) > limit


def loads(data: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse strict JSON (UTF-8, a leading BOM ignored, when bytes); JsonRefused for anything else."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
        if too_deep(text, max_depth):
            raise JsonRefused(f"nested more than {max_depth} levels deep")
        return json.loads(
            text, parse_constant=_constant, parse_int=_integer, parse_float=_float, object_pairs_hook=_object
        )
    except JsonRefused:
        raise
    except UnicodeDecodeError:
        raise JsonRefused("not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise JsonRefused(f"not valid JSON: {exc}") from None
    except (ValueError, RecursionError, OverflowError):  # any other limit hit inside the parser
        raise JsonRefused("not JSON the bridge can read") from None


def _finite_or_none(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def loads_stored(text: str) -> Any:
    """The bridge's own stored JSON (table entities). Records written before output was strict may hold
    NaN or Infinity: they are read as null, so reading such a record never fails and never passes them on."""
    return json.loads(text, parse_constant=lambda _: None, parse_float=_finite_or_none)


def dumps(value: Any, **options: Any) -> str:
    """json.dumps that refuses (ValueError) rather than writes NaN or Infinity."""
    return json.dumps(value, allow_nan=False, **options)


def lone_surrogate_at(value: Any, path: str = "") -> str | None:
    """Where the first string holding a lone surrogate is, as a field path (`clientReference`,
    `parameters.values[3][1]`), or None when every string is Unicode text. A bad object key names the object it
    is in (`body` at the top)."""
    if isinstance(value, str):
        return (path or "body") if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if _SURROGATE.search(key):
                return path or "body"
            found = lone_surrogate_at(item, f"{path}.{key}" if path else key)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = lone_surrogate_at(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None
