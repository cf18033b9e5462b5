"""The Azure Monitor workbook (infra/workbook.json, deployed by infra/resources.bicep) charts exactly the metrics
the app emits: the names come from the one tuple the code makes its instruments from (shared/observability/telemetry.py
METRIC_NAMES), so a metric added, renamed or dropped on either side fails here.

Workbook format followed: the gallery template schema (Notebook/1.0, items of type 1 text, 3 KQL query, 9
parameters; KqlItem/1.0 `query`, `resourceType`, `visualization`), as in
https://github.com/microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json. Application
Insights stores OpenTelemetry metrics in `customMetrics` (name, valueSum, valueCount, valueMax, customDimensions).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from shared.observability.telemetry import METRIC_NAMES, METRICS

from . import model as m

WORKBOOK = m.INFRA / "workbook.json"
METRIC_IN_QUERY = re.compile(r'name\s*==\s*"([^"]+)"')


def load() -> dict[str, Any]:
    data = json.loads(WORKBOOK.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def queries(workbook: dict[str, Any]) -> list[dict[str, Any]]:
    return [item["content"] for item in workbook["items"] if item["type"] == 3]


def charted(workbook: dict[str, Any]) -> list[str]:
    return [name for content in queries(workbook) for name in METRIC_IN_QUERY.findall(content["query"])]


def problems(workbook: dict[str, Any]) -> list[str]:
    """What is wrong with a workbook against the app's metrics (empty: consistent)."""
    found = []
    names = charted(workbook)
    for name in sorted(set(names) - set(METRIC_NAMES)):
        found.append(f"charts {name}, which the app does not emit")
    for name in sorted(set(METRIC_NAMES) - set(names)):
        found.append(f"does not chart {name}")
    for content in queries(workbook):
        if "customMetrics" not in content["query"] or not METRIC_IN_QUERY.search(content["query"]):
            found.append(f"query {content.get('title')!r} reads no bridge metric")
        if content.get("resourceType") != "microsoft.insights/components":
            found.append(f"query {content.get('title')!r} is not an Application Insights query")
    return found


def test_the_workbook_parses_as_a_workbook() -> None:
    workbook = load()
    assert workbook["version"] == "Notebook/1.0"
    assert all(item["type"] in (1, 3, 9) for item in workbook["items"])
    for content in queries(workbook):
        assert content["version"] == "KqlItem/1.0" and content["title"]
        assert content["visualization"] in ("timechart", "barchart", "table")
        assert content["timeContextFromParameter"] == "TimeRange"
    [parameters] = [item["content"] for item in workbook["items"] if item["type"] == 9]
    assert [p["name"] for p in parameters["parameters"]] == ["TimeRange"]


def test_the_workbook_charts_exactly_the_metrics_the_app_emits() -> None:
    assert problems(load()) == []
    assert all(name.startswith("bridge.") for name in METRIC_NAMES)


def test_histograms_are_read_as_sums_and_counts() -> None:
    """customMetrics holds a histogram per interval as valueSum/valueCount/valueMax: a mean is their ratio."""
    kinds = {spec.name: spec.kind for spec in METRICS}
    for content in queries(load()):
        for name in METRIC_IN_QUERY.findall(content["query"]):
            if kinds[name] == "histogram":
                assert "sum(valueSum) / sum(valueCount)" in content["query"], content["title"]
            if kinds[name] == "counter":
                assert "sum(valueSum)" in content["query"], content["title"]


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda q: q.replace('"bridge.lane.wait"', '"bridge.lane.waits"'), "charts bridge.lane.waits"),
        (
            lambda q: q.replace('"bridge.queue.poison"', '"bridge.graph.responses"'),
            "does not chart bridge.queue.poison",
        ),
    ],
)
def test_a_renamed_or_missing_metric_is_caught(mutate: Any, expected: str) -> None:
    workbook = load()
    for content in queries(workbook):
        content["query"] = mutate(content["query"])
    assert any(problem.startswith(expected) for problem in problems(workbook)), problems(workbook)


def test_the_workbook_is_deployed_linked_to_application_insights() -> None:
    template = m.load_template()
    [workbook] = template.of_type("Microsoft.Insights/workbooks").values()
    body = m.resource_body(workbook)
    properties = body["properties"]
    assert body["kind"] == "shared" and properties["category"] == "workbook"
    assert properties["serializedData"]["function"]["type"] == "load_text_content"
    assert properties["serializedData"]["function"]["parameters"]["file_path"] == WORKBOOK.name
    assert properties["sourceId"]["operator"]["operands"] == {"operand_1": "appInsights", "operand_2": "id"}
    assert template.of_type("Microsoft.Insights/components").keys() == {"appInsights"}
    assert template.app_settings()["PYTHON_ENABLE_OPENTELEMETRY"] == "true"
