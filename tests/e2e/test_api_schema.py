"""Property-based checks of the running API against its own OpenAPI document (schemathesis).

A devhost serves the app (keys not enforced, like `make run`); schemathesis reads GET /api/openapi.json and
sends generated requests, valid and invalid, to every operation, then checks each answer: never a 5xx, the
status, content type, headers and body as documented, invalid input refused (issue 9: hostile input made
5xx answers that nothing documented). Bounded for `make test` (FUZZ_EXAMPLES per operation, a time budget,
a fixed seed); `make fuzz` runs the same test with more examples and prints the figures.

Checks left out, because they do not apply to this API:
- ignored_auth: the devhost does not enforce function keys (the Functions host does; that is not the app);
- use_after_free: DELETE /operations/{id} cancels; the record stays readable (docs/api.md), by design.

positive_data_acceptance runs: a schema-valid request refused fails the run unless its kind is one no schema can
state (tests/e2e/schemathesis_hooks.py CANNOT_SAY, docs/testing.md); those are counted and printed by kind.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from shared.api.openapi import build_spec

from .harness import BridgeFactory

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))  # per operation and phase; make fuzz raises it
SECONDS = os.environ.get("FUZZ_SECONDS")  # optional: keep fuzzing until this budget is spent (make fuzz)
SEED = 20261201
NOT_APPLICABLE = ["ignored_auth", "use_after_free"]


def test_the_api_keeps_its_openapi_contract(make_bridge: BridgeFactory, tmp_path: Path) -> None:
    bridge = make_bridge("schema")
    args = [
        str(SCHEMATHESIS),
        "run",
        f"{bridge.api}/openapi.json",
        "--checks",
        "all",
        "--exclude-checks",
        ",".join(NOT_APPLICABLE),
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        # one worker: with two, CPython 3.11's ast.parse (in hypothesis) raises "AST constructor recursion
        # depth mismatch" from a worker thread, an error of the tool, not a finding about the API
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
        # a slow answer is still a finding, but a shared 2-core CI machine under load took 10.8 s once
        # for a cheap 409: the bound is for hangs, not for speed (speed is measured in bench/)
        "--max-response-time",
        "30",
    ]
    if SECONDS:
        args += ["--max-time", SECONDS]  # schemathesis: "fuzzing and stateful testing repeat until it is spent"
    refusals = tmp_path / "refusals.jsonl"
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_hooks",
        "PYTHONPATH": str(ROOT),
        "FUZZ_REFUSALS": str(refusals),
    }
    limit = float(SECONDS or 0) + 60 + EXAMPLES * 6  # a hung run fails instead of stalling make test
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=limit, check=False)
    output = done.stdout + done.stderr
    summary = output[output.rfind("SUMMARY") :] if "SUMMARY" in output else output[-3000:]
    print(f"\nschemathesis, {EXAMPLES} examples per operation, seed {SEED}:\n{summary}")
    print(refusal_table(refusals))
    assert done.returncode == 0, output[-20000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", output)
    assert generated, summary
    # it really ran, and all passed (operations with few parameters run out of new cases before EXAMPLES)
    operations = sum(len(item) for item in build_spec()["paths"].values())
    assert int(generated.group(1)) == int(generated.group(2)) >= operations * min(EXAMPLES, 30), summary
    selected = re.search(r"Selected: (\d+)/(\d+)", summary)
    tested = re.search(r"Tested: (\d+)", summary)
    assert selected and tested, summary
    # every operation schemathesis loaded was tested; it loads all of the document's but one (it has always
    # counted one fewer than the document's operations here: 9 of 10, 13 of 14)
    assert int(tested.group(1)) == int(selected.group(1)) == int(selected.group(2)) >= operations - 1, summary


def refusal_table(path: Path) -> str:
    """Schema-valid requests refused, by kind: explained ones (CANNOT_SAY) and any others."""
    counts: Counter[tuple[str, int, bool]] = Counter()
    for line in path.read_text().splitlines() if path.exists() else []:
        row = json.loads(line)
        counts[(" ".join(row["kind"]), row["status"], row["explained"])] += 1
    lines = [f"schema-valid requests refused: {sum(counts.values())}"]
    for (kind, status, explained), n in counts.most_common():
        lines.append(f"  {n:6d}  {status}  {kind}{'' if explained else '  (NOT EXPLAINED)'}")
    return "\n".join(lines)
