"""Parameter rules of an action: each one checks a value (naming the field at fault) and states itself as an
OpenAPI 3.0 schema, so the validator and the document cannot differ. Pure.

A new kind of parameter (a range address, rows of one width) is a new subclass in the action's own module.
Patterns read the same as Python and ECMA-262 regular expressions (JSON Schema's dialect) and are matched in
full (`fullmatch`: Python's `$` also matches before a trailing line feed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from shared.api.problems import FieldError
from shared.wire.strict_json import dumps

CONTROL = r"\x00-\x1f\x7f-\x9f"  # Unicode's control characters (general category Cc): C0, DEL and C1
NO_CONTROL_PATTERN = rf"^[^{CONTROL}]*$"
_NO_CONTROL = re.compile(NO_CONTROL_PATTERN)
NAME_MAX_LENGTH = 255
# A name: no control character, and at least one character that is not a space
NAME_PATTERN = rf"^[^{CONTROL}]*[^{CONTROL} ][^{CONTROL}]*$"
_NAME = re.compile(NAME_PATTERN)
MAX_VALUES_BYTES = 32 * 1024


def has_control(text: str) -> bool:
    """Whether `text` holds a control character (it could end a header, split a log line, hide in storage)."""
    return _NO_CONTROL.fullmatch(text) is None


class Missing:
    """The marker of an absent parameter (None is JSON's null, a value)."""


MISSING = Missing()


@dataclass(frozen=True)
class Param:
    """One named parameter. `check` returns the value to use (its default when absent) and appends an error
    naming `field` (e.g. `parameters.table`) when the value breaks the rule."""

    name: str
    description: str
    required: bool = True

    def check(self, value: Any, field: str, errors: list[FieldError]) -> Any:
        if isinstance(value, Missing):
            if self.required:
                errors.append(FieldError(field, f"required: {self.description}"))
            return self.absent()
        return self.value(value, field, errors)

    def absent(self) -> Any:
        return None

    def value(self, value: Any, field: str, errors: list[FieldError]) -> Any:
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class Flag(Param):
    """true or false; when absent, `default` (declared in the document: a generated client may send it)."""

    default: bool = True

    def absent(self) -> Any:
        return self.default

    def value(self, value: Any, field: str, errors: list[FieldError]) -> Any:
        if not isinstance(value, bool):
            errors.append(FieldError(field, "must be true or false"))
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean", "default": self.default, "description": self.description}


@dataclass(frozen=True)
class Name(Param):
    """A table's (or worksheet's) id or name: 1-255 characters, not all spaces, no control character."""

    def value(self, value: Any, field: str, errors: list[FieldError]) -> Any:
        if not isinstance(value, str) or not 1 <= len(value) <= NAME_MAX_LENGTH or not _NAME.fullmatch(value):
            errors.append(
                FieldError(
                    field, f"must be an id or name of 1-{NAME_MAX_LENGTH} characters, without control characters"
                )
            )
        return value

    def schema(self) -> dict[str, Any]:
        return {
            "type": "string",
            "minLength": 1,
            "maxLength": NAME_MAX_LENGTH,
            "pattern": NAME_PATTERN,
            "description": self.description,
        }


@dataclass(frozen=True)
class Index(Param):
    """A zero-based row index, a whole number >= 0; `nullable`: null is a value (Graph reads it as "at the end")."""

    nullable: bool = False

    def value(self, value: Any, field: str, errors: list[FieldError]) -> Any:
        if value is None and self.nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            errors.append(FieldError(field, "must be a whole number >= 0"))
        return value

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "integer", "minimum": 0, "description": self.description}
        if self.nullable:
            out["nullable"] = True
        return out


_SCALAR: dict[str, Any] = {
    "anyOf": [{"type": "string", "nullable": True}, {"type": "number"}, {"type": "boolean"}],
    "description": "A cell: string, number, boolean or null",
}


@dataclass(frozen=True)
class Rows(Param):
    """Rows of cells: a non-empty array of non-empty arrays of scalars (string, number, boolean, null), at most
    `max_bytes` as JSON. Cell strings may hold line feeds and tabs (Excel cells do); they travel as JSON."""

    max_bytes: int = MAX_VALUES_BYTES

    def value(self, value: Any, field: str, errors: list[FieldError]) -> Any:
        if not _is_rows(value):
            errors.append(FieldError(field, "must be a non-empty array of non-empty arrays of scalars"))
        elif len(dumps(value)) > self.max_bytes:
            errors.append(FieldError(field, f"must be at most {self.max_bytes} bytes as JSON"))
        return value

    def schema(self) -> dict[str, Any]:
        return {
            "type": "array",
            "minItems": 1,
            "items": {"type": "array", "minItems": 1, "items": _SCALAR},
            "description": f"{self.description} (at most {self.max_bytes // 1024} KiB as JSON)",
        }


def _is_rows(values: Any) -> bool:
    if not isinstance(values, list) or not values:
        return False
    for row in values:
        if not isinstance(row, list) or not row:
            return False
        if not all(cell is None or isinstance(cell, str | int | float | bool) for cell in row):
            return False
    return True
