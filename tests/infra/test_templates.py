"""Every Bicep file parses and passes checkov; the deployment has the shape the issue asks for."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.infra import model as m

BICEP_FILES = sorted(m.INFRA.rglob("*.bicep"))
API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")  # pinned, GA (no -preview)
# Resource types with no GA API version for what the template needs, each with the only version allowed and why.
PREVIEW_ONLY = {
    # Resource-scoped diagnostic settings with workspaceId: the only GA version (2016-09-01) is the old
    # 'service' form; 2021-05-01-preview is the current one (Microsoft's samples and AVM modules use it).
    "Microsoft.Insights/diagnosticSettings": "2021-05-01-preview",
}
SKIP_COMMENT = re.compile(r"checkov:skip=([A-Z0-9_]+):(.*)$")


@pytest.fixture(scope="module")
def template() -> m.Template:
    return m.load_template()


def body(template: m.Template, name: str) -> dict[str, Any]:
    return m.resource_body(template.resources[name])


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(m.INFRA)))
def test_bicep_parses_with_pinned_api_versions(path: Path) -> None:
    parsed = m.parse_file(path)
    assert parsed["resources"], f"{path} declares no resources"
    for name, res in parsed["resources"].items():
        allowed = PREVIEW_ONLY.get(res["type"])
        assert API_VERSION.match(res["api_version"]) or res["api_version"] == allowed, (
            f"{path}:{name} api version {res['api_version']!r}"
        )
    text = path.read_text(encoding="utf-8")
    # Plain resource declarations only: no registry modules (br:/ts:), so every property is checked here.
    assert not re.search(r"""module\s+\w+\s+'(br|ts)[:/]""", text), f"{path} uses a registry module"


def test_all_bicep_files_are_covered() -> None:
    assert {p.name for p in BICEP_FILES} >= {"main.bicep", "resources.bicep", "sample-logic-app.bicep"}


# ---------------------------------------------------------------- checkov


def run_checkov(directory: Path, out: Path) -> dict[str, Any]:
    exe = Path(sys.executable).parent / "checkov"
    command = [str(exe)] if exe.exists() else [shutil.which("checkov") or "checkov"]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_NO_OUTPUT_HEADER": "true"}
    proc = subprocess.run(  # --skip-download: no network, the built-in checks only
        [
            *command,
            "-d",
            str(directory),
            "--framework",
            "bicep",
            "--skip-download",
            "-o",
            "json",
            "--output-file-path",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    report_file = out / "results_json.json"
    assert report_file.exists(), f"checkov did not run: {proc.returncode}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    report = json.loads(report_file.read_text())
    report = report[0] if isinstance(report, list) else report
    assert isinstance(report, dict)
    report["returncode"] = proc.returncode
    return report


@pytest.fixture(scope="module")
def checkov_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_checkov(m.INFRA, tmp_path_factory.mktemp("checkov"))


def test_checkov_catches_a_weakened_template(tmp_path: Path) -> None:
    infra = tmp_path / "infra"
    shutil.copytree(m.INFRA, infra)
    resources = infra / "resources.bicep"
    text = resources.read_text(encoding="utf-8")
    text = text.replace("minimumTlsVersion: 'TLS1_2'", "minimumTlsVersion: 'TLS1_0'")
    text = text.replace("enablePurgeProtection: true", "enablePurgeProtection: false")
    resources.write_text(text, encoding="utf-8")
    report = run_checkov(infra, tmp_path / "out")
    failed = {c["check_id"] for c in report["results"].get("failed_checks", [])}
    assert {"CKV_AZURE_44", "CKV_AZURE_110"} <= failed
    assert report["returncode"] != 0


def test_checkov_passes(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['check_name']})"
        for c in checkov_report["results"].get("failed_checks", [])
    ]
    assert failed == []
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 20
    assert checkov_report["returncode"] == 0


def test_every_checkov_skip_is_named_justified_and_used(checkov_report: dict[str, Any]) -> None:
    skipped = {
        (c["check_id"], c["resource"].split(".")[-1]): c["check_result"].get("suppress_comment", "")
        for c in checkov_report["results"].get("skipped_checks", [])
    }
    for (check, resource), reason in skipped.items():
        assert len(reason.strip()) > 20, f"{check} on {resource} needs a real justification"
    in_source = set()
    for path in BICEP_FILES:
        for line in path.read_text(encoding="utf-8").splitlines():
            match = SKIP_COMMENT.search(line)
            if match:
                assert line.strip().startswith("//"), f"{path}: skips are Bicep comments: {line}"
                in_source.add(match.group(1))
    used = {check for check, _ in skipped}
    assert in_source == used, f"stale skips (no longer needed): {sorted(in_source - used)}"


# ---------------------------------------------------------------- the shape of the deployment


def test_flex_consumption_python_311(template: m.Template) -> None:
    plan = body(template, "plan")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["properties"]["reserved"] is True
    site = body(template, "functionApp")
    assert site["kind"] == "functionapp,linux"
    assert site["properties"]["httpsOnly"] is True
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": {
            "operator": {"type": "property_accessor", "operands": {"operand_1": "identity", "operand_2": "id"}}
        },
    }
    assert set(config["scaleAndConcurrency"]) == {"instanceMemoryMB", "maximumInstanceCount"}
    settings = template.app_settings()
    assert "FUNCTIONS_WORKER_RUNTIME" not in settings and "FUNCTIONS_EXTENSION_VERSION" not in settings


def test_flex_site_sets_nothing_from_the_deprecation_table(template: m.Template) -> None:
    assert m.check_flex_deprecations(template) == []


def test_a_flex_deprecated_property_or_setting_is_caught() -> None:
    source = m.RESOURCES_BICEP.read_text(encoding="utf-8")
    anchor = "      minTlsVersion: '1.2'\n"
    assert anchor in source
    added = "      ftpsState: 'Disabled'\n      AlwaysOn: false\n"
    broken = m.load_template(text=source.replace(anchor, anchor + added))
    assert m.check_flex_deprecations(broken) == [
        "functionApp: properties.siteConfig.ftpsState is deprecated on Flex Consumption (FTPS not supported)",
        "functionApp: properties.siteConfig.AlwaysOn is deprecated on Flex Consumption (Not valid)",
    ]
    anchor = "    GRAPH_BASE_URL: graphBaseUrl\n"
    broken = m.load_template(text=source.replace(anchor, anchor + "    FUNCTIONS_WORKER_RUNTIME: 'python'\n"))
    assert m.check_flex_deprecations(broken) == [
        "app setting FUNCTIONS_WORKER_RUNTIME is deprecated on Flex Consumption "
        "(Replaced by name in properties.functionAppConfig.runtime)"
    ]
    # Only FC1 sites: the same property on a site of another plan is not this table's business.
    not_flex = m.load_template(
        text=source.replace("name: 'FC1'", "name: 'EP1'").replace(
            "      minTlsVersion: '1.2'\n", "      minTlsVersion: '1.2'\n      ftpsState: 'Disabled'\n"
        )
    )
    assert m.check_flex_deprecations(not_flex) == []


def test_one_user_assigned_identity_and_no_keys(template: m.Template) -> None:
    assert list(template.of_type("Microsoft.ManagedIdentity/userAssignedIdentities")) == ["identity"]
    site = body(template, "functionApp")
    assert site["identity"]["type"] == "UserAssigned"
    props = body(template, "storage")["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    settings = template.app_settings()
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    text = m.RESOURCES_BICEP.read_text(encoding="utf-8")
    assert "listKeys(storage" not in text and "AccountKey" not in text and "InstrumentationKey=" not in text


def test_monitoring_without_local_auth(template: m.Template) -> None:
    assert body(template, "appInsights")["properties"]["DisableLocalAuth"] is True
    assert body(template, "workspace")["properties"]["features"]["disableLocalAuth"] is True
    auth = template.app_settings()["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
    assert "Authorization=AAD" in auth and "identity.properties.clientId" in auth
    host = json.loads((m.ROOT / "host.json").read_text())
    excluded = host["logging"]["applicationInsights"]["samplingSettings"]["excludedTypes"].split(";")
    assert {"Request", "Exception"} <= set(excluded)


def test_key_vault_rbac_and_purge_protection(template: m.Template) -> None:
    props = body(template, "keyVault")["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enablePurgeProtection"] is True
    secrets = template.names_of("Microsoft.KeyVault/vaults/secrets")
    assert {"webhook-secret", "token-sealing-keys", "status-link-keys"} <= secrets


def test_auth_settings_only_in_delegated_mode(template: m.Template) -> None:
    res = template.resources["authSettings"]
    assert m.resource_condition(res) == "delegated"
    condition = json.dumps(template.variables["delegated"])
    assert '"graphAuth"' in condition and '"delegated"' in condition
    auth = m.resource_body(res)
    assert auth["name"] == "authsettingsV2"
    assert auth["properties"]["globalValidation"]["requireAuthentication"] is True
    assert "/api/health" in auth["properties"]["globalValidation"]["excludedPaths"]
    # authsettingsV2 login.tokenStore: a bearer-token API needs no token store (it would keep callers' tokens).
    assert auth["properties"]["login"]["tokenStore"]["enabled"] is False
    graph_auth = template.raw["parameters"]["graphAuth"]
    assert graph_auth["default"] == "app"
    assert graph_auth["decorators"][0]["argument"] == ["app", "delegated"]


# Routes the issue adds (function_app.py on the app side): signed status URLs, anonymous at the host.
SIGNED_STATUS_ROUTES = ["/api/status/{id}"]
# The operations console's static files (docs/console.md): anonymous at the host (they hold no data and no key) but
# deliberately NOT excluded from App Service Authentication: the page lives behind the sign-in, like the API.
CONSOLE_ROUTES = {"/api/console", "/api/console/{asset}"}


def test_auth_excludes_exactly_the_anonymous_routes(template: m.Template) -> None:
    excluded = m.resource_body(template.resources["authSettings"])["properties"]["globalValidation"]["excludedPaths"]
    routes = m.http_routes(m.FUNCTION_APP.read_text(encoding="utf-8"))
    assert CONSOLE_ROUTES <= {r for r, anon in routes if anon}
    anonymous = {r for r, anon in routes if anon} - CONSOLE_ROUTES | set(SIGNED_STATUS_ROUTES)
    keyed = ({r for r, anon in routes if not anon} - anonymous) | CONSOLE_ROUTES
    assert {"/api/health", "/api/openapi.json"} <= anonymous and "/api/operations/{id}" in keyed
    sample = {"{id}": "0f9a3c2e-5d1b-4c8e-9a7f-1b2c3d4e5f60", "{key}": "k-1", "{asset}": "app.js"}

    def concrete(route: str) -> str:
        for param, value in sample.items():
            route = route.replace(param, value)
        return route

    # Under the '/*' reading (MicrosoftDocs/azure-docs#86514) every anonymous route is reachable without a token...
    for route in sorted(anonymous):
        assert m.excluded_by(concrete(route), excluded, wildcard=True), route
    # ...and under either reading no keyed route is: an exclusion never opens more than the anonymous routes.
    for route in sorted(keyed):
        for wildcard in (False, True):
            assert not m.excluded_by(concrete(route), excluded, wildcard=wildcard), (route, wildcard)
    # The model itself: exact entries match exactly, '/*' only below its folder.
    assert m.excluded_by("/api/health", ["/api/health"], wildcard=False)
    assert not m.excluded_by("/api/status/x", ["/api/status/*"], wildcard=False)
    assert not m.excluded_by("/api/status", ["/api/status/*"], wildcard=True)
    assert not m.excluded_by("/api/statusx/y", ["/api/status/*"], wildcard=True)


def _alert_queries(template: m.Template) -> dict[str, str]:
    rules = {name: m.resource_body(r) for name, r in template.of_type("Microsoft.Insights/scheduledQueryRules").items()}
    return {name: rule["properties"]["criteria"]["allOf"][0]["query"] for name, rule in rules.items()}


# Application Insights tables and the telemetry type sampling sees them as (Azure Monitor docs, sampling.md:
# "Request, Dependency, Exception, Trace, Event, PageView" are sampled unless excluded; metrics never are). Any
# other table (e.g. a resource log such as StorageQueueLogs) is not subject to Application Insights sampling.
SAMPLED_TYPES = {
    "requests": "Request",
    "dependencies": "Dependency",
    "exceptions": "Exception",
    "traces": "Trace",
    "customEvents": "Event",
    "pageViews": "PageView",
}


def sampled_tables() -> set[str]:
    host = json.loads((m.ROOT / "host.json").read_text())
    sampling = host["logging"]["applicationInsights"]["samplingSettings"]
    if not sampling.get("isEnabled", True):
        return set()
    excluded = set(filter(None, sampling.get("excludedTypes", "").split(";")))
    return {table for table, kind in SAMPLED_TYPES.items() if kind not in excluded}


def test_no_alert_reads_a_table_that_sampling_thins(template: m.Template) -> None:
    assert "traces" in sampled_tables() and "requests" not in sampled_tables()  # host.json as it is
    for name, query in _alert_queries(template).items():
        table = query.split("|")[0].strip()
        assert table not in sampled_tables(), f"{name} reads {table}, which Application Insights sampling can drop"


def test_poison_alert_counts_messages_put_in_the_poison_queues(template: m.Template) -> None:
    query = template.resolve(_alert_queries(template)["poisonAlert"])
    # Azure Monitor tables reference, StorageQueueLogs: one row per queue request (OperationName, StatusText,
    # ObjectKey, Uri); the host moves a message with PutMessage into '<queue>-poison'.
    assert query.startswith("StorageQueueLogs ")
    assert 'OperationName == "PutMessage"' in query and 'StatusText == "Success"' in query
    for poison in ("operation-polls-poison", "webhook-deliveries-poison"):
        assert f'"/{poison}"' in query
    assert '"/operation-polls"' not in query  # the live queue's own puts (every poll) do not count
    rule = body(template, "poisonAlert")
    # The table appears only with its first row, after the deployment: ARM would reject the rule's query as
    # referring to an unknown table (mspnp/aks-baseline-multi-region#94), so validation is skipped.
    assert rule["properties"]["skipQueryValidation"] is True
    assert json.dumps(rule["properties"]["scopes"]) == json.dumps(
        [{"operator": {"type": "property_accessor", "operands": {"operand_1": "workspace", "operand_2": "id"}}}]
    )
    # The rows exist only if the queue service sends StorageWrite (PutMessage is a write) to that workspace.
    settings = [m.resource_body(r) for r in template.of_type("Microsoft.Insights/diagnosticSettings").values()]
    to_workspace = [
        d
        for d in settings
        if d.get("scope") == "queueService" and "workspace" in json.dumps(d["properties"]["workspaceId"])
    ]
    assert to_workspace, "no diagnostic setting sends the queue service's logs to the workspace"
    categories = {log["category"] for d in to_workspace for log in d["properties"]["logs"] if log["enabled"]}
    assert "StorageWrite" in categories


def test_failure_rate_alert(template: m.Template) -> None:
    assert "success == false" in _alert_queries(template)["failureRateAlert"]


def test_the_main_deployment_lists_no_host_keys() -> None:
    # listKeys(.../host/default) needs a running host; during the first provision there is no code yet and it
    # fails with "ServiceUnavailable from host runtime" (Azure/azure-functions-host#5722, #6568).
    for path in (m.MAIN_BICEP, m.RESOURCES_BICEP):
        assert m.listkeys_of_host(path.read_text(encoding="utf-8")) == [], path.name
        assert not m.parse_file(path).get("modules", {}).keys() - {"resources"}, f"{path.name} deploys a module"
    assert m.listkeys_of_host("x: listKeys('${functionApp.id}/host/default', '2024-04-01').functionKeys.default")


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(m.INFRA)))
def test_secure_parameters_have_no_default_values(path: Path) -> None:
    # Bicep linter rule secure-parameter-default: no hard-coded default for a @secure() parameter (empty allowed).
    assert m.secure_params_with_defaults(m.parse_file(path)) == []


def test_a_secure_parameter_with_a_default_is_caught() -> None:
    parsed = m.parse_bicep(
        "@secure()\nparam bridgeKey string = 'abc'\n@secure()\nparam none string = ''\n"
        "param plain string = 'x'\nresource r 'A.B/c@2020-01-01' = {\n  name: 'n'\n}\n"
    )
    assert m.secure_params_with_defaults(parsed) == ["bridgeKey"]


def workflow_definition() -> dict[str, Any]:
    definition: dict[str, Any] = json.loads(m.SAMPLE_WORKFLOW.read_text(encoding="utf-8"))
    return definition


def test_sample_logic_app_is_a_separate_deployment_loading_the_workflow_json() -> None:
    logic = m.parse_file(m.SAMPLE_LOGIC_APP)
    assert logic["parameters"]["bridgeKey"]["decorators"][0]["type"] == "secure"
    assert logic["parameters"]["bridgeKey"].get("default") is None
    workflow = m.resource_body(logic["resources"]["workflow"])
    loaded = workflow["properties"]["definition"]["function"]
    assert loaded["type"] == "load_json_content"
    assert (m.SAMPLE_LOGIC_APP.parent / loaded["parameters"]["file_path"]).resolve() == m.SAMPLE_WORKFLOW.resolve()
    # The workflow's parameter values come from the deployment's parameters (the key from the @secure() one).
    assert workflow["properties"]["parameters"] == {
        "bridgeUrl": {"value": "bridgeUrl"},
        "bridgeKey": {"value": "bridgeKey"},
    }


def test_sample_workflow_parameters() -> None:
    params = workflow_definition()["parameters"]
    assert params["bridgeUrl"]["type"] == "String"
    # Logic Apps docs, create-parameters-workflows.md: a securestring parameter's default value is stored in plain
    # text, so the key's parameter has none; its value comes from the deployment.
    assert params["bridgeKey"]["type"] == "SecureString"
    assert "defaultValue" not in params["bridgeKey"]
    assert all(
        "defaultValue" not in p for p in params.values() if p["type"].lower() in ("securestring", "secureobject")
    )


def test_sample_workflow_http_action() -> None:
    definition = workflow_definition()
    assert definition["$schema"].endswith("/2016-06-01/workflowdefinition.json#")
    assert set(definition["triggers"]) == {"manual"}
    assert set(definition["actions"]) == {"Run_Excel_operation", "Fail_unless_succeeded"}  # stable names
    assert set(definition["actions"]["Fail_unless_succeeded"]["actions"]) == {"Terminate_failed"}
    action = definition["actions"]["Run_Excel_operation"]
    # logic-apps-workflow-actions-triggers.md: the asynchronous pattern is on unless DisableAsyncPattern is set.
    assert action["type"] == "Http" and "DisableAsyncPattern" not in action.get("operationOptions", "")
    inputs = action["inputs"]
    assert inputs["method"] == "POST" and inputs["uri"] == "@{parameters('bridgeUrl')}/operations"
    # Functions take a key as ?code= or x-functions-key (function-keys-how-to.md); the app supports the header.
    assert inputs["headers"]["x-functions-key"] == "@{parameters('bridgeKey')}"
    assert "code=" not in inputs["uri"]
    # One operation per run: a retried POST (the engine retries 408/429/5xx) carries the same key.
    assert inputs["headers"]["Idempotency-Key"] == "@{workflow()?['run']?['name']}"


def test_sample_workflow_hides_the_key_from_run_history() -> None:
    # logic-apps-securing-a-logic-app.md: runtimeConfiguration.secureData.properties ["inputs","outputs"] hides an
    # action's inputs/outputs in run history; otherwise only Authorization headers are hidden.
    def actions(block: dict[str, Any]) -> dict[str, Any]:
        found = dict(block)
        for spec in block.values():
            found |= actions(spec.get("actions", {}))
            found |= actions(spec.get("else", {}).get("actions", {}))
        return found

    with_key = {
        name: spec
        for name, spec in actions(workflow_definition()["actions"]).items()
        if "bridgeKey" in m.parameters_used(spec.get("inputs"))
    }
    assert set(with_key) == {"Run_Excel_operation"}
    for name, spec in with_key.items():
        secure = spec.get("runtimeConfiguration", {}).get("secureData", {}).get("properties", [])
        assert {"inputs", "outputs"} <= set(secure), name


def test_sample_workflow_timeout_outlasts_the_operation(template: m.Template) -> None:
    # error-exception-handling.md / workflow actions: limit.timeout bounds the whole asynchronous wait; it must
    # outlast the bridge's own OPERATION_TIMEOUT_SECONDS plus the longest gap between two polls.
    settings = template.app_settings()
    longest = int(settings["OPERATION_TIMEOUT_SECONDS"]) + int(settings["POLL_MAX_DELAY_SECONDS"])
    timeout = workflow_definition()["actions"]["Run_Excel_operation"]["limit"]["timeout"]
    assert m.iso_duration_seconds(timeout) > longest
    assert m.iso_duration_seconds("PT1H") < longest  # the old timeout did not
    assert m.iso_duration_seconds("P1DT2H3M4S") == 93784
    with pytest.raises(ValueError):
        m.iso_duration_seconds("PT")


# ---------------------------------------------------------------- azd


def test_azure_yaml() -> None:
    import yaml

    doc = yaml.safe_load((m.ROOT / "azure.yaml").read_text())
    assert set(doc) <= {"name", "metadata", "infra", "services", "hooks", "pipeline", "state", "resourceGroup"}
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", doc["name"])
    assert doc["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    assert (m.ROOT / doc["infra"]["path"] / f"{doc['infra']['module']}.bicep").exists()
    assert list(doc["services"]) == ["api"]
    api = doc["services"]["api"]
    assert api == {"project": ".", "language": "python", "host": "function"}
    assert (m.ROOT / api["project"] / "function_app.py").exists()
    for hook in doc["hooks"].values():
        for platform in ("posix", "windows"):
            spec = hook[platform]
            assert spec["shell"] in ("sh", "pwsh")
            assert (m.ROOT / spec["run"]).exists()
    assert set(doc["hooks"]) == {"preprovision", "postdeploy"}
    for hook in doc["hooks"].values():
        assert os.access(m.ROOT / hook["posix"]["run"], os.X_OK)
    # azd finds the function app by this tag.
    site = m.resource_body(m.load_template().resources["functionApp"])
    assert '"\'azd-service-name\'": "api"' in json.dumps(site["tags"])


def test_parameters_file_matches_main_bicep() -> None:
    params = json.loads((m.INFRA / "main.parameters.json").read_text())
    assert params["$schema"].endswith("deploymentParameters.json#")
    assert params["contentVersion"] == "1.0.0.0"
    declared = m.parse_file(m.MAIN_BICEP)["parameters"]
    given = params["parameters"]
    assert set(given) <= set(declared), f"unknown parameters: {set(given) - set(declared)}"
    required = {name for name, spec in declared.items() if spec.get("default") is None}  # pycep: None = none
    assert required <= set(given), f"required parameters without a value: {required - set(given)}"
    values = {name: spec["value"] for name, spec in given.items()}
    assert values["environmentName"] == "${AZURE_ENV_NAME}"
    assert values["location"] == "${AZURE_LOCATION}"
    assert values["principalId"] == "${AZURE_PRINCIPAL_ID}"
    for name, value in values.items():  # azd substitutions, or plain literals (e.g. deploySampleLogicApp: true)
        assert isinstance(value, (bool, int)) or re.fullmatch(r"\$\{[A-Z_]+(=[^}]*)?\}", str(value)), (name, value)
    # Secrets come from the environment (the preprovision hook), never from the file.
    for name, spec in declared.items():
        if any(d["type"] == "secure" for d in spec["decorators"]) and name in values:
            assert values[name].startswith("${")
    # Resources' parameters are all passed by main.bicep.
    module = m.parse_file(m.MAIN_BICEP)["modules"]["resources"]
    inner = m.parse_file(m.RESOURCES_BICEP)["parameters"]
    passed = set(module["config"]["params"])
    assert {n for n, s in inner.items() if s.get("default") is None} <= passed
    assert passed <= set(inner)


def test_outputs_tell_the_user_how_to_call_the_api() -> None:
    outputs = m.parse_file(m.MAIN_BICEP)["outputs"]
    expected = {"FUNCTION_URL", "FETCH_FUNCTION_KEY", "HEALTH_URL", "OPENAPI_URL", "AZURE_FUNCTION_APP_NAME"}
    assert expected <= set(outputs)
    assert "az functionapp keys list" in outputs["FETCH_FUNCTION_KEY"]["value"]


# ---------------------------------------------------------------- Python version floor


def test_python_floor_is_311_and_covers_the_flex_runtime(template: m.Template) -> None:
    import tomllib

    from packaging.specifiers import SpecifierSet

    # The code needs 3.11 (asyncio.timeout, datetime.UTC); azure-functions 1.x stops at 3.12.
    spec = SpecifierSet(tomllib.loads((m.ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
    assert [v for v in ("3.10", "3.11", "3.12", "3.13") if v in spec] == ["3.11", "3.12"]
    runtime = body(template, "functionApp")["properties"]["functionAppConfig"]["runtime"]
    assert runtime["version"] in spec


def _makefile_version_check() -> str:
    lines = [line for line in (m.ROOT / "Makefile").read_text().splitlines() if "sys.version_info" in line]
    assert len(lines) == 1, lines
    match = re.search(r"-c '(.*)'$", lines[0].strip())
    assert match, lines[0]
    return match.group(1)


@pytest.mark.parametrize(
    ("version", "accepted"), [((3, 10), False), ((3, 11), True), ((3, 12), True), ((3, 13), False)]
)
def test_makefile_checks_the_python_version(version: tuple[int, int], accepted: bool) -> None:
    code = f"import sys; sys.version_info = {(*version, 0)!r}\n" + _makefile_version_check()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    assert (proc.returncode == 0) is accepted, proc.stderr
    if not accepted:
        assert "3.11 or 3.12 is needed" in proc.stderr and f"found {version[0]}.{version[1]}" in proc.stderr
