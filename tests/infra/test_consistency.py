"""The Bicep deployment matches what the code reads and does (settings, storage names, roles).

Each check also runs against a deliberately broken copy of the template to show it catches the break.
"""

from __future__ import annotations

import re

import pytest

from tests.infra import model as m


@pytest.fixture(scope="module")
def source() -> str:
    return m.RESOURCES_BICEP.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def template() -> m.Template:
    return m.load_template()


@pytest.fixture(scope="module")
def read() -> set[str]:
    return m.settings_read_by_code()


@pytest.fixture(scope="module")
def operations() -> set[str]:
    return m.storage_operations_of_code()


def _without_resource(source: str, name: str) -> str:
    """The template with one top-level `resource <name> ...` block (and its leading comments) removed."""
    match = re.search(rf"^resource {name} .*?^}}\n", source, flags=re.M | re.S)
    assert match, name
    return source[: match.start()] + source[match.end() :]


# ---------------------------------------------------------------- the real template


def test_scanner_finds_the_settings_the_code_reads(read: set[str]) -> None:
    expected = {
        "GRAPH_BASE_URL",
        "WEBHOOK_SECRET",
        "WEBHOOK_ALLOW_PRIVATE_NETWORKS",
        "POLL_INITIAL_DELAY_SECONDS",
        "POLL_MAX_DELAY_SECONDS",
        "OPERATION_TIMEOUT_SECONDS",
        "POLL_MAX_TRANSIENT_FAILURES",
        "POLL_QUEUE",
        "WEBHOOK_QUEUE",
        "OPERATIONS_TABLE",
        "DURATION_HISTORY_TABLE",
    }
    assert expected <= read


def test_scanner_sees_helper_lookups() -> None:
    code = (
        "import os\n"
        "def load(env):\n"
        "    a = _number(env, 'ONE_SECONDS', 1.0, 0, 5)\n"
        "    b = _flag(env, 'TWO_FLAG')\n"
        "    c = env.get('THREE', '')\n"
        "    d = os.environ['FOUR']\n"
        "    e = os.getenv('FIVE')\n"
        "    f = helper(env, f'{prefix}__x', 'not a setting')\n"
        "    return a, b, c, d, e, f\n"
    )
    assert m.settings_read_in(code) == {"ONE_SECONDS", "TWO_FLAG", "THREE", "FOUR", "FIVE"}


def test_every_setting_is_deployed_and_every_deployed_setting_is_used(template: m.Template, read: set[str]) -> None:
    assert m.check_settings(template, read) == []


def test_settings_announced_by_the_webhook_work_are_deployed(template: m.Template) -> None:
    settings = template.app_settings()
    assert settings["WEBHOOK_ALLOWED_HOSTS"] == "webhookAllowedHosts"  # parameter, default ''
    assert settings["WEBHOOK_RETRY_WINDOW_SECONDS"] == "86400"


def test_queue_and_table_names_match(template: m.Template) -> None:
    assert m.check_storage_names(template) == []
    queues = template.names_of("Microsoft.Storage/storageAccounts/queueServices/queues")
    assert queues == {"operation-polls", "operation-polls-poison", "webhook-deliveries", "webhook-deliveries-poison"}
    assert template.names_of("Microsoft.Storage/storageAccounts/tableServices/tables") == {"operations", "durations"}


def test_names_match_the_code_defaults(template: m.Template) -> None:
    from shared.runtime.settings import load_settings

    defaults = load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    settings = template.app_settings()
    assert template.resolve(settings["POLL_QUEUE"]) == defaults.poll_queue
    assert template.resolve(settings["WEBHOOK_QUEUE"]) == defaults.webhook_queue
    assert template.resolve(settings["OPERATIONS_TABLE"]) == defaults.operations_table


def test_roles_cover_every_storage_operation(template: m.Template, operations: set[str]) -> None:
    assert {"queue.send_message", "table.get_entity", "table.update_entity", "trigger.queue"} <= operations
    assert m.check_roles(template, operations) == []


def test_roles_are_least_privilege(template: m.Template, operations: set[str]) -> None:
    assert m.check_no_excess_roles(template, operations) == []


def test_non_storage_roles(template: m.Template) -> None:
    by_role = {(a.role, a.scope, a.to_app_identity) for a in template.role_assignments()}
    assert ("Monitoring Metrics Publisher", "appInsights", True) in by_role
    assert ("Key Vault Secrets User", "keyVault", True) in by_role
    # The deployer (not the app) may rotate secrets.
    assert ("Key Vault Secrets Officer", "keyVault", False) in by_role


def test_secrets_are_key_vault_references_with_the_identity(template: m.Template) -> None:
    settings = template.app_settings()
    for name in ("WEBHOOK_SECRET", "TOKEN_SEALING_KEYS", "STATUS_LINK_KEYS"):
        assert str(settings[name]).startswith("@Microsoft.KeyVault(SecretUri=${keyVault.properties.vaultUri}secrets/")
    site = m.resource_body(template.resources["functionApp"])["properties"]
    assert "identity" in str(site["keyVaultReferenceIdentity"])


# ---------------------------------------------------------------- deliberate breaks are caught


def test_a_renamed_setting_is_caught(source: str, read: set[str]) -> None:
    broken = m.load_template(text=source.replace("    POLL_MAX_DELAY_SECONDS: '240'", "    POLL_MAX_DELAY: '240'"))
    problems = m.check_settings(broken, read)
    assert "the code reads POLL_MAX_DELAY_SECONDS but the function app's settings do not set it" in problems
    assert "app setting POLL_MAX_DELAY is read by no code and is not in the allowlist" in problems


def test_a_setting_the_code_starts_reading_is_caught(template: m.Template, read: set[str]) -> None:
    assert m.check_settings(template, read | {"NEW_KNOB_SECONDS"}) == [
        "the code reads NEW_KNOB_SECONDS but the function app's settings do not set it"
    ]


def test_a_key_based_storage_connection_is_caught(source: str, read: set[str]) -> None:
    broken = m.load_template(
        text=source.replace(
            "    AzureWebJobsStorage__credential: 'managedidentity'\n",
            "    AzureWebJobsStorage: 'DefaultEndpointsProtocol=https;AccountName=x;AccountKey=y'\n",
        )
    )
    problems = m.check_settings(broken, read)
    assert "identity-based storage needs AzureWebJobsStorage__credential" in problems
    assert any("must not be set" in p for p in problems)


def test_a_renamed_queue_is_caught(source: str) -> None:
    broken = m.load_template(
        text=source.replace("var webhookQueueName = 'webhook-deliveries'", "var webhookQueueName = 'webhook-delivery'")
    )
    # The setting follows the resource, so the names still agree; the code default no longer matches.
    assert m.check_storage_names(broken) == []
    assert broken.resolve(broken.app_settings()["WEBHOOK_QUEUE"]) == "webhook-delivery"
    broken = m.load_template(text=_without_resource(source, "webhookPoisonQueue"))
    assert m.check_storage_names(broken) == ["the template does not create webhook-deliveries-poison"]


def test_a_setting_pointing_at_a_missing_table_is_caught(source: str) -> None:
    broken = m.load_template(text=source.replace("OPERATIONS_TABLE: operationsTable.name", "OPERATIONS_TABLE: 'ops'"))
    assert m.check_storage_names(broken) == [
        "OPERATIONS_TABLE='ops' is not a table the template creates (['durations', 'operations'])"
    ]


def test_the_duration_history_table_is_created_for_its_setting(source: str) -> None:
    broken = m.load_template(
        text=_without_resource(source, "durationHistoryTable").replace(
            "DURATION_HISTORY_TABLE: durationHistoryTable.name", "DURATION_HISTORY_TABLE: 'durations'"
        )
    )
    assert m.check_storage_names(broken) == [
        "DURATION_HISTORY_TABLE='durations' is not a table the template creates (['operations'])"
    ]


def test_the_results_container_is_created_and_its_blob_calls_are_allowed(source: str, operations: set[str]) -> None:
    assert {"blob.upload_blob", "blob.download_blob", "blob.list_blobs", "blob.delete_blob"} <= operations
    broken = m.load_template(
        text=_without_resource(source, "resultsContainer").replace(
            "RESULTS_CONTAINER: resultsContainer.name", "RESULTS_CONTAINER: 'operation-results'"
        )
    )
    assert any(
        p.startswith("RESULTS_CONTAINER='operation-results' is not a container the template creates")
        for p in m.check_storage_names(broken)
    )
    broken = m.load_template(text=_without_resource(source, "roleBlobOwner"))
    assert any(p.startswith("blob.upload_blob needs one of") for p in m.check_roles(broken, operations))


def test_a_removed_role_is_caught(source: str, operations: set[str]) -> None:
    broken = m.load_template(text=_without_resource(source, "roleQueueContributor"))
    problems = m.check_roles(broken, operations)
    assert any(p.startswith("queue.send_message needs one of") for p in problems)
    assert any(p.startswith("trigger.queue.poison needs one of") for p in problems)
    assert any(p.startswith("trigger.queue.release needs one of") for p in problems)
    broken = m.load_template(text=_without_resource(source, "roleTableContributor"))
    assert any(p.startswith("table.update_entity needs one of") for p in m.check_roles(broken, operations))


def test_a_role_given_to_someone_else_does_not_count(source: str, operations: set[str]) -> None:
    block = re.search(r"^resource roleQueueContributor .*?^}\n", source, flags=re.M | re.S)
    assert block
    moved = block.group(0).replace("principalId: identity.properties.principalId", "principalId: principalId")
    broken = m.load_template(text=source.replace(block.group(0), moved))
    assert any(p.startswith("trigger.queue needs one of") for p in m.check_roles(broken, operations))


def test_a_broad_role_is_caught(source: str, operations: set[str]) -> None:
    broken = m.load_template(
        text=source.replace("roleIds.storageTableDataContributor)\n", "'17d1049b-9a84-46fb-8f53-869881c3d3ab')\n")
    )
    assert "role Storage Account Contributor (roleTableContributor) is broader than needed" in (
        m.check_no_excess_roles(broken, operations)
    )


def _with_queue_role(source: str, name: str, role_id: str) -> str:
    """The template with one more queue role assignment (`name`) to the app's identity."""
    block = re.search(r"^resource roleQueueContributor .*?^}\n", source, flags=re.M | re.S)
    assert block
    extra = (
        block.group(0)
        .replace("roleQueueContributor", name)
        .replace("roleIds.storageQueueDataContributor", f"'{role_id}'")
    )
    return source.replace(block.group(0), block.group(0) + "\n" + extra)


def test_a_redundant_role_is_caught(source: str, operations: set[str]) -> None:
    broken = m.load_template(text=_with_queue_role(source, "roleQueueReader", "19e7f393-937e-4f77-808e-94535e297925"))
    assert m.check_no_excess_roles(broken, operations) == [
        "role Storage Queue Data Reader (roleQueueReader) is redundant: other granted roles allow all it is needed for"
    ]


# ---------------------------------------------------------------- the host's release of a failed message


def test_updating_a_message_needs_messages_write() -> None:
    # Azure Storage docs, queues-auth-abac-attributes.md: "Put or update a message" is messages/write; the
    # Message Processor role has messages/read + messages/process/action, the Sender messages/add/action,
    # the Reader messages/read: of the built-in queue roles only Storage Queue Data Contributor has write.
    assert m.OPERATION_ROLES["queue.update_message"] == {m.QUEUE_CONTRIBUTOR}
    assert m.OPERATION_ROLES["trigger.queue.release"] == {m.QUEUE_CONTRIBUTOR}
    assert m.OPERATION_ROLES["queue.send_message"] == {"Storage Queue Data Message Sender", m.QUEUE_CONTRIBUTOR}
    assert m.OPERATION_ROLES["queue.receive_messages"] == {"Storage Queue Data Message Processor", m.QUEUE_CONTRIBUTOR}


def test_the_host_can_release_a_failed_message(template: m.Template, operations: set[str]) -> None:
    # A queue trigger's failed invocation is released with UpdateMessage (azure-sdk-for-net QueueProcessor.cs
    # ReleaseMessageAsync); the identity must hold a role with messages/write for it.
    assert "trigger.queue.release" in operations
    granted = {a.role for a in template.role_assignments() if a.to_app_identity and a.scope == "storage"}
    assert m.QUEUE_CONTRIBUTOR in granted
    # Reader + Message Processor + Message Sender (what the template granted before) are not enough.
    source = m.RESOURCES_BICEP.read_text(encoding="utf-8")
    narrow = _with_queue_role(
        _with_queue_role(source, "roleQueueSender", "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a"),
        "roleQueueReader",
        "19e7f393-937e-4f77-808e-94535e297925",
    )
    narrow = narrow.replace("roleIds.storageQueueDataContributor)\n", "'8a0f0c08-91a1-4084-bc3d-661d67233fed')\n")
    problems = m.check_roles(m.load_template(text=narrow), operations)
    assert problems == [
        "trigger.queue.release needs one of ['Storage Queue Data Contributor']; the identity has "
        "['Storage Blob Data Owner', 'Storage Queue Data Message Processor', "
        "'Storage Queue Data Message Sender', 'Storage Queue Data Reader', "
        "'Storage Table Data Contributor']"
    ]


# ---------------------------------------------------------------- settings deployed ahead of their code


def test_status_link_keys_are_deployed(template: m.Template, read: set[str]) -> None:
    # The app side of issue 8 reads STATUS_LINK_KEYS (shared/runtime/settings.py); deployed either way, and accepted by
    # check_settings (test above) while that code is not merged yet.
    assert "STATUS_LINK_KEYS" in template.app_settings()
    assert "STATUS_LINK_KEYS" in read or "STATUS_LINK_KEYS" in m.DEPLOYED_AHEAD_OF_CODE


def test_a_setting_deployed_ahead_of_its_code_is_tracked(
    source: str, read: set[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    read = read | set(m.DEPLOYED_AHEAD_OF_CODE)  # as if the settings pending today were read already
    monkeypatch.setattr(m, "DEPLOYED_AHEAD_OF_CODE", {"FUTURE_KNOB": "read by code that is not merged yet"})
    anchor = "    GRAPH_BASE_URL: graphBaseUrl\n"
    assert anchor in source
    ahead = m.load_template(text=source.replace(anchor, anchor + "    FUTURE_KNOB: '1'\n"))
    # Deployed and not read yet: accepted.
    assert m.check_settings(ahead, read) == []
    # Once the code reads it, the entry must go (the list cannot keep an unread setting alive for ever)...
    assert m.check_settings(ahead, read | {"FUTURE_KNOB"}) == [
        "FUTURE_KNOB is read by the code now: remove it from DEPLOYED_AHEAD_OF_CODE"
    ]
    # ...and the setting must really be deployed.
    assert m.check_settings(m.load_template(text=source), read) == [
        "FUTURE_KNOB is in DEPLOYED_AHEAD_OF_CODE but the function app's settings do not set it"
    ]


def test_an_unknown_storage_operation_is_caught(template: m.Template, operations: set[str]) -> None:
    assert m.storage_operations_in("async def f(c):\n    await c.set_queue_metadata({})\n") == {
        "queue.set_queue_metadata"
    }
    problems = m.check_roles(template, operations | {"queue.set_queue_metadata"})
    assert problems == [
        "storage operation queue.set_queue_metadata is not in OPERATION_ROLES: add it with the roles that allow it"
    ]
