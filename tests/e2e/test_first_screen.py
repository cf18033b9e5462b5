"""The first screen, followed literally: the commands `make run` prints (devhost/stack.py's banner) run as pasted
against a bridge, and the Python receiver of docs/webhooks.md runs as written against a real webhook, under
cloudevents 1.x and 2.x (2.x moved `from_http` to `cloudevents.v1.http`: `cloudevents.http` is gone there).

Each cloudevents major is installed once (pip --target, no dependencies: the project's environment has them) into a
directory of its own that goes first on the snippet's sys.path, so the snippet sees that major and nothing else.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devhost.services import DEV_WEBHOOK_SECRET, AzuritePorts
from devhost.stack import DEMO_WORKBOOK, banner

from .harness import Bridge, Emulator, WebhookReceiver

ROOT = Path(__file__).resolve().parents[2]
WEBHOOKS_MD = ROOT / "docs" / "webhooks.md"
CLOUDEVENTS = {"1.x": "cloudevents==1.13.0", "2.x": "cloudevents==2.2.0"}
PIP = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"]


def bash(command: str, timeout: float = 150) -> str:
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def status_lines(output: str) -> list[int]:
    return [int(m) for m in re.findall(r"^HTTP/1\.1 (\d{3})", output, re.MULTILINE)]


def header(output: str, name: str) -> str:
    [value] = re.findall(rf"^{name}: (.*?)\r?$", output, re.MULTILINE | re.IGNORECASE)
    return value


def body_of(output: str) -> str:
    """The body after `curl -i`'s headers (the output is read as text: its CRLFs are newlines)."""
    return output.split("\n\n", 1)[1]


def commands(text: str) -> list[str]:
    """The shell commands of the banner: its indented `curl` and `L=$(...)` lines, with their continuations."""
    found, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(("  curl -i -X POST", "  L=$(")):
            command = line.strip()
            while command.endswith("\\"):
                i += 1
                command = command + "\n" + lines[i]
            found.append(command)
    return found


@pytest.fixture(scope="module")
def printed(bridge: Bridge, emulator: Emulator, receiver: WebhookReceiver, azurite: AzuritePorts) -> str:
    emulator.scenario(DEMO_WORKBOOK.rsplit("/", 1)[1], runningPolls=2)
    return banner(bridge.api, emulator.url, receiver.url, azurite)


def test_the_banner_commands_work_when_pasted(printed: str, receiver: WebhookReceiver) -> None:
    start, one_line, with_callback = commands(printed)

    answer = bash(start)
    assert status_lines(answer) == [202], answer  # no callbackUrl: 202 and a Location to poll
    location = header(answer, "location")
    assert "/api/status/" in location and "se=" in location and "sig=" in location
    assert f"{location.split('?')[0].rsplit('/api/', 1)[0]}/api/status/<id>?se=...&sig=..." in printed
    # "Then GET that Location exactly as it was printed"
    assert "curl -i '<the Location printed above>'" in printed
    followed = bash(f"curl -i '{location}'")
    assert status_lines(followed)[0] in (200, 202)

    polled = bash(one_line)
    assert polled.splitlines()[0].startswith("http") and "/api/status/" in polled.splitlines()[0]
    assert status_lines(polled) == [200]
    assert json.loads(body_of(polled))["result"]["persistChanges"] is True

    hooked = bash(with_callback)
    assert status_lines(hooked) == [201], hooked  # a callbackUrl makes it a subscription: 201
    record = json.loads(body_of(hooked))
    [delivery] = receiver.wait(f"{receiver.url}/hooks/demo", timeout=60)
    event = delivery.verified(DEV_WEBHOOK_SECRET)
    assert event["type"] == "workbook.operation.succeeded" and event["subject"] == record["id"]


# ---- docs/webhooks.md's receiver under both cloudevents majors


@pytest.fixture(scope="module")
def cloudevents_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    dirs = {}
    for major, requirement in CLOUDEVENTS.items():
        target = tmp_path_factory.mktemp(f"cloudevents-{major}")
        done = subprocess.run(
            [*PIP, "--target", str(target), requirement],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"could not install {requirement} from the package index: {done.stderr}"
        dirs[major] = target
    return dirs


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, re.DOTALL)


RUNNER = """
import importlib.metadata, json, sys
headers, body = json.load(open(sys.argv[1])), open(sys.argv[2], "rb").read()
seen, processed = set(), []
already_seen = lambda webhook_id: webhook_id in seen or seen.add(webhook_id)
process = lambda kind, data: processed.append((kind, data))
{reading}
read = {{"type": event["type"], "subject": event["subject"], "result": event.data["result"]}}
{receiver}
tampered = handle(body.replace(b"succeeded", b"failed"), headers)
print(json.dumps({{"version": importlib.metadata.version("cloudevents"), "read": read,
                  "answers": [handle(body, headers), handle(body, headers), tampered], "processed": processed}}))
"""


@pytest.fixture(scope="module")
def delivered(bridge: Bridge, emulator: Emulator, receiver: WebhookReceiver) -> tuple[dict[str, str], bytes]:
    """One real webhook from the bridge (binary content mode, the default), as a receiver gets it."""
    from .harness import new_item

    item = new_item()
    emulator.scenario(item, runningPolls=1)
    url = receiver.new_url()
    started = bridge.start({"workbook": f"/me/drive/items/{item}", "action": "createSession", "callbackUrl": url})
    assert started.status_code == 201, started.text
    [delivery] = receiver.wait(url, timeout=60)
    return delivery.headers, delivery.body


@pytest.mark.parametrize("major", list(CLOUDEVENTS))
def test_the_documented_receiver_runs_under_both_cloudevents_majors(
    major: str, cloudevents_dirs: dict[str, Path], delivered: tuple[dict[str, str], bytes], tmp_path: Path
) -> None:
    reading, receiver_code = python_blocks(WEBHOOKS_MD.read_text())[:2]
    assert "whsec_..." in receiver_code  # the one thing a reader fills in
    script = RUNNER.format(reading=reading, receiver=receiver_code.replace("whsec_...", DEV_WEBHOOK_SECRET))
    headers, body = delivered
    (tmp_path / "headers.json").write_text(json.dumps(headers))
    (tmp_path / "body").write_bytes(body)
    (tmp_path / "run.py").write_text(script)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "run.py"), str(tmp_path / "headers.json"), str(tmp_path / "body")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PYTHONPATH": str(cloudevents_dirs[major]), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    assert out["version"].startswith(major[0] + ".")  # the snippet ran under this major
    record = json.loads(body)
    assert out["read"] == {"type": "workbook.operation.succeeded", "subject": record["id"], "result": record["result"]}
    assert out["answers"] == [204, 204, 401]  # processed, a repeat (same webhook-id), a tampered body
    assert out["processed"] == [["workbook.operation.succeeded", record]]
