"""Offline model of the Bicep templates and of what the code needs from them.

Bicep is parsed with pycep-parser (the parser checkov uses); nothing here needs Azure or the Bicep CLI.
Every `check_*` function returns a list of problems (empty = consistent), so tests can show that a mutated
template is caught.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
RESOURCES_BICEP = INFRA / "resources.bicep"
MAIN_BICEP = INFRA / "main.bicep"
SHARED = ROOT / "shared"
FUNCTION_APP = ROOT / "function_app.py"

SETTING_NAME = re.compile(r"^[A-Z][A-Z0-9_]*[A-Z0-9]$")
STORAGE_PREFIX = "AzureWebJobsStorage"

# Settings in the app's configuration that no Python code in shared/ reads, each with the reason it exists.
# Anything else in the Bicep app settings must be read by the code (or the test fails as "unused").
AZURE_ONLY_SETTINGS: dict[str, str] = {
    # The Functions host's storage connection (identity-based: __blobServiceUri, __queueServiceUri,
    # __tableServiceUri, __credential, __clientId). shared/runtime/settings.py reads the __* form through f-strings.
    "AzureWebJobsStorage__*": "host + app storage connection (identity-based)",
    # azure-identity DefaultAzureCredential/ManagedIdentityCredential reads it: which identity gets Graph tokens.
    "AZURE_CLIENT_ID": "azure-identity: the user-assigned identity",
    # The Functions host sends telemetry with these (Entra auth because local auth is off on the component).
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "Functions host telemetry",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Functions host telemetry with the identity (local auth off)",
    # The Python worker reads it: pass the host's trace context to the app's OpenTelemetry (docs/observability.md).
    "PYTHON_ENABLE_OPENTELEMETRY": "Python worker: OpenTelemetry trace context for the app's spans",
    # App Service Authentication (authsettingsV2 clientSecretSettingName) reads it, only with graphAuth=delegated.
    "MICROSOFT_PROVIDER_AUTHENTICATION_SECRET": "App Service Authentication client secret (delegated)",
}
# Settings the code reads that the deployment deliberately does not set (none today).
NOT_DEPLOYED: dict[str, str] = {
    # App Service sets it itself when App Service Authentication is on; the app only trusts caller headers then.
    "WEBSITE_AUTH_ENABLED": "set by the platform when authentication is enabled",
    # Local runs only (the console exporter); in Azure APPLICATIONINSIGHTS_CONNECTION_STRING picks Azure Monitor.
    "OTEL_TRACES_EXPORTER": "local only: OpenTelemetry console exporter (shared/observability/telemetry.py)",
}
# Settings deployed before the code that reads them is merged (issue 8 is built on several branches at once).
# While no code reads one, check_settings accepts it; once code reads it, the entry is stale and check_settings
# says so, so this list cannot keep a setting alive that nothing reads.
DEPLOYED_AHEAD_OF_CODE: dict[str, str] = {}

# Built-in role definition ids -> names (Azure built-in roles).
ROLE_NAMES: dict[str, str] = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": "Storage Blob Data Reader",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "19e7f393-937e-4f77-808e-94535e297925": "Storage Queue Data Reader",
    "8a0f0c08-91a1-4084-bc3d-661d67233fed": "Storage Queue Data Message Processor",
    "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a": "Storage Queue Data Message Sender",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "76199698-9eea-4c19-bc75-cec21354c6b6": "Storage Table Data Reader",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "17d1049b-9a84-46fb-8f53-869881c3d3ab": "Storage Account Contributor",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
}

# Queue data actions (Azure Storage docs, queues-auth-abac-attributes.md, "Azure Queue Storage actions"):
#   Peek messages -> messages/read; Put a message -> messages/add/action; "Put or update a message" ->
#   messages/write; Clear messages -> messages/delete; "Get or delete messages" -> messages/process/action.
# Queue metadata (Get Queue Metadata: length for scaling and health) is the control action queues/read.
_Q = "Microsoft.Storage/storageAccounts/queueServices/queues"
PEEK, ADD, WRITE, CLEAR, PROCESS, QUEUE_READ = (
    f"{_Q}/messages/read",
    f"{_Q}/messages/add/action",
    f"{_Q}/messages/write",
    f"{_Q}/messages/delete",
    f"{_Q}/messages/process/action",
    f"{_Q}/read",
)
# What each built-in queue role allows (Azure RBAC docs, built-in-roles/storage.md: actions + dataActions).
QUEUE_CONTRIBUTOR = "Storage Queue Data Contributor"
QUEUE_ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "Storage Queue Data Reader": frozenset({QUEUE_READ, PEEK}),
    "Storage Queue Data Message Processor": frozenset({PEEK, PROCESS}),
    "Storage Queue Data Message Sender": frozenset({ADD}),
    QUEUE_CONTRIBUTOR: frozenset({QUEUE_READ, PEEK, WRITE, CLEAR, PROCESS}),
}
# Each queue operation -> the data actions of which any one allows it. Putting a message is allowed by add/action
# and by write ("Put or update a message"); updating one (UpdateMessage: new visibility or content) only by write.
QUEUE_OPERATION_ACTIONS: dict[str, frozenset[str]] = {
    "queue.send_message": frozenset({ADD, WRITE}),
    "queue.receive_messages": frozenset({PROCESS}),
    "queue.delete_message": frozenset({PROCESS}),
    "queue.peek_messages": frozenset({PEEK}),
    "queue.get_queue_properties": frozenset({QUEUE_READ}),
    "queue.update_message": frozenset({WRITE}),
    "queue.clear_messages": frozenset({CLEAR}),
    # The queue trigger (the Functions host): receives and deletes messages; reads queue length (scaling);
    # adds a message that failed maxDequeueCount times to '<queue>-poison'; and, when a function fails, releases
    # the message with UpdateMessage (visibilityTimeout from host.json) so it comes back after that delay:
    # azure-sdk-for-net sdk/storage/Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Shared/Queues/
    # QueueProcessor.cs, ReleaseMessageAsync -> UpdateMessageAsync. Without messages/write that call is a 403
    # and the message stays invisible for the listener's 10-minute visibility.
    "trigger.queue": frozenset({PROCESS}),
    "trigger.queue.metadata": frozenset({QUEUE_READ}),
    "trigger.queue.poison": frozenset({ADD, WRITE}),
    "trigger.queue.release": frozenset({WRITE}),
}


def queue_roles_allowing(op: str) -> frozenset[str]:
    """The built-in queue roles that allow a queue operation (derived from the data actions above)."""
    actions = QUEUE_OPERATION_ACTIONS[op]
    return frozenset(role for role, allowed in QUEUE_ROLE_ACTIONS.items() if allowed & actions)


# Each storage operation the app or its host performs -> the built-in roles that allow it (any one suffices),
# and the resource type the role must be scoped to (or above).
TABLE_CONTRIBUTOR = "Storage Table Data Contributor"
OPERATION_ROLES: dict[str, frozenset[str]] = {
    **{op: queue_roles_allowing(op) for op in QUEUE_OPERATION_ACTIONS},
    "table.get_entity": frozenset({"Storage Table Data Reader", TABLE_CONTRIBUTOR}),
    "table.query_entities": frozenset({"Storage Table Data Reader", TABLE_CONTRIBUTOR}),
    "table.list_entities": frozenset({"Storage Table Data Reader", TABLE_CONTRIBUTOR}),
    "table.create_entity": frozenset({TABLE_CONTRIBUTOR}),
    "table.update_entity": frozenset({TABLE_CONTRIBUTOR}),
    "table.upsert_entity": frozenset({TABLE_CONTRIBUTOR}),
    "table.delete_entity": frozenset({TABLE_CONTRIBUTOR}),
    "table.submit_transaction": frozenset({TABLE_CONTRIBUTOR}),
    # The app's big results (shared/storage/result_blobs.py, a ContainerClient): Blob Data Contributor or Owner allow
    # read, write, list and delete of blobs (Azure RBAC docs, built-in-roles/storage.md: Storage Blob Data
    # Contributor dataActions .../blobs/read, /write, /delete; Owner: .../blobs/*).
    **{
        f"blob.{op}": frozenset({"Storage Blob Data Owner", "Storage Blob Data Contributor"})
        for op in ("upload_blob", "download_blob", "list_blobs", "delete_blob")
    },
    # The Functions host (AzureWebJobsStorage): leases, keys and state blobs; Flex reads the package blob.
    "host.blobs": frozenset({"Storage Blob Data Owner"}),
    "deployment.package": frozenset(
        {"Storage Blob Data Owner", "Storage Blob Data Contributor", "Storage Blob Data Reader"}
    ),
}
# Calls that need no role on a provisioned deployment: the template creates the queues and the table, and
# shared/runtime/worker.py only logs a warning when creating them is refused.
PROVISIONED_BY_TEMPLATE = frozenset({"queue.create_queue", "table.create_table", "blob.create_container"})
# SDK client methods that are not storage operations.
NOT_OPERATIONS = frozenset(
    {"close", "from_connection_string", "from_queue_url", "from_table_url", "from_container_url", "get_blob_client"}
)


# ---------------------------------------------------------------- parsing


@cache
def _parser() -> BicepParser:
    return BicepParser()


def parse_bicep(text: str) -> dict[str, Any]:
    """The pycep JSON form of a Bicep file (raises on a syntax error)."""
    parsed: dict[str, Any] = _parser().parse(text=text)
    return parsed


@cache
def parse_file(path: Path) -> dict[str, Any]:
    return parse_bicep(path.read_text(encoding="utf-8"))


def _unquote(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == "'" else key


def resource_body(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The resource's body, unwrapping a condition (`= if (...) {...}`)."""
    config: dict[str, Any] = resource["config"]
    if "condition" in config and isinstance(config.get("config"), dict):
        inner: dict[str, Any] = config["config"]
        return inner
    return config


def resource_condition(resource: Mapping[str, Any]) -> Any:
    config = resource["config"]
    return config.get("condition") if "condition" in config and "config" in config else None


@dataclass
class Template:
    raw: dict[str, Any]

    @property
    def resources(self) -> dict[str, Any]:
        res: dict[str, Any] = self.raw.get("resources", {})
        return res

    @property
    def variables(self) -> dict[str, Any]:
        return {name: spec.get("value") for name, spec in self.raw.get("variables", {}).items()}

    def of_type(self, rtype: str) -> dict[str, dict[str, Any]]:
        return {name: r for name, r in self.resources.items() if r["type"].lower() == rtype.lower()}

    def resolve(self, value: Any) -> Any:
        """Best-effort evaluation of simple expressions: string variables, `${var}` and `resource.name`."""
        variables = self.variables
        if isinstance(value, str):
            if value in variables and isinstance(variables[value], str):
                return variables[value]

            def sub(match: re.Match[str]) -> str:
                name = match.group(1)
                if name.endswith(".name") and name[:-5] in self.resources:  # ${someQueue.name}
                    resolved = self.resolve(resource_body(self.resources[name[:-5]]).get("name"))
                else:
                    resolved = variables.get(name)
                return resolved if isinstance(resolved, str) else match.group(0)

            return re.sub(r"\$\{(\w+(?:\.name)?)\}", sub, value)
        if isinstance(value, dict) and "operator" in value:
            op = value["operator"]
            if op.get("type") == "property_accessor":
                a, b = op["operands"]["operand_1"], op["operands"]["operand_2"]
                if b == "name" and a in self.resources:
                    return self.resolve(resource_body(self.resources[a]).get("name"))
                if a in variables and isinstance(variables[a], dict) and isinstance(b, str):
                    return variables[a].get(b)
        return value

    def app_settings(self) -> dict[str, Any]:
        configs = [
            r
            for r in self.of_type("Microsoft.Web/sites/config").values()
            if resource_body(r).get("name") == "appsettings"
        ]
        if len(configs) != 1:
            raise AssertionError(f"expected one sites/config 'appsettings' resource, found {len(configs)}")
        props = resource_body(configs[0]).get("properties", {})
        return {_unquote(k): v for k, v in props.items()}

    def names_of(self, rtype: str) -> set[str]:
        return {str(self.resolve(resource_body(r).get("name"))) for r in self.of_type(rtype).values()}

    def role_assignments(self) -> list[RoleAssignment]:
        found = []
        role_vars = self.variables.get("roleIds", {}) or {}
        for name, res in self.of_type("Microsoft.Authorization/roleAssignments").items():
            body = resource_body(res)
            props = body.get("properties", {})
            text = json.dumps(props.get("roleDefinitionId"))
            guid = next((v for k, v in role_vars.items() if f'"{k}"' in text), None)
            if guid is None:
                match = re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text)
                guid = match.group(0) if match else None
            principal = json.dumps(props.get("principalId"))
            found.append(
                RoleAssignment(
                    resource=name,
                    role=ROLE_NAMES.get(str(guid), f"unknown role {guid}"),
                    scope=str(body.get("scope", "")),
                    to_app_identity='"identity"' in principal and "principalId" in principal,
                )
            )
        return found


@dataclass(frozen=True)
class RoleAssignment:
    resource: str
    role: str
    scope: str
    to_app_identity: bool


def load_template(path: Path = RESOURCES_BICEP, text: str | None = None) -> Template:
    return Template(parse_bicep(text) if text is not None else parse_file(path))


# ---------------------------------------------------------------- what the code reads and does


def _python_files() -> list[Path]:
    return [*sorted(SHARED.rglob("*.py")), FUNCTION_APP]


def _is_env(node: ast.expr) -> bool:
    """`env`, `environ`, `os.environ` (any name ending in env/environ)."""
    if isinstance(node, ast.Name):
        return node.id.lower() in ("env", "environ", "environment")
    if isinstance(node, ast.Attribute):
        return node.attr == "environ"
    return False


def settings_read_in(source: str) -> set[str]:
    """ALL_CAPS setting names looked up in an environment mapping in one module.

    Catches `env.get("N")`, `os.environ["N"]`, `os.getenv("N")` and helpers that take the mapping and a name,
    such as `_number(env, "N", ...)` or `_flag(env, "N")`; f-strings (the AzureWebJobsStorage__* form) are not
    literals and are covered by the allowlist.
    """
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        literals: list[ast.expr] = []
        if isinstance(node, ast.Call):
            func = node.func
            is_get = (
                isinstance(func, ast.Attribute) and func.attr in ("get", "pop", "setdefault") and _is_env(func.value)
            )
            is_getenv = (isinstance(func, ast.Attribute) and func.attr == "getenv") or (
                isinstance(func, ast.Name) and func.id == "getenv"
            )
            takes_env = any(_is_env(arg) for arg in node.args)
            if is_get or is_getenv:
                literals = node.args[:1]
            elif takes_env:
                literals = list(node.args)
        elif isinstance(node, ast.Subscript) and _is_env(node.value):
            literals = [node.slice]
        for lit in literals:
            if isinstance(lit, ast.Constant) and isinstance(lit.value, str) and SETTING_NAME.match(lit.value):
                names.add(lit.value)
    return names


def binding_settings_in(source: str) -> set[str]:
    """`%NAME%` binding expressions (e.g. queue_name="%POLL_QUEUE%"): the host resolves them from settings."""
    return set(re.findall(r"""["']%([A-Za-z_][A-Za-z0-9_]*)%["']""", source))


def settings_read_by_code() -> set[str]:
    names: set[str] = set()
    for path in _python_files():
        source = path.read_text(encoding="utf-8")
        names |= settings_read_in(source)
    return names | binding_settings_in(FUNCTION_APP.read_text(encoding="utf-8"))


def storage_operations_in(source: str) -> set[str]:
    """`queue.<method>` / `table.<method>` / `blob.<method>` for every Azure SDK queue, table or blob container
    client method called in a module."""
    from azure.data.tables.aio import TableClient
    from azure.storage.blob.aio import ContainerClient
    from azure.storage.queue.aio import QueueClient

    methods = {
        "queue": _public_methods(QueueClient),
        "table": _public_methods(TableClient),
        "blob": _public_methods(ContainerClient),
    }
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            for kind, names in methods.items():
                if node.func.attr in names:
                    found.add(f"{kind}.{node.func.attr}")
    return found


def _public_methods(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n, None))} - NOT_OPERATIONS


def storage_operations_of_code() -> set[str]:
    ops: set[str] = set()
    sources = {path: path.read_text(encoding="utf-8") for path in _python_files()}
    for source in sources.values():
        ops |= storage_operations_in(source)
    app = sources[FUNCTION_APP]
    ops |= {"host.blobs", "deployment.package"}
    if "queue_trigger(" in app:
        ops |= {"trigger.queue", "trigger.queue.metadata", "trigger.queue.poison", "trigger.queue.release"}
    return ops


def queue_trigger_settings() -> set[str]:
    """Settings named by queue triggers' `%...%` queue names in function_app.py."""
    source = FUNCTION_APP.read_text(encoding="utf-8")
    return set(re.findall(r'queue_name\s*=\s*"%([A-Za-z_][A-Za-z0-9_]*)%"', source))


# ---------------------------------------------------------------- checks


def _allowlisted(name: str) -> bool:
    return name in AZURE_ONLY_SETTINGS or (
        name.startswith(f"{STORAGE_PREFIX}__") and f"{STORAGE_PREFIX}__*" in AZURE_ONLY_SETTINGS
    )


def check_settings(template: Template, read: Iterable[str]) -> list[str]:
    """Every setting the code reads is deployed, and every deployed setting is read or allowlisted."""
    deployed = set(template.app_settings())
    read = set(read)
    problems = [
        f"the code reads {n} but the function app's settings do not set it"
        for n in sorted(read - deployed - set(NOT_DEPLOYED))
        if not n.startswith(f"{STORAGE_PREFIX}__")
    ]
    problems += [
        f"app setting {n} is read by no code and is not in the allowlist"
        for n in sorted(deployed - read)
        if not _allowlisted(n) and n not in DEPLOYED_AHEAD_OF_CODE
    ]
    problems += [
        f"{n} is read by the code now: remove it from DEPLOYED_AHEAD_OF_CODE"
        for n in sorted(set(DEPLOYED_AHEAD_OF_CODE) & read)
    ]
    problems += [
        f"{n} is in DEPLOYED_AHEAD_OF_CODE but the function app's settings do not set it"
        for n in sorted(set(DEPLOYED_AHEAD_OF_CODE) - deployed)
    ]
    for required in (
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__clientId",
        "AzureWebJobsStorage__queueServiceUri",
        "AzureWebJobsStorage__tableServiceUri",
        "AzureWebJobsStorage__blobServiceUri",
    ):
        if required not in deployed:
            problems.append(f"identity-based storage needs {required}")
    if "AzureWebJobsStorage" in deployed:
        problems.append("AzureWebJobsStorage (a connection string) must not be set: identity-based only")
    return problems


def check_storage_names(template: Template) -> list[str]:
    """Queue and table names given to the app exist in the template, with the host's '-poison' twins."""
    settings = template.app_settings()
    queues = template.names_of("Microsoft.Storage/storageAccounts/queueServices/queues")
    tables = template.names_of("Microsoft.Storage/storageAccounts/tableServices/tables")
    problems = []
    for setting in ("POLL_QUEUE", "WEBHOOK_QUEUE"):
        name = template.resolve(settings.get(setting))
        if name not in queues:
            problems.append(f"{setting}={name!r} is not a queue the template creates ({sorted(queues)})")
        elif f"{name}-poison" not in queues:
            problems.append(f"the template does not create {name}-poison")
    for setting in ("OPERATIONS_TABLE", "DURATION_HISTORY_TABLE"):
        table = template.resolve(settings.get(setting))
        if table not in tables:
            problems.append(f"{setting}={table!r} is not a table the template creates ({sorted(tables)})")
    containers = template.names_of("Microsoft.Storage/storageAccounts/blobServices/containers")
    container = template.resolve(settings.get("RESULTS_CONTAINER"))
    if container not in containers:
        problems.append(
            f"RESULTS_CONTAINER={container!r} is not a container the template creates ({sorted(containers)})"
        )
    for setting in queue_trigger_settings():
        if setting not in settings:
            problems.append(f"a queue trigger binds to %{setting}% but no app setting {setting} exists")
    return problems


def check_roles(template: Template, operations: Iterable[str]) -> list[str]:
    """Every storage operation is allowed by a role assigned to the app's identity on the storage account."""
    granted = {a.role for a in template.role_assignments() if a.to_app_identity and a.scope == "storage"}
    problems = []
    for op in sorted(set(operations)):
        if op in PROVISIONED_BY_TEMPLATE:
            continue
        allowed = OPERATION_ROLES.get(op)
        if allowed is None:
            problems.append(f"storage operation {op} is not in OPERATION_ROLES: add it with the roles that allow it")
        elif not allowed & granted:
            problems.append(f"{op} needs one of {sorted(allowed)}; the identity has {sorted(granted)}")
    return problems


# Broad roles that narrower ones replace here (least privilege): never granted to the app's identity.
# (Storage Queue Data Contributor is not here: it is the only queue role with messages/write, which the host's
# release of a failed message needs.)
TOO_BROAD = frozenset(
    {"Storage Account Contributor", "Contributor", "Owner", "Key Vault Secrets Officer", "Key Vault Administrator"}
)


def check_no_excess_roles(template: Template, operations: Iterable[str]) -> list[str]:
    """Least privilege: each storage role given to the identity is needed by some operation; no broad roles."""
    ops = set(operations) - PROVISIONED_BY_TEMPLATE
    needed: set[str] = set().union(*(OPERATION_ROLES.get(op, frozenset()) for op in ops))
    problems = [
        f"role {a.role} ({a.resource}) is needed by no storage operation the code performs"
        for a in template.role_assignments()
        if a.to_app_identity and a.scope == "storage" and a.role not in needed
    ]
    problems += [
        f"role {a.role} ({a.resource}) is broader than needed"
        for a in template.role_assignments()
        if a.to_app_identity and a.role in TOO_BROAD
    ]
    # A role is redundant when every operation it is needed for is already allowed by another granted role.
    storage_roles = {
        a.role: a.resource for a in template.role_assignments() if a.to_app_identity and a.scope == "storage"
    }
    for role, resource in sorted(storage_roles.items()):
        uses = [op for op in ops if role in OPERATION_ROLES.get(op, frozenset())]
        others = set(storage_roles) - {role}
        if uses and all(OPERATION_ROLES[op] & others for op in uses):
            problems.append(f"role {role} ({resource}) is redundant: other granted roles allow all it is needed for")
    return problems


# ---------------------------------------------------------------- Flex Consumption


# Azure Functions docs, functions-app-settings.md, "Flex Consumption plan deprecations": site properties and app
# settings that "are deprecated and shouldn't be used" on Flex Consumption, with the doc's reason. Newer stamps
# reject some outright (ftpsState: ARM error 51021, microsoft/azure-pipelines-tasks#21032). Names compare
# case-insensitively (ARM property and app setting names are case-insensitive).
FLEX_DEPRECATED_SITE_PROPERTIES: dict[str, str] = {
    "ftpsState": "FTPS not supported",
    "use32BitWorkerProcess": "32-bit not supported",
    "isReserved": "Not valid",
    "IsXenon": "Not valid",
    "windowsFxVersion": "Not valid",
    "alwaysOn": "Not valid",
    "preWarmedInstanceCount": "Renamed (always ready instances in functionAppConfig.scaleAndConcurrency)",
    "functionAppScaleLimit": "Renamed as maximumInstanceCount",
    "containerSize": "Renamed as instanceMemoryMB",
    "javaVersion": "Replaced by version in properties.functionAppConfig.runtime",
    "powerShellVersion": "Replaced by version in properties.functionAppConfig.runtime",
    "netFrameworkVersion": "Replaced by version in properties.functionAppConfig.runtime",
    "LinuxFxVersion": "Replaced by properties.functionAppConfig.runtime",
}
FLEX_DEPRECATED_APP_SETTINGS: dict[str, str] = {
    "WEBSITE_NODE_DEFAULT_VERSION": "Replaced by version in properties.functionAppConfig.runtime",
    "FUNCTIONS_EXTENSION_VERSION": "App Setting will be set by the backend to the right value",
    "FUNCTIONS_WORKER_RUNTIME": "Replaced by name in properties.functionAppConfig.runtime",
    "FUNCTIONS_WORKER_RUNTIME_VERSION": "Replaced by version in properties.functionAppConfig.runtime",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY": "App Setting replaced by scale and concurrency's trigger section",
    "FUNCTIONS_WORKER_PROCESS_COUNT": "Setting not valid",
    "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED": "Setting not valid",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING": "App Setting replaced by functionAppConfig's deployment section",
    "WEBSITE_CONTENTSHARE": "App Setting replaced by functionAppConfig's deployment section",
}


def _is_flex_plan(template: Template, site: Mapping[str, Any]) -> bool:
    farm = json.dumps(site.get("properties", {}).get("serverFarmId"))
    for name, plan in template.of_type("Microsoft.Web/serverfarms").items():
        if f'"{name}"' in farm and resource_body(plan).get("sku", {}).get("name") == "FC1":
            return True
    return False


def check_flex_deprecations(template: Template) -> list[str]:
    """No site on an FC1 plan sets a property or app setting of the Flex Consumption deprecation table."""
    problems = []
    props = {k.lower(): v for k, v in FLEX_DEPRECATED_SITE_PROPERTIES.items()}
    settings = {k.lower(): v for k, v in FLEX_DEPRECATED_APP_SETTINGS.items()}
    for name, res in template.of_type("Microsoft.Web/sites").items():
        site = resource_body(res)
        if not _is_flex_plan(template, site):
            continue
        properties = site.get("properties", {})
        for where, block in (("properties", properties), ("properties.siteConfig", properties.get("siteConfig", {}))):
            for key in block if isinstance(block, dict) else {}:
                reason = props.get(_unquote(key).lower())
                if reason:
                    problems.append(f"{name}: {where}.{_unquote(key)} is deprecated on Flex Consumption ({reason})")
        for app_setting in properties.get("siteConfig", {}).get("appSettings", []) or []:
            setting = str(app_setting.get("name", "")) if isinstance(app_setting, dict) else ""
            if setting.lower() in settings:
                problems.append(
                    f"{name}: app setting {setting} is deprecated on Flex Consumption ({settings[setting.lower()]})"
                )
    for setting in template.app_settings():
        if setting.lower() in settings:
            problems.append(f"app setting {setting} is deprecated on Flex Consumption ({settings[setting.lower()]})")
    return problems


# ---------------------------------------------------------------- secrets and keys in templates


def listkeys_of_host(text: str) -> list[str]:
    """`listKeys(...)` calls on a function app's host keys (`.../host/default`) in a Bicep file's text."""
    return [m.group(0) for m in re.finditer(r"listKeys\s*\([^)]*host/default[^)]*\)", text, flags=re.I)]


def secure_params_with_defaults(parsed: Mapping[str, Any]) -> list[str]:
    """@secure() parameters with a default value other than '' (Bicep linter rule secure-parameter-default:
    "Secure parameters should not have hardcoded defaults (except for empty strings)")."""
    found = []
    for name, spec in parsed.get("parameters", {}).items():
        secure = any(d.get("type") == "secure" for d in spec.get("decorators", []))
        if secure and spec.get("default") not in (None, ""):
            found.append(name)
    return found


# ---------------------------------------------------------------- App Service Authentication


def excluded_by(path: str, entries: Iterable[str], *, wildcard: bool) -> bool:
    """Whether authsettingsV2 globalValidation.excludedPaths lets `path` through without authentication.

    The App Service docs (configure-authentication-file-based.md) give only exact examples; Microsoft's answer on
    MicrosoftDocs/azure-docs#86514 is that an entry ending in '/*' excludes everything below it. wildcard=False
    models the exact-path reading, wildcard=True the '/*' one (an exact entry still matches exactly).
    """
    for entry in entries:
        if entry == path:
            return True
        if wildcard and entry.endswith("/*") and path.startswith(entry[:-1]) and len(path) > len(entry) - 1:
            return True
    return False


def http_routes(source: str) -> list[tuple[str, bool]]:
    """(`/api/<route>` with `{param}` kept, anonymous?) for every `@app.route(...)` in function_app.py."""
    routes = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "route":
            kw = {k.arg: k.value for k in node.keywords}
            route = kw.get("route")
            if isinstance(route, ast.Constant) and isinstance(route.value, str):
                level = kw.get("auth_level")
                anonymous = isinstance(level, ast.Attribute) and level.attr == "ANONYMOUS"
                routes.append((f"/api/{route.value}", anonymous))
    return routes


# ---------------------------------------------------------------- Logic Apps workflow definitions


SAMPLE_LOGIC_APP = INFRA / "sample-logic-app.bicep"
SAMPLE_WORKFLOW = INFRA / "sample-logic-app.workflow.json"

_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def iso_duration_seconds(value: str) -> int:
    """Seconds of an ISO 8601 duration as Logic Apps `limit.timeout` takes it (PnDTnHnMnS; e.g. PT1H10M)."""
    match = _DURATION.match(value)
    if not match or value in ("P", "PT") or value.endswith("T"):
        raise ValueError(f"not an ISO 8601 duration: {value!r}")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def parameters_used(value: Any) -> set[str]:
    """Workflow parameters referenced by `parameters('<name>')` anywhere inside a definition fragment."""
    return set(re.findall(r"parameters\('([^']+)'\)", json.dumps(value)))
