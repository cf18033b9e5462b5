"""The Workflow Definition Language's expressions, as Logic Apps evaluates them (a subset, failing loudly).

Sources (MicrosoftDocs/azure-docs):
- `articles/logic-apps/logic-apps-workflow-definition-language.md`, "Expressions": "you can use an expression
  anywhere in a JSON string value by prefixing the expression with the at-sign (@)"; "String interpolation also
  lets you use multiple expressions inside strings that are wrapped by the @ character and curly braces ({})
  ... The result is always a string"; "If you have a literal string that starts with the @ character, prefix
  the @ character with another @ character as an escape character: @@"; the table: `"@{parameters('myAge')}"`
  -> "Return this number as a string: "42"", `"My age is @@{parameters('myAge')}"` -> the expression text.
- same file, "Operators": `'` string literals, `[]` index, `.` property, `?` "To reference null properties in
  an object without a runtime error, use the question mark operator".
- `articles/logic-apps/workflow-definition-language-functions-reference.md` for each function below.

A function this module does not know raises `UnsupportedExpression` (never a guess), so a test cannot pass by
accident. A runtime error Logic Apps would raise (a property of null without `?`, a missing property, a bad
`json()` argument) raises `ExpressionError`, which fails the action as Logic Apps fails it ("InvalidTemplate").
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol


class ExpressionError(Exception):
    """A template language error at run time: the action fails with code InvalidTemplate, as in Logic Apps."""


class UnsupportedExpression(Exception):
    """Something this model does not implement: raised out of the run, so no test passes by accident."""


class Context(Protocol):
    """What expressions can read from the run (the engine implements it)."""

    def parameter(self, name: str) -> Any: ...
    def appsetting(self, name: str) -> Any: ...
    def workflow(self) -> dict[str, Any]: ...
    def trigger(self) -> dict[str, Any]: ...
    def action(self, name: str) -> dict[str, Any]: ...
    def outputs(self, name: str) -> Any: ...
    def result(self, name: str) -> list[dict[str, Any]]: ...
    def list_callback_url(self) -> str: ...


# ---------------------------------------------------------------- tokenizer and parser


@dataclass(frozen=True)
class _Tok:
    kind: str  # "name", "str", "num", "punct"
    value: Any


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "'":
            # WDL string literals use single quotes; a quote inside is doubled ('').
            j, out = i + 1, []
            while True:
                if j >= len(text):
                    raise ExpressionError(f"unterminated string literal in {text!r}")
                if text[j] == "'":
                    if j + 1 < len(text) and text[j + 1] == "'":
                        out.append("'")
                        j += 2
                        continue
                    break
                out.append(text[j])
                j += 1
            tokens.append(_Tok("str", "".join(out)))
            i = j + 1
        elif c.isdigit() or (c == "-" and i + 1 < len(text) and text[i + 1].isdigit()):
            j = i + 1
            while j < len(text) and (text[j].isdigit() or text[j] == "."):
                j += 1
            raw = text[i:j]
            tokens.append(_Tok("num", float(raw) if "." in raw else int(raw)))
            i = j
        elif c.isalpha() or c == "_":
            j = i + 1
            while j < len(text) and (text[j].isalnum() or text[j] in "_$"):
                j += 1
            tokens.append(_Tok("name", text[i:j]))
            i = j
        elif c in "()[],.?":
            tokens.append(_Tok("punct", c))
            i += 1
        else:
            raise ExpressionError(f"unexpected character {c!r} in expression {text!r}")
    return tokens


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Access:
    base: Node
    key: Node
    safe: bool  # `?[...]` / `?.x`


@dataclass(frozen=True)
class ArrayLiteral:
    items: tuple[Node, ...]


Node = Call | Literal | Access | ArrayLiteral


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self, value: str | None = None) -> _Tok | None:
        tok = self.tokens[self.pos] if self.pos < len(self.tokens) else None
        if value is not None and (tok is None or tok.kind != "punct" or tok.value != value):
            return None
        return tok

    def take(self, value: str | None = None) -> _Tok:
        tok = self.peek(value) if value is not None else self.peek()
        if tok is None:
            want = f"{value!r}" if value else "more"
            raise ExpressionError(f"expected {want} in expression {self.text!r}")
        self.pos += 1
        return tok

    def parse(self) -> Node:
        node = self.expr()
        if self.pos != len(self.tokens):
            raise ExpressionError(f"unexpected {self.tokens[self.pos].value!r} in expression {self.text!r}")
        return node

    def expr(self) -> Node:
        node = self.primary()
        while True:
            safe = False
            if self.peek("?"):
                self.take("?")
                safe = True
            if self.peek("["):
                self.take("[")
                key = self.expr()
                self.take("]")
                node = Access(node, key, safe)
            elif self.peek("."):
                self.take(".")
                name = self.take()
                if name.kind != "name":
                    raise ExpressionError(f"expected a property name after '.' in {self.text!r}")
                node = Access(node, Literal(name.value), safe)
            elif safe:
                raise ExpressionError(f"'?' must be followed by [..] or .name in {self.text!r}")
            else:
                return node

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind in ("str", "num"):
            return Literal(tok.value)
        if tok.kind == "punct" and tok.value == "[":
            items: list[Node] = []
            if not self.peek("]"):
                items.append(self.expr())
                while self.peek(","):
                    self.take(",")
                    items.append(self.expr())
            self.take("]")
            return ArrayLiteral(tuple(items))
        if tok.kind == "name":
            if not self.peek("("):
                lowered = tok.value.lower()
                if lowered in ("true", "false"):
                    return Literal(lowered == "true")
                if lowered == "null":
                    return Literal(None)
                raise ExpressionError(f"unknown identifier {tok.value!r} in expression {self.text!r}")
            self.take("(")
            args: list[Node] = []
            if not self.peek(")"):
                args.append(self.expr())
                while self.peek(","):
                    self.take(",")
                    args.append(self.expr())
            self.take(")")
            return Call(tok.value, tuple(args))
        raise ExpressionError(f"unexpected {tok.value!r} in expression {self.text!r}")


def parse(text: str) -> Node:
    """Parse one expression body (without the leading @)."""
    return _Parser(text).parse()


# ---------------------------------------------------------------- values


def is_content_object(value: Any) -> bool:
    """The `{"$content-type": ..., "$content": <base64>}` shape (logic-apps-content-type.md, "Other content types")."""
    return isinstance(value, dict) and "$content" in value and "$content-type" in value


def _content_bytes(value: dict[str, Any]) -> bytes:
    try:
        return base64.b64decode(str(value["$content"]), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ExpressionError(f"$content is not base64: {error}") from None


def to_text(value: Any) -> str:
    """How a value becomes text in `@{...}` and `string()`.

    Booleans print as .NET does ("True"/"False"); objects and arrays as compact JSON; null as "". A
    `$content` object is decoded (logic-apps-content-type.md: "you could still use this data ... with a
    function like `@string(body('formdataAction'))`").
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if is_content_object(value):
        return _content_bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _equals(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if type(a) is not type(b):
        return False
    return bool(a == b)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, dict)) and len(value) == 0)


def _truthy(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ExpressionError(f"{what} expects a boolean, got {type(value).__name__} {value!r}")
    return value


def _json(value: Any) -> Any:
    # functions reference, json(): "Return the JSON type value or object for a string or XML."
    if is_content_object(value):
        value = _content_bytes(value).decode("utf-8")
    if not isinstance(value, str):
        if isinstance(value, (dict, list)):
            return value
        raise ExpressionError(f"json() expects a string, got {type(value).__name__}")
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise ExpressionError(f"json() could not parse {value[:80]!r}: {error}") from None


def _base64_to_string(value: Any) -> str:
    if is_content_object(value):
        return _content_bytes(value).decode("utf-8")
    if not isinstance(value, str):
        raise ExpressionError(f"base64ToString() expects a string, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise ExpressionError(f"base64ToString() got an invalid base64 string: {error}") from None


def _int(value: Any) -> int:
    try:
        return int(str(value)) if not isinstance(value, (int, float)) else int(value)
    except ValueError:
        raise ExpressionError(f"int() cannot convert {value!r}") from None


def _length(value: Any) -> int:
    if isinstance(value, (str, list, dict)):
        return len(value)
    raise ExpressionError(f"length() expects a string or an array, got {type(value).__name__}")


def _contains(collection: Any, item: Any) -> bool:
    if isinstance(collection, str):
        return isinstance(item, str) and item in collection
    if isinstance(collection, dict):
        return isinstance(item, str) and item in collection
    if isinstance(collection, list):
        return any(_equals(x, item) for x in collection)
    raise ExpressionError(f"contains() expects a string, array or object, got {type(collection).__name__}")


def _compare(name: str, op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
        if not numbers and not (isinstance(a, str) and isinstance(b, str)):
            raise ExpressionError(f"{name}() compares two numbers or two strings, got {a!r} and {b!r}")
        return op(a, b)

    return compare


def _arity(name: str, args: tuple[Any, ...], low: int, high: int | None = None) -> None:
    high = low if high is None else high
    if not low <= len(args) <= high:
        raise ExpressionError(f"{name}() takes {low if low == high else f'{low}..{high}'} arguments, got {len(args)}")


# Pure functions: name (lowercase: WDL function names are case-insensitive) -> (min args, max args, impl).
_PURE: dict[str, tuple[int, int | None, Callable[..., Any]]] = {
    "equals": (2, 2, _equals),
    "and": (1, None, lambda *a: all(_truthy(x, "and()") for x in a)),
    "or": (1, None, lambda *a: any(_truthy(x, "or()") for x in a)),
    "not": (1, 1, lambda a: not _truthy(a, "not()")),
    "concat": (1, None, lambda *a: "".join(to_text(x) for x in a)),
    "string": (1, 1, to_text),
    "json": (1, 1, _json),
    "base64": (1, 1, lambda a: base64.b64encode(to_text(a).encode("utf-8")).decode("ascii")),
    "base64tostring": (1, 1, _base64_to_string),
    "coalesce": (1, None, lambda *a: next((x for x in a if x is not None), None)),
    "if": (3, 3, lambda c, a, b: a if _truthy(c, "if()") else b),
    "empty": (1, 1, _empty),
    "length": (1, 1, _length),
    "contains": (2, 2, _contains),
    "greater": (2, 2, _compare("greater", lambda a, b: a > b)),
    "greaterorequals": (2, 2, _compare("greaterOrEquals", lambda a, b: a >= b)),
    "less": (2, 2, _compare("less", lambda a, b: a < b)),
    "lessorequals": (2, 2, _compare("lessOrEquals", lambda a, b: a <= b)),
    "int": (1, 1, _int),
    "tolower": (1, 1, lambda a: to_text(a).lower()),
    "toupper": (1, 1, lambda a: to_text(a).upper()),
    "startswith": (2, 2, lambda a, b: to_text(a).lower().startswith(to_text(b).lower())),
    "endswith": (2, 2, lambda a, b: to_text(a).lower().endswith(to_text(b).lower())),
    "createarray": (1, None, lambda *a: list(a)),
    "guid": (0, 0, lambda: str(uuid.uuid4())),
    "utcnow": (0, 1, lambda *a: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")),
    "first": (1, 1, lambda a: (a[0] if a else None) if isinstance(a, (list, str)) else None),
    "last": (1, 1, lambda a: (a[-1] if a else None) if isinstance(a, (list, str)) else None),
}


def _select(base: Any, key: Any, safe: bool, text: str) -> Any:
    if base is None:
        if safe:
            return None
        # Logic Apps: "The template language expression '...' cannot be evaluated because property '...'
        # cannot be selected." (runtime InvalidTemplate)
        raise ExpressionError(f"cannot select {key!r} of null in {text!r} (use ?[...] for a null-safe access)")
    if isinstance(base, list):
        if not isinstance(key, int) or isinstance(key, bool):
            raise ExpressionError(f"an array index must be an integer, got {key!r} in {text!r}")
        if 0 <= key < len(base):
            return base[key]
        if safe:
            return None
        raise ExpressionError(f"index {key} is out of range in {text!r}")
    if isinstance(base, dict):
        if not isinstance(key, str):
            raise ExpressionError(f"a property name must be a string, got {key!r} in {text!r}")
        if key in base:
            return base[key]
        if safe:
            return None
        raise ExpressionError(f"property {key!r} doesn't exist, available properties are {sorted(base)} in {text!r}")
    if safe:
        return None
    raise ExpressionError(f"cannot select {key!r} of a {type(base).__name__} in {text!r}")


def evaluate_node(node: Node, ctx: Context, text: str) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, ArrayLiteral):
        return [evaluate_node(item, ctx, text) for item in node.items]
    if isinstance(node, Access):
        base = evaluate_node(node.base, ctx, text)
        key = evaluate_node(node.key, ctx, text)
        return _select(base, key, node.safe, text)
    name = node.name.lower()
    # Arguments are all evaluated first (the model never short-circuits if()/and()/or(): stricter than a
    # lazy reading, so a workflow that works here does not depend on laziness).
    args = tuple(evaluate_node(arg, ctx, text) for arg in node.args)
    if name in _PURE:
        low, high, impl = _PURE[name]
        if high is None:
            if len(args) < low:
                raise ExpressionError(f"{node.name}() takes at least {low} arguments in {text!r}")
        else:
            _arity(node.name, args, low, high)
        return impl(*args)
    return _context_function(node.name, name, args, ctx, text)


def _name_arg(fname: str, args: tuple[Any, ...]) -> str:
    _arity(fname, args, 1)
    if not isinstance(args[0], str):
        raise ExpressionError(f"{fname}() expects a name (string), got {args[0]!r}")
    return args[0]


def _context_function(fname: str, name: str, args: tuple[Any, ...], ctx: Context, text: str) -> Any:
    if name == "parameters":
        return ctx.parameter(_name_arg(fname, args))
    if name == "appsetting":
        return ctx.appsetting(_name_arg(fname, args))
    if name == "workflow":
        _arity(fname, args, 0)
        return ctx.workflow()
    if name == "trigger":
        _arity(fname, args, 0)
        return ctx.trigger()
    if name == "triggeroutputs":
        _arity(fname, args, 0)
        return ctx.trigger().get("outputs")
    if name == "triggerbody":
        _arity(fname, args, 0)
        outputs = ctx.trigger().get("outputs") or {}
        return outputs.get("body")
    if name == "actions":
        return ctx.action(_name_arg(fname, args))
    if name == "outputs":
        return ctx.outputs(_name_arg(fname, args))
    if name == "body":
        # functions reference, body(): "Return an action's body output at runtime. Shorthand for
        # actions('<actionName>').outputs.body."
        outputs = ctx.outputs(_name_arg(fname, args))
        return outputs.get("body") if isinstance(outputs, dict) else None
    if name == "result":
        return ctx.result(_name_arg(fname, args))
    if name == "listcallbackurl":
        _arity(fname, args, 0)
        return ctx.list_callback_url()
    raise UnsupportedExpression(f"function {fname}() is not modelled (in {text!r}); add it to tests/logicapps")


def evaluate_expression(text: str, ctx: Context) -> Any:
    return evaluate_node(parse(text), ctx, text)


def _find_close(s: str, start: int) -> int:
    """Index of the `}` closing an `@{` whose body starts at `start` (quotes respected)."""
    i, in_str = start, False
    while i < len(s):
        c = s[i]
        if in_str:
            if c == "'":
                if i + 1 < len(s) and s[i + 1] == "'":
                    i += 2
                    continue
                in_str = False
        elif c == "'":
            in_str = True
        elif c == "}":
            return i
        i += 1
    raise ExpressionError(f"unterminated @{{ in {s!r}")


def evaluate_string(s: str, ctx: Context) -> Any:
    """One JSON string value of a definition, evaluated as Logic Apps does."""
    if s.startswith("@@"):
        return s[1:]
    if s.startswith("@") and not s.startswith("@{"):
        return evaluate_expression(s[1:], ctx)
    if "@{" not in s:
        return s
    out: list[str] = []
    i = 0
    while i < len(s):
        if s.startswith("@@{", i):
            out.append("@{")
            i += 3
        elif s.startswith("@{", i):
            close = _find_close(s, i + 2)
            out.append(to_text(evaluate_expression(s[i + 2 : close], ctx)))
            i = close + 1
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def evaluate_value(value: Any, ctx: Context) -> Any:
    """Evaluate every string in a JSON value (objects and arrays recursively)."""
    if isinstance(value, str):
        return evaluate_string(value, ctx)
    if isinstance(value, dict):
        return {key: evaluate_value(item, ctx) for key, item in value.items()}
    if isinstance(value, list):
        return [evaluate_value(item, ctx) for item in value]
    return value


# Condition objects of the If action (logic-apps-workflow-actions-triggers.md, "If action": `"expression":
# {"and": [{"greater": ["@variables('myIntegerVariable')", 0]}]}`), evaluated with the same functions.
_CONDITION_FUNCTIONS = {
    "and",
    "or",
    "not",
    "equals",
    "greater",
    "greaterorequals",
    "less",
    "lessorequals",
    "contains",
    "startswith",
    "endswith",
    "empty",
}


def evaluate_condition(expression: Any, ctx: Context) -> bool:
    if isinstance(expression, str):
        value = evaluate_string(expression, ctx)
    elif isinstance(expression, bool):
        value = expression
    elif isinstance(expression, dict) and len(expression) == 1:
        [(op, operands)] = expression.items()
        if op.lower() not in _CONDITION_FUNCTIONS:
            raise UnsupportedExpression(f"condition operator {op!r} is not modelled")
        if op.lower() in ("and", "or"):
            results = [evaluate_condition(item, ctx) for item in operands]
            value = all(results) if op.lower() == "and" else any(results)
        elif op.lower() == "not":
            value = not evaluate_condition(operands, ctx)
        else:
            args = operands if isinstance(operands, list) else [operands]
            values = tuple(evaluate_value(arg, ctx) for arg in args)
            low, high, impl = _PURE[op.lower()]
            _arity(op, values, low, high)
            value = impl(*values)
    else:
        raise ExpressionError(f"cannot read the condition {expression!r}")
    # "For Boolean expressions only, the condition passes for any value that evaluates to true."
    return _truthy(value, "the If condition")
