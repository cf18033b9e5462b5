"""Dependencies point one way (issues 11 and 16): entry points -> use cases -> decisions -> adapters -> records and
helpers, and a decision never imports an adapter (nor an adapter a decision). The layers live in tools/imports.py;
this test fails on any import a layer does not allow, on a clock or I/O import in a pure layer, on any import cycle
between modules, and when docs/design.md's generated pieces or list of imports is not current."""

from __future__ import annotations

import ast
from pathlib import Path

from tools.imports import LAYERS, ROOT, backwards, cycles, graph, impure, layer_of, markdown, modules, packages, pieces

DESIGN = Path(__file__).resolve().parents[2] / "docs" / "design.md"

# Backwards imports not fixed yet. Each entry says why it stays; the test also fails when one is gone (stale).
# Upward imports tolerated for now, each with its reason: none. (The storage adapters persist the records, so the
# records are a layer below them: tools/imports.py LAYERS.) A new entry here needs a reason and a plan to remove it.
ALLOWED_BACKWARDS: dict[tuple[str, str], str] = {}

# Cycles not broken yet (sorted module lists).
ALLOWED_CYCLES: list[list[str]] = []


def test_every_module_has_a_layer() -> None:
    for module in graph():
        layer_of(module)  # raises KeyError naming the module


def test_no_import_runs_from_a_lower_layer_to_a_higher_one() -> None:
    found = backwards(graph())
    unexpected = sorted(found - set(ALLOWED_BACKWARDS))
    names = [name for name, _ in LAYERS]
    assert not unexpected, [f"{a} ({names[layer_of(a)]}) imports {b} ({names[layer_of(b)]})" for a, b in unexpected]


def test_the_allow_list_is_not_stale() -> None:
    stale = sorted(set(ALLOWED_BACKWARDS) - backwards(graph()))
    assert not stale, f"fixed, remove from ALLOWED_BACKWARDS: {stale}"


def test_no_import_cycles() -> None:
    assert cycles(graph()) == ALLOWED_CYCLES


def test_the_design_doc_lists_the_current_imports() -> None:
    text = DESIGN.read_text()
    assert markdown(graph()) in text, "docs/design.md is out of date: run `python -m tools.imports --write`"


def test_the_checker_sees_a_backwards_import_and_a_cycle() -> None:
    # The checker itself: a made-up adapter importing a use case, and a two-module cycle.
    edges = {"operations.store": {"operations.start"}, "operations.start": {"operations.store"}}
    assert backwards(edges) == {("operations.store", "operations.start")}
    assert cycles(edges) == [["operations.start", "operations.store"]]


def test_a_decision_may_not_import_an_adapter_nor_an_adapter_a_decision() -> None:
    # Purity by rule, not by convention: both directions between the middle layers are refused.
    assert backwards({"graph.lro": {"graph.client"}}) == {("graph.lro", "graph.client")}
    assert backwards({"graph.client": {"graph.answers"}}) == {("graph.client", "graph.answers")}
    assert backwards({"graph.lro": {"graph.answers", "operations.record"}}) == set()


def test_the_pure_layers_read_no_clock_and_do_no_io() -> None:
    assert impure() == {}


def test_every_package_says_its_job_and_the_design_doc_lists_the_pieces() -> None:
    for name, init in packages().items():
        assert ast.get_docstring(ast.parse(init.read_text())), f"shared/{name}/__init__.py has no docstring"
    assert pieces() in DESIGN.read_text(), "docs/design.md is out of date: run `python -m tools.imports --write`"


def test_the_entry_points_do_not_reach_into_an_adapters_client() -> None:
    # function_app.py asks the adapters (rt.store.ping(), rt.polls.ping()), never `rt.<adapter>.client`.
    tree = ast.parse((ROOT / "function_app.py").read_text())
    reached = [
        ast.unparse(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "client"
        and isinstance(node.value, ast.Attribute)
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "rt"
    ]
    assert reached == []


MAX_MODULE_LINES = 400


def test_every_module_of_the_app_is_at_most_400_lines() -> None:
    # A module past this is doing more than one job (issue 16): split it by role before it grows further.
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}, long
