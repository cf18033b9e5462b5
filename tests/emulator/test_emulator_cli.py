"""``python -m devhost.emulator`` as a subprocess, with the real azure-identity credential."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.parse
import urllib.request

from emulator_harness import REPO_ROOT


def _start(*args: str, scheme: str = "http") -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "devhost.emulator", "--port", "0", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith(f"emulator listening on {scheme}://127.0.0.1:"), (line, proc.stderr)
    return proc, line.strip().rsplit(" ", 1)[1]


def test_cli_serves_azure_identity_and_exits_cleanly(monkeypatch):
    from azure.identity.aio import ManagedIdentityCredential

    proc, base = _start("--identity-header", "cli-secret", "--token-lifetime", "7200")
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
        req = urllib.request.Request(
            f"{base}/v1.0/me/drive/items/X/workbook/createSession",
            data=b'{"persistChanges": true}',
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 201
            assert json.loads(resp.read())["persistChanges"] is True
        with urllib.request.urlopen(f"{base}/_emulator/requests", timeout=10) as resp:
            log = json.loads(resp.read())
        assert [e["kind"] for e in log] == ["token", "start"]
        assert f"resource={base}" in urllib.parse.unquote(log[0]["query"])
        assert token not in json.dumps(log)
    finally:
        rc = _terminate(proc)
    assert rc == 0


def _terminate(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=10)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return rc


def test_cli_sigint_exits_zero():
    proc, _ = _start()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0
    assert proc.stdout is not None and proc.stdout.read() == ""
    proc.stdout.close()
    if proc.stderr:
        proc.stderr.close()


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
    import ssl

    from entra_harness import API_CLIENT, API_SECRET, TENANT, USER, make_tls_files

    tls = make_tls_files(tmp_path)
    proc, base = _start("--tls-cert", str(tls.cert), "--tls-key", str(tls.key), scheme="https")
    context = ssl.create_default_context(cafile=str(tls.ca))

    def admin(method: str, path: str, body: dict) -> dict:
        req = urllib.request.Request(
            f"{base}/_emulator{path}",
            data=json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            return json.loads(resp.read())

    try:
        admin("PUT", f"/entra/clients/{API_CLIENT}", {"secret": API_SECRET, "appRoles": ["Ops.All"]})
        admin("PUT", f"/entra/users/{USER}", {"tid": TENANT})
        assertion = admin(
            "POST", f"/entra/users/{USER}/token", {"audience": f"api://{API_CLIENT}", "scopes": ["access_as_user"]}
        )["access_token"]
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

        req = urllib.request.Request(
            f"{base}/v1.0/me/drive/items/X/workbook/createSession",
            data=b"{}",
            method="POST",
            headers={"Authorization": f"Bearer {out['user_token']}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            assert resp.status == 201
        with urllib.request.urlopen(f"{base}/_emulator/requests", timeout=10, context=context) as resp:
            log = json.loads(resp.read())
        assert [(e["kind"], e["grantType"]) for e in log if e["kind"] == "entra"] == [
            ("entra", "client_credentials"),
            ("entra", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ]
        assert log[-1]["user"] == USER
        assert API_SECRET not in json.dumps(log) and assertion not in json.dumps(log)
    finally:
        rc = _terminate(proc)
    assert rc == 0


def test_cli_tls_flags_go_together():
    proc = subprocess.run(
        [sys.executable, "-m", "devhost.emulator", "--port", "0", "--tls-cert", "x.pem"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2 and "--tls-key" in proc.stderr
