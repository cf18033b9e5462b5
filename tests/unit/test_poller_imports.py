"""The poll chain is a driver of pure decisions: it does not import the HTTP side (shared.operations.start), reads
the clock once per step, and matches no error codes of its own (issue 10)."""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "operations" / "poll_step.py"
TREE = ast.parse(SOURCE.read_text())
# The step path: poll_once and every function of poll_step.py it reaches.
STEP = ("poll_once", "_get", "_tokens_for", "reschedule", "_still_ours", "finish")


def _functions() -> dict[str, ast.AsyncFunctionDef | ast.FunctionDef]:
    return {node.name: node for node in TREE.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def _clock_reads(node: ast.AST) -> int:
    return sum(
        1
        for n in ast.walk(node)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr in ("time", "monotonic")
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "time"
    )


def test_poller_does_not_import_the_http_side() -> None:
    imported = set()
    for node in ast.walk(TREE):
        if isinstance(node, ast.ImportFrom):
            imported.add(("." * node.level) + (node.module or ""))
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert not imported & {".operations", "shared.operations.start", ".function_app", "function_app"}


def test_the_step_reads_the_clock_once_and_passes_now_down() -> None:
    functions = _functions()
    assert _clock_reads(functions["poll_once"]) == 1
    for name in STEP[1:]:
        assert _clock_reads(functions[name]) == 0, name
    for name in ("_get", "reschedule", "finish"):
        assert "now" in [a.arg for a in functions[name].args.args], name


def test_the_poller_matches_no_error_codes() -> None:
    compared = [
        n
        for n in ast.walk(TREE)
        if isinstance(n, ast.Compare)
        and any(
            isinstance(c, ast.Tuple | ast.List | ast.Set | ast.Constant) and _has_code_string(c) for c in n.comparators
        )
    ]
    assert not compared, [ast.unparse(n) for n in compared]


def _has_code_string(node: ast.AST) -> bool:
    return any(
        isinstance(c, ast.Constant)
        and isinstance(c.value, str)
        and c.value[:1].islower()
        and any(ch.isupper() for ch in c.value)
        for c in ast.walk(node)
    )
