"""The app's own modules, their layers and their imports, read with `ast`; and the two generated parts of
docs/design.md: the table of pieces (from each package's and module's docstring) and the list of imports.

    python -m tools.imports            # print both
    python -m tools.imports --write    # put both into docs/design.md

tests/unit/test_dependency_direction.py checks the layers, the purity of the pure layers, the cycles and that the
doc's generated parts are current.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY, USE_CASES, DECISIONS, ADAPTERS, RECORDS = (
    "entry points",
    "use cases",
    "decisions",
    "adapters",
    "records and helpers",
)

# Every module of shared/ by its dotted name under shared (the package is the concept, the module's layer its role).
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    (ENTRY, frozenset({"function_app"})),
    (
        USE_CASES,
        frozenset(
            {
                "api.responses",
                "console.api",
                "delivery.attempt",
                "delivery.fanout",
                "delivery.operation_webhooks",
                "lanes.admission",
                "lanes.slots",
                "operations.changes",
                "operations.finish",
                "operations.outcome",
                "operations.poll_step",
                "operations.purge",
                "operations.reads",
                "operations.sending",
                "operations.start",
                "operations.sweeps",
                "operations.write_ahead",
                "schedule.learning",
                "storage.poison",
                "subscriptions.api",
            }
        ),
    ),
    (
        DECISIONS,
        frozenset(
            {
                "api.identity",
                "api.openapi",
                "api.openapi_answers",
                "api.openapi_operations",
                "api.openapi_records",
                "api.openapi_requests",
                "api.openapi_routes",
                "console.durations",
                "delivery.claims",
                "delivery.events",
                "delivery.fanout_rules",
                "delivery.formats",
                "delivery.policy",
                "graph.actions.params",
                "graph.actions.rows",
                "graph.actions.session",
                "graph.actions.spec",
                "graph.actions.table",
                "graph.answers",
                "graph.lro",
                "operations.chain",
                "operations.lifecycle",
                "operations.phases",
                "operations.requests",
                "schedule.clock",
                "schedule.learned",
                "schedule.plans",
                "subscriptions.rules",
            }
        ),
    ),
    (
        ADAPTERS,
        frozenset(
            {
                "console.assets",
                "delivery.resolver",
                "delivery.sender",
                "graph.client",
                "graph.tokens",
                "lanes.store",
                "observability.telemetry",
                "operations.damaged",
                "operations.listing",
                "operations.store",
                "runtime.link_key",
                "runtime.settings",
                "runtime.worker",
                "schedule.history_store",
                "storage.aged",
                "storage.queues",
                "storage.result_blobs",
                "subscriptions.store",
            }
        ),
    ),
    # The records: values with no I/O and their state transitions and table-entity codecs (the operation, the
    # lane, the duration history, the subscription, the queue messages, the retention rule, the poll timing), and
    # the helpers every layer uses (strict JSON, problem details, a URL's origin, Retry-After, the crypto that seals and
    # signs, the SSRF rules of a callback URL).
    # The adapters persist the records, so the records sit below them; they import nothing above.
    (
        RECORDS,
        frozenset(
            {
                "api.problems",
                "crypto.keyring",
                "crypto.page_tokens",
                "crypto.sealing",
                "crypto.status_links",
                "crypto.webhook_keys",
                "delivery.targets",
                "lanes.line",
                "operations.record",
                "operations.result_size",
                "operations.retention",
                "schedule.history",
                "schedule.timing",
                "storage.messages",
                "subscriptions.record",
                "wire.origins",
                "wire.retry_after",
                "wire.strict_json",
            }
        ),
    ),
)

# What each layer may import. The order is the one way imports run (entry points -> use cases -> decisions ->
# adapters -> records), and more: a decision may not import an adapter, an adapter may not import a decision, so a
# decision's purity does not rest on convention.
MAY_IMPORT: dict[str, frozenset[str]] = {
    ENTRY: frozenset({ENTRY, USE_CASES, DECISIONS, ADAPTERS, RECORDS}),
    USE_CASES: frozenset({USE_CASES, DECISIONS, ADAPTERS, RECORDS}),
    DECISIONS: frozenset({DECISIONS, RECORDS}),
    ADAPTERS: frozenset({ADAPTERS, RECORDS}),
    RECORDS: frozenset({RECORDS}),
}

# The pure layers read no clock and do no I/O: none of these may be imported there.
PURE_LAYERS = frozenset({DECISIONS, RECORDS})
IMPURE_IMPORTS = frozenset(
    {
        "aiohttp",
        "asyncio",
        "azure",
        "http",
        "logging",
        "opentelemetry",
        "os",
        "pathlib",
        "socket",
        "subprocess",
        "time",
        "urllib.request",
        "yarl",
    }
)


def modules() -> dict[str, Path]:
    """The app's modules by dotted name under shared (`operations.start` for shared/operations/start.py), and
    `function_app`. Package `__init__` files hold only their docstring and are not modules here."""
    base = ROOT / "shared"
    found = {
        ".".join(path.relative_to(base).with_suffix("").parts): path
        for path in sorted(base.rglob("*.py"))
        if path.name != "__init__.py"
    }
    found["function_app"] = ROOT / "function_app.py"
    return found


def packages() -> dict[str, Path]:
    """The app's packages by name (`operations`), with their `__init__.py`."""
    return {path.parent.name: path for path in sorted((ROOT / "shared").glob("*/__init__.py"))}


def _name_of(path: Path) -> str:
    if path == ROOT / "function_app.py":
        return "function_app"
    return ".".join(path.relative_to(ROOT / "shared").with_suffix("").parts)


def _resolve(dotted: str, known: dict[str, Path]) -> str | None:
    """A module name of the app for an absolute import target (`shared.operations.start`), or None."""
    if dotted == "function_app":
        return dotted
    if not dotted.startswith("shared."):
        return None
    short = dotted[len("shared.") :]
    return short if short in known else None


def _absolute(node: ast.ImportFrom, path: Path) -> str:
    if not node.level:
        return node.module or ""
    package = (
        ["shared", *path.relative_to(ROOT / "shared").parent.parts] if path.is_relative_to(ROOT / "shared") else []
    )
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """The app's modules `path` imports (module level, functions and TYPE_CHECKING blocks alike)."""
    found: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                own = _resolve(alias.name, known)
                if own:
                    found.add(own)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, path)
            own = _resolve(base, known)
            if own:
                found.add(own)
                continue
            for alias in node.names:  # `from shared.operations import start`: a module of a package
                sub = _resolve(f"{base}.{alias.name}", known)
                if sub:
                    found.add(sub)
    found.discard(_name_of(path))
    return found


def outside_imports(path: Path) -> set[str]:
    """Every module a file imports that is not the app's own (`time`, `aiohttp.abc`, `azure.core`...)."""
    found: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module)
    return {name for name in found if name != "__future__" and not name.startswith("shared")}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(path, known) for name, path in known.items()}


def layer_of(module: str) -> int:
    for index, (_, members) in enumerate(LAYERS):
        if module in members:
            return index
    raise KeyError(f"{module} has no layer in tools/imports.py LAYERS")


def layer_name(module: str) -> str:
    return LAYERS[layer_of(module)][0]


def forbidden(edges: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Imports that their layers do not allow (MAY_IMPORT): upwards, or between decisions and adapters."""
    return {(a, b) for a, targets in edges.items() for b in targets if layer_name(b) not in MAY_IMPORT[layer_name(a)]}


backwards = forbidden  # the name the dependency test has always used


def impure() -> dict[str, set[str]]:
    """For each module of a pure layer, the clock and I/O modules it imports (none allowed)."""
    found: dict[str, set[str]] = {}
    for name, path in modules().items():
        if layer_name(name) not in PURE_LAYERS:
            continue
        bad = {m for m in outside_imports(path) if m in IMPURE_IMPORTS or m.split(".")[0] in IMPURE_IMPORTS}
        if bad:
            found[name] = bad
    return found


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
            targets = ", ".join(f"`{t}`" for t in sorted(edges[module])) or "nothing of the app"
            lines.append(f"- `{module}` imports {targets}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def summary(path: Path) -> str:
    """The first paragraph of a file's docstring, on one line."""
    doc = ast.get_docstring(_tree(path)) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())


def pieces() -> str:
    """The table of pieces: each package with its job, then each of its modules with its layer and its job, all
    read from their docstrings (a module's job is the first paragraph of its docstring)."""
    known = modules()
    lines = ["| package / module | layer | job |", "|---|---|---|"]
    for package, init in packages().items():
        lines.append(f"| **`shared/{package}/`** | | **{_cell(summary(init))}** |")
        for name in sorted(n for n in known if n.split(".")[0] == package):
            path = known[name].relative_to(ROOT)
            lines.append(f"| `{path}` | {layer_name(name)} | {_cell(summary(known[name]))} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


BEGIN = "<!-- generated by `python -m tools.imports`: do not edit by hand -->\n"
END = "<!-- end of generated list -->\n"
PIECES_BEGIN = "<!-- pieces: generated by `python -m tools.imports` from the docstrings: do not edit by hand -->\n"
PIECES_END = "<!-- end of pieces -->\n"


def _replace(text: str, begin: str, end: str, body: str) -> str:
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return head + begin + body + end + tail


def write_design(path: Path = ROOT / "docs" / "design.md") -> None:
    """Replace the generated parts of docs/design.md (pieces, imports) with the current ones."""
    text = _replace(path.read_text(), BEGIN, END, markdown(graph()))
    path.write_text(_replace(text, PIECES_BEGIN, PIECES_END, pieces()))


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_design()
    else:
        sys.stdout.write(pieces() + "\n" + markdown(graph()))
