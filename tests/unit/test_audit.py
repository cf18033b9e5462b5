"""`make audit` fails loudly when pip-audit could not check: tools.audit.judge."""

from __future__ import annotations

import json

from tools.audit import judge


def report(*dependencies: dict[str, object]) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


def test_unreachable_database_is_a_failure_not_a_clean_bill():
    # What pip-audit reports here (PyPI's JSON API is not reachable): every dependency skipped, exit 0.
    out = report(
        {"name": "aiohttp", "skip_reason": "Dependency not found on PyPI and could not be audited"},
        {"name": "yarl", "skip_reason": "Dependency not found on PyPI and could not be audited"},
    )
    verdict = judge(0, out, "")
    assert verdict.code == 2 and "NOT audited" in verdict.message and "2 of 2" in verdict.message


def test_one_skipped_dependency_is_enough_to_fail():
    out = report({"name": "aiohttp", "version": "3.14.5", "vulns": []}, {"name": "yarl", "skip_reason": "timeout"})
    assert judge(0, out, "").code == 2


def test_no_report_at_all_is_a_failure():
    verdict = judge(1, "", "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api.osv.dev')")
    assert verdict.code == 2 and "api.osv.dev" in verdict.message
    assert judge(0, "No known vulnerabilities found", "").code == 2
    assert judge(0, report(), "").code == 2  # nothing audited is not "clean"


def test_vulnerabilities_are_listed():
    out = report({"name": "aiohttp", "version": "3.9.0", "vulns": [{"id": "GHSA-xxxx", "fix_versions": ["3.9.2"]}]})
    verdict = judge(1, out, "")
    assert verdict.code == 1 and "aiohttp 3.9.0: GHSA-xxxx" in verdict.message


def test_every_dependency_audited_and_clean_passes():
    out = report(
        {"name": "aiohttp", "version": "3.14.5", "vulns": []}, {"name": "yarl", "version": "1.25.1", "vulns": []}
    )
    assert judge(0, out, "").code == 0
