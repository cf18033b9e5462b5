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


def _start(*args: str) -> tuple[subprocess.Popen[str], str]:
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
    assert line.startswith("emulator listening on http://127.0.0.1:"), (line, proc.stderr)
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
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert rc == 0


def test_cli_sigint_exits_zero():
    proc, _ = _start()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0
    assert proc.stdout is not None and proc.stdout.read() == ""
    proc.stdout.close()
    if proc.stderr:
        proc.stderr.close()
