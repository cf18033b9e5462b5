"""Module-scoped fixtures for the devhost tests: a sample v2 app and devhost serving it as a process, on the
session's Azurite (tests/conftest.py). The helpers are in devhost_testlib.py beside this file."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from devhost.services import AzuritePorts, Service
from tests.devhost.devhost_testlib import SAMPLE_APP, SampleApp, start_devhost


@pytest.fixture(scope="module")
def sample_app(tmp_path_factory: pytest.TempPathFactory, azurite: AzuritePorts) -> SampleApp:
    app_dir = tmp_path_factory.mktemp("sample_app")
    record_dir = app_dir / "records"
    (app_dir / "function_app.py").write_text(SAMPLE_APP)
    host_json = {
        "version": "2.0",
        "extensions": {
            "http": {"routePrefix": "api"},
            "queues": {
                "batchSize": 4,
                "newBatchThreshold": 2,
                "maxDequeueCount": 5,
                "visibilityTimeout": "00:00:00",
                "maxPollingInterval": "00:00:00.5",
                "messageEncoding": "base64",
            },
        },
    }
    (app_dir / "host.json").write_text(json.dumps(host_json))
    local_settings = {
        "IsEncrypted": False,
        "Values": {
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "AzureWebJobsStorage": azurite.connection_string,
            "WORK_QUEUE": "devhost-work",
            "FAIL_QUEUE": "devhost-fail",
            "SAMPLE_RECORD_DIR": str(record_dir),
            "GREETING": "from-local-settings",
            "ONLY_LOCAL": "yes",
        },
    }
    (app_dir / "local.settings.json").write_text(json.dumps(local_settings))
    return SampleApp(app_dir, record_dir, "devhost-work", "devhost-fail")


@pytest.fixture(scope="module")
def devhost(sample_app: SampleApp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    log_path = tmp_path_factory.mktemp("devhost-log") / "devhost.log"
    env = {
        "GREETING": "from-env",
        # host.json says maxDequeueCount 5; the environment override must win
        "AzureFunctionsJobHost__Extensions__Queues__MaxDequeueCount": "2",
    }
    host = start_devhost(sample_app.app_dir, env, log_path)
    yield host
    if host.process.poll() is None:
        assert host.stop() == 0, host.output()
