"""`make audit`: pip-audit over the locked runtime dependencies, failing loudly when it could not check.

pip-audit asks a vulnerability service (PyPI's JSON API by default, or OSV) about each pinned dependency.
When the service cannot answer for a dependency (unreachable, or a mirror that has no JSON API, where every
lookup is a 404), pip-audit skips it, still prints "No known vulnerabilities found" and exits 0. A skipped
dependency was not audited, so here it is a failure, as is any error from pip-audit itself.
"""

from __future__ import annotations

import json
import subprocess  # nosec B404: runs pip-audit from this venv, with fixed arguments
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PIP_AUDIT = Path(sys.executable).with_name("pip-audit")


@dataclass(frozen=True)
class Verdict:
    code: int  # 0 audited and clean, 1 vulnerabilities, 2 could not audit
    message: str


def judge(returncode: int, stdout: str, stderr: str) -> Verdict:
    """What pip-audit's JSON report (`-f json`) says, refusing to call anything unaudited clean. Pure."""
    try:
        report: Any = json.loads(stdout) if stdout.strip() else None
    except ValueError:
        report = None
    if not isinstance(report, dict) or not isinstance(report.get("dependencies"), list):
        tail = "\n".join(stderr.strip().splitlines()[-3:])
        return Verdict(
            2,
            f"AUDIT FAILED: pip-audit gave no report (exit {returncode}); its vulnerability "
            f"database is probably unreachable. Nothing was audited.\n{tail}",
        )
    dependencies = [d for d in report["dependencies"] if isinstance(d, dict)]
    skipped = [d for d in dependencies if d.get("skip_reason")]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    lines = [
        f"  {d.get('name')} {d.get('version', '')}: "
        + ", ".join(str(v.get("id")) for v in d["vulns"] if isinstance(v, dict))
        for d in vulnerable
    ]
    if vulnerable:
        return Verdict(
            1, f"AUDIT FAILED: {len(vulnerable)} dependencies have known vulnerabilities:\n" + "\n".join(lines)
        )
    if skipped or not dependencies:
        reasons = sorted({str(d.get("skip_reason")) for d in skipped})[:3]
        return Verdict(
            2,
            f"AUDIT FAILED: the vulnerability database could not be reached for {len(skipped)} of "
            f"{len(dependencies)} dependencies, so they were NOT audited (pip-audit alone would say "
            "'No known vulnerabilities found'). First reasons:\n  " + "\n  ".join(reasons),
        )
    if returncode != 0:
        return Verdict(2, f"AUDIT FAILED: pip-audit exited {returncode}: {stderr.strip()[-300:]}")
    return Verdict(0, f"audit: {len(dependencies)} locked dependencies checked, no known vulnerabilities")


def main(argv: list[str]) -> int:
    requirements = argv[0] if argv else "requirements.txt"
    args = [
        str(PIP_AUDIT),
        "-r",
        requirements,
        "--require-hashes",
        "--disable-pip",
        "--progress-spinner",
        "off",
        "-f",
        "json",
        *argv[1:],
    ]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)  # nosec B603
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"AUDIT FAILED: could not run pip-audit: {exc}", file=sys.stderr)
        return 2
    verdict = judge(done.returncode, done.stdout, done.stderr)
    print(verdict.message, file=sys.stderr if verdict.code else sys.stdout)
    return verdict.code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
