"""devhost as a process enforcing authLevel with function keys, like the Azure Functions host.

Models azure-functions-host (src/WebJobs.Script.WebHost/, commit 89dc438d): keys from `x-functions-key` or
`code` (Security/Authentication/Keys/AuthenticationLevelHandler.cs L23-24, L89-98), levels per
Security/KeyManagement/SecretManager.cs L544-576 and Security/Authorization/AuthUtility.cs L30-60, and a bare
`401` (Middleware/FunctionInvocationMiddleware.cs L117-121 `new UnauthorizedResult()`). Off unless configured,
as `func start` ("When running functions locally, authorization is disabled regardless of the specified
authorization level setting", azure-docs functions-bindings-http-webhook-trigger.md).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devhost.keys import write_keys_file
from devhost.services import AzuritePorts, bridge_environment, free_port, start_function_app
from tests.devhost.devhost_testlib import REPO_ROOT, Service, start_devhost, wait_until
from tests.harness.emulator import Emulator

MASTER = "devkeys-master-Q2hlY2tNZQ"
HOST = "devkeys-host-SG9zdEtleQ"
ITEM_KEY = "devkeys-item-SXRlbUtleQ"
OTHER_KEY = "devkeys-other-T3RoZXJLZXk"
ALL_KEYS = (MASTER, HOST, ITEM_KEY, OTHER_KEY)

KEYS_APP = """
import json
import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="items/{id}", methods=["GET"])
def get_item(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"fn": "get_item", "params": dict(req.params),
                                         "oid": req.headers.get("x-ms-client-principal-id")}),
                             mimetype="application/json")


@app.route(route="other", methods=["GET"])
def other(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("other")


@app.route(route="maintenance", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def maintenance(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("admin only")


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("healthy")


@app.route(route="boom", methods=["GET"])
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError(f"failed for {req.url} with {req.headers.get('x-functions-key')}")
"""


def make_app(app_dir: Path, settings: dict[str, str] | None = None) -> Path:
    app_dir.mkdir(parents=True, exist_ok=True)
    (app_dir / "function_app.py").write_text(KEYS_APP)
    (app_dir / "host.json").write_text(json.dumps({"version": "2.0"}))
    if settings is not None:
        (app_dir / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": settings}))
    return app_dir


def write_keys(path: Path) -> Path:
    return write_keys_file(
        path,
        master=MASTER,
        host_keys={"default": HOST},
        function_keys={"get_item": {"default": ITEM_KEY}, "other": {"default": OTHER_KEY}},
    )


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    # the setting comes from local.settings.json and is relative: resolved against the app directory
    app_dir = make_app(tmp_path_factory.mktemp("keyed"), {"DEVHOST_KEYS_FILE": "secrets/devhost-keys.json"})
    write_keys(app_dir / "secrets" / "devhost-keys.json")
    host = start_devhost(app_dir, {}, app_dir / "devhost.log")
    yield host
    host.stop()


def get(
    host: Service, path: str, key: str | None = None, *, header: str | None = None, **params: str
) -> httpx.Response:
    query = {**params, **({"code": key} if key is not None else {})}
    headers = {"x-functions-key": header} if header is not None else {}
    return httpx.get(f"{host.url}/api/{path}", params=query, headers=headers)


@pytest.mark.parametrize(
    ("path", "key", "header", "status"),
    [
        ("items/1", None, None, 401),
        ("items/1", "wrong", None, 401),
        ("items/1", ITEM_KEY, None, 200),  # ?code= with the function's own key
        ("items/1", None, ITEM_KEY, 200),  # x-functions-key header
        ("items/1", HOST, None, 200),  # a host key opens every function route
        ("other", HOST, None, 200),
        ("items/1", OTHER_KEY, None, 401),  # another function's key
        ("other", ITEM_KEY, None, 401),
        ("items/1", MASTER, None, 200),
        ("items/1", ITEM_KEY, "wrong", 401),  # the header wins over code
        ("maintenance", None, None, 401),
        ("maintenance", HOST, None, 401),  # admin needs the master key
        ("maintenance", ITEM_KEY, None, 401),
        ("maintenance", MASTER, None, 200),
        ("maintenance", None, MASTER, 200),
        ("health", None, None, 200),  # anonymous: open
        ("health", "wrong", None, 200),
    ],
)
def test_keys_are_checked_like_the_host(
    keyed: Service, path: str, key: str | None, header: str | None, status: int
) -> None:
    response = get(keyed, path, key, header=header)
    assert response.status_code == status, response.text
    if status == 401:
        # UnauthorizedResult: no body, no challenge
        assert response.content == b"" and "www-authenticate" not in response.headers


def test_the_function_still_sees_the_code_parameter(keyed: Service) -> None:
    seen = get(keyed, "items/7", ITEM_KEY, q="x").json()
    assert seen == {"fn": "get_item", "params": {"q": "x", "code": ITEM_KEY}, "oid": None}


def test_no_key_reaches_the_log(keyed: Service) -> None:
    assert get(keyed, "items/1", ITEM_KEY).status_code == 200
    assert get(keyed, "items/1", OTHER_KEY).status_code == 401
    assert get(keyed, "boom", HOST, header=MASTER).status_code == 500  # traceback carries the URL and header
    assert httpx.get(f"{keyed.url}/api/items/1?c%6Fde={ITEM_KEY}").status_code == 200

    def logged() -> str:
        text = keyed.output()
        return text if "Functions.boom" in text and "c%6Fde=REDACTED" in text else ""

    log = wait_until(logged, 10, "the requests in devhost's log")
    assert "HTTP auth levels enforced" in log and "code=REDACTED" in log and "Rejected GET /api/items/1" in log
    for secret in ALL_KEYS:
        assert secret not in log  # the log holds all devhost printed, stdout and stderr


def test_keys_are_not_checked_without_the_setting(tmp_path: Path) -> None:
    host = start_devhost(make_app(tmp_path / "app"), {}, tmp_path / "devhost.log")
    try:
        assert get(host, "items/1").status_code == 200 and get(host, "maintenance").status_code == 200
    finally:
        host.stop()
    assert "not enforced locally" in host.output()


def test_the_cli_flag_and_the_environment_enable_it(tmp_path: Path) -> None:
    app_dir = make_app(tmp_path / "app")
    keys = write_keys(tmp_path / "elsewhere" / "keys.json")
    by_flag = start_devhost(app_dir, {}, tmp_path / "flag.log", extra_args=["--keys-file", str(keys)])
    by_env = start_devhost(app_dir, {"DEVHOST_KEYS_FILE": str(keys)}, tmp_path / "env.log")
    try:
        for host in (by_flag, by_env):
            assert get(host, "items/1").status_code == 401 and get(host, "items/1", HOST).status_code == 200
    finally:
        by_flag.stop()
        by_env.stop()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "DEVHOST_KEYS_FILE: cannot read"),
        ("{", "is not valid JSON"),
        (json.dumps({"functionKeys": [{"name": "default", "value": HOST}]}), "masterKey is required"),
        (
            json.dumps({"masterKey": {"name": "master", "value": MASTER}, "functionKeys": [{"name": "d"}]}),
            r"functionKeys\[0\].value must be a non-empty string",
        ),
    ],
    ids=["missing", "not-json", "no-master", "no-value"],
)
def test_a_bad_keys_file_stops_startup_with_a_clear_error(tmp_path: Path, content: str | None, message: str) -> None:
    app_dir = make_app(tmp_path / "app", {"DEVHOST_KEYS_FILE": "keys.json"})
    if content is not None:
        (app_dir / "keys.json").write_text(content)
    done = subprocess.run(
        [sys.executable, "-m", "devhost", "--port", "0", "--app-dir", str(app_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "startup failed" in done.stderr and re.search(message, done.stderr), done.stderr
    assert "devhost listening" not in done.stdout and MASTER not in done.stderr and HOST not in done.stderr


TENANT = "11111111-2222-3333-4444-555555555555"
AUDIENCE = "api://excel-bridge"


def test_easy_auth_and_keys_are_two_layers(tmp_path: Path, emulator: Emulator) -> None:
    """The tokens are the emulator's Entra's (tests/conftest.py `emulator`)."""
    token = emulator.sign_in("ada.keys@contoso.example", tenant=TENANT, audience=AUDIENCE, oid="user-oid-1")
    app_dir = make_app(tmp_path / "app")
    keys = write_keys(tmp_path / "keys.json")
    host = start_devhost(
        app_dir,
        {
            "DEVHOST_KEYS_FILE": str(keys),
            "DEVHOST_AUTH_ISSUER": emulator.issuer(TENANT),
            "DEVHOST_AUTH_AUDIENCES": AUDIENCE,
            "DEVHOST_AUTH_ALLOWED_TENANTS": TENANT,
        },
        tmp_path / "devhost.log",
    )
    try:
        url = f"{host.url}/api/items/1"
        bearer = {"Authorization": f"Bearer {token}"}
        # Easy Auth runs in front of the host: no token -> its 401 with a problem body, whatever the key
        no_token = httpx.get(url, params={"code": ITEM_KEY})
        assert no_token.status_code == 401 and no_token.json()["detail"] == "a bearer token is required"
        # a valid token but no key -> the host's own bare 401
        no_key = httpx.get(url, headers=bearer)
        assert no_key.status_code == 401 and no_key.content == b""
        both = httpx.get(url, headers={**bearer, "x-functions-key": ITEM_KEY})
        assert both.status_code == 200 and both.json()["oid"] == "user-oid-1"
        assert httpx.get(f"{host.url}/api/health").status_code == 200
    finally:
        host.stop()


def test_start_function_app_takes_the_setting_in_its_env(tmp_path: Path, azurite: AzuritePorts) -> None:
    """What tests/e2e use: the bridge app itself, keys enabled through the env mapping."""
    keys = write_keys_file(tmp_path / "keys.json", master=MASTER, host_keys={"default": HOST})
    env = bridge_environment(azurite, free_port(), DEVHOST_KEYS_FILE=str(keys))
    service = start_function_app(free_port(), env, tmp_path / "logs")
    try:
        refused = httpx.post(f"{service.url}/api/operations", json={})
        assert refused.status_code == 401 and refused.content == b""
        answered = httpx.post(f"{service.url}/api/operations", json={}, headers={"x-functions-key": HOST})
        assert answered.status_code not in (401, 500) and answered.headers["content-type"].startswith(
            "application/problem+json"
        )
        assert httpx.get(f"{service.url}/api/openapi.json").status_code == 200  # anonymous
    finally:
        service.stop()
    log = service.log_path.read_text()
    assert HOST not in log and MASTER not in log
