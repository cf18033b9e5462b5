"""``python -m devhost.emulator`` as a subprocess, with the real azure-identity credential."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import urllib.parse
from pathlib import Path

import httpx

from devhost.services import ROOT, Service, start_process
from tests.harness.emulator import Emulator


def _start(log_dir: Path, *args: str, scheme: str = "http") -> Service:
    """`python -m devhost.emulator --port 0 ...` through the one launcher; its URL from its listening line."""
    service = start_process(
        "emulator-cli",
        [sys.executable, "-m", "devhost.emulator", "--port", "0", *args],
        marker="emulator listening on",
        log_dir=log_dir,
        timeout=30,
    )
    assert service.url.startswith(f"{scheme}://127.0.0.1:"), service.output()
    return service


def test_cli_serves_azure_identity_and_exits_cleanly(monkeypatch, tmp_path):
    from azure.identity.aio import ManagedIdentityCredential

    service = _start(tmp_path, "--identity-header", "cli-secret", "--token-lifetime", "7200")
    base = service.url
    try:
        monkeypatch.setenv("IDENTITY_ENDPOINT", f"{base}/msi/token")
        monkeypatch.setenv("IDENTITY_HEADER", "cli-secret")
        for name in ("MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT", "IDENTITY_SERVER_THUMBPRINT"):
            monkeypatch.delenv(name, raising=False)

        async def get_token() -> str:
            async with ManagedIdentityCredential() as credential:
                token = await credential.get_token(f"{base}/.default")
            return token.token

        token = asyncio.run(get_token())
        with httpx.Client(timeout=10) as http:
            resp = http.post(
                f"{base}/v1.0/me/drive/items/X/workbook/createSession",
                json={"persistChanges": True},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert resp.status_code == 201
            assert resp.json()["persistChanges"] is True
            log = Emulator(base, http).requests()
        assert [e["kind"] for e in log] == ["token", "start"]
        assert f"resource={base}" in urllib.parse.unquote(log[0]["query"])
        assert token not in json.dumps(log)
    finally:
        rc = service.stop()  # SIGTERM
    assert rc == 0


def test_cli_sigint_exits_zero(tmp_path):
    service = _start(tmp_path)
    service.process.send_signal(signal.SIGINT)
    assert service.process.wait(timeout=10) == 0
    assert service.stop() == 0  # ended already: this waits for the last of its output
    assert service.output().splitlines() == [f"emulator listening on {service.url}"]  # nothing else, no traceback


_CHILD = """
import asyncio, base64, json, sys
from azure.identity.aio import ClientSecretCredential, OnBehalfOfCredential

base, tenant, client, secret, assertion = sys.argv[1:6]

def claims(token):
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))

async def main():
    common = {"authority": base, "disable_instance_discovery": True}
    async with ClientSecretCredential(tenant, client, secret, **common) as cred:
        app = (await cred.get_token(base + "/.default")).token
    async with OnBehalfOfCredential(tenant, client, client_secret=secret, user_assertion=assertion, **common) as cred:
        user = (await cred.get_token(base + "/.default")).token
    print(json.dumps({"app": claims(app), "user": claims(user), "user_token": user}))

asyncio.run(main())
"""


def test_cli_tls_serves_real_azure_identity_via_ssl_cert_file(tmp_path):
    """HTTPS emulator process; a child using azure-identity with only SSL_CERT_FILE pointing at the test CA."""
    from tests.emulator.entra_harness import API_CLIENT, API_SECRET, TENANT, USER, make_tls_files

    tls = make_tls_files(tmp_path)
    service = _start(tmp_path, "--tls-cert", str(tls.cert), "--tls-key", str(tls.key), scheme="https")
    base = service.url
    http = httpx.Client(verify=ssl.create_default_context(cafile=str(tls.ca)), timeout=10)
    admin = Emulator(base, http)

    try:
        admin.entra_client(API_CLIENT, secret=API_SECRET, appRoles=["Ops.All"])
        admin.entra_user(USER, tid=TENANT)
        assertion = admin.user_token(USER, f"api://{API_CLIENT}", ["access_as_user"])
        env = {**os.environ, "SSL_CERT_FILE": str(tls.ca), "REQUESTS_CA_BUNDLE": str(tls.ca)}
        env.pop("SSL_CERT_DIR", None)
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, base, TENANT, API_CLIENT, API_SECRET, assertion],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert child.returncode == 0, child.stderr
        out = json.loads(child.stdout)
        assert out["app"]["idtyp"] == "app" and out["app"]["aud"] == base
        assert out["user"]["upn"] == USER and out["user"]["aud"] == base and out["user"]["tid"] == TENANT

        resp = http.post(
            f"{base}/v1.0/me/drive/items/X/workbook/createSession",
            json={},
            headers={"Authorization": f"Bearer {out['user_token']}"},
        )
        assert resp.status_code == 201
        log = admin.requests()
        assert [(e["kind"], e["grantType"]) for e in log if e["kind"] == "entra"] == [
            ("entra", "client_credentials"),
            ("entra", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ]
        assert log[-1]["user"] == USER
        assert API_SECRET not in json.dumps(log) and assertion not in json.dumps(log)
    finally:
        http.close()
        rc = service.stop()
    assert rc == 0


def test_cli_tls_flags_go_together():
    proc = subprocess.run(
        [sys.executable, "-m", "devhost.emulator", "--port", "0", "--tls-cert", "x.pem"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2 and "--tls-key" in proc.stderr
