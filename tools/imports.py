"""Each module's imports of the bridge's own code (shared/ and function_app.py), read with `ast`.

`python -m tools.imports` prints the Markdown list that docs/design.md carries under "Dependency direction"
(`python -m tools.imports --write` puts it there);
tests/unit/test_dependency_direction.py checks the layers, the cycles and that the doc's list is current.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Top to bottom; a module may import only from its own layer or a lower one.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("entry points", frozenset({"function_app"})),
    (
        "use cases",
        frozenset(
            {
                "operations",
                "operation_reads",
                "operation_changes",
                "poller",
                "deliverer",
                "fanout",
                "lane_flow",
                "lane_slots",
                "subscription_api",
                "purge",
                "learning",
                "redelivery",
                "poison",
                "responses",
                "start_flow",
                "console_api",
            }
        ),
    ),
    (
        "decisions",
        frozenset(
            {
                "polling",
                "schedule",
                "graph_answers",
                "lifecycle",
                "delivery_policy",
                "chain",
                "problems",
                "validation",
                "fanout_rules",
                "events",
                "subscriptions",
                "durations",
                "identity",
                "openapi",
            }
        ),
    ),
    (
        "adapters",
        frozenset(
            {
                "graph",
                "store",
                "queue",
                "lane_store",
                "history_store",
                "console_assets",
                "subscription_store",
                "results",
                "runtime",
                "settings",
                "webhooks",
                "auth",
                "outbound",
                "sealing",
                "keyring",
                "status_links",
                "telemetry",
            }
        ),
    ),
    # The records: values with no I/O and their state transitions and table-entity codecs (the operation, the
    # lane, the duration history, the subscription, the retention rule, the poll timing), and the helpers
    # every layer uses (the JSON rules, the poll message's content, a URL's origin, the webhook keys,
    # Retry-After). The adapters persist the records, so the records sit below them; they import nothing above.
    (
        "records and helpers",
        frozenset(
            {
                "records",
                "retention",
                "lanes",
                "duration_history",
                "subscription_records",
                "timing",
                "strict_json",
                "messages",
                "origins",
                "webhook_keys",
                "retry_after",
            }
        ),
    ),
)


def modules() -> dict[str, Path]:
    """The bridge's modules by short name (`operations` for shared/operations.py)."""
    found = {p.stem: p for p in sorted((ROOT / "shared").glob("*.py")) if p.stem != "__init__"}
    found["function_app"] = ROOT / "function_app.py"
    return found


def _own(name: str, known: dict[str, Path]) -> str | None:
    if name == "function_app":
        return name
    if name.startswith("shared."):
        short = name.split(".")[1]
        return short if short in known else None
    return None


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """The bridge modules `path` imports (module level, functions and TYPE_CHECKING blocks alike)."""
    tree = ast.parse(path.read_text())
    package = "shared" if path.parent.name == "shared" else ""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                own = _own(alias.name, known)
                if own:
                    found.add(own)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(filter(None, [package, base]))
            if base == "shared":
                found.update(a.name for a in node.names if a.name in known)
            else:
                own = _own(base, known)
                if own:
                    found.add(own)
    found.discard(path.stem)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(path, known) for name, path in known.items()}


def layer_of(module: str) -> int:
    for index, (_, members) in enumerate(LAYERS):
        if module in members:
            return index
    raise KeyError(f"{module} has no layer in tools/imports.py LAYERS")


def backwards(edges: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Imports from a lower layer to a higher one."""
    return {(a, b) for a, targets in edges.items() for b in targets if layer_of(b) < layer_of(a)}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def markdown(edges: dict[str, set[str]]) -> str:
    lines = []
    for title, members in LAYERS:
        lines.append(f"**{title}**")
        lines.append("")
        for module in sorted(m for m in members if m in edges):
            targets = ", ".join(f"`{t}`" for t in sorted(edges[module])) or "nothing of the bridge"
            lines.append(f"- `{module}` imports {targets}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


BEGIN = "<!-- generated by `python -m tools.imports`: do not edit by hand -->\n"
END = "<!-- end of generated list -->\n"


def write_design(path: Path = ROOT / "docs" / "design.md") -> None:
    """Replace the generated list in docs/design.md (between BEGIN and END) with the current one."""
    text = path.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(head + BEGIN + markdown(graph()) + END + tail)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_design()
    else:
        sys.stdout.write(markdown(graph()))
