"""`python -m shared.storage.poison count|replay|purge`: the documented way to deal with poison messages."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from devhost.services import AzuritePorts, bridge_environment

from .harness import Emulator

ROOT = Path(__file__).resolve().parents[2]


def queue(azurite: AzuritePorts, name: str) -> QueueClient:
    # messageEncoding base64, as host.json says and the host writes poison messages
    return QueueClient.from_connection_string(
        azurite.connection_string,
        name,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
    )


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "shared.storage.poison", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_replay_and_purge(azurite: AzuritePorts, emulator: Emulator) -> None:
    name = "px" + uuid.uuid4().hex[:8]
    env = bridge_environment(
        azurite, int(emulator.url.rsplit(":", 1)[1]), POLL_QUEUE=f"{name}-polls", WEBHOOK_QUEUE=f"{name}-hooks"
    )
    polls, poll_poison = queue(azurite, f"{name}-polls"), queue(azurite, f"{name}-polls-poison")
    hook_poison = queue(azurite, f"{name}-hooks-poison")
    for client in (polls, poll_poison, hook_poison):
        client.create_queue()
    bodies = ['{"v":1,"id":"a","gen":0}', '{"v":1,"id":"b","gen":3}', '{"v":1,"id":"c","gen":1}']
    for body in bodies:
        poll_poison.send_message(body)
    hook_poison.send_message('{"v":1,"kind":"webhook"}')

    counts = dict(line.split("\t") for line in cli(env, "count").splitlines())
    assert counts == {f"{name}-polls-poison": "3", f"{name}-hooks-poison": "1"}

    out = cli(env, "replay", "--queue", f"{name}-polls-poison", "--max", "2")
    assert "replayed 2 message(s)" in out
    replayed = list(polls.receive_messages(max_messages=32, visibility_timeout=30))
    assert len(replayed) == 2 and {m.content for m in replayed} <= set(bodies)  # the body, byte for byte
    for message in replayed:  # sent with our finite TTL, not forever
        assert message.expires_on is not None and message.inserted_on is not None
        assert 0 < (message.expires_on - message.inserted_on).total_seconds() <= 7 * 24 * 3600
    assert poll_poison.get_queue_properties().approximate_message_count == 1  # deleted once replayed

    assert "purged 1 message(s)" in cli(env, "purge", "--queue", f"{name}-hooks-poison")
    assert hook_poison.get_queue_properties().approximate_message_count == 0
    assert "purged 1 message(s)" in cli(env, "purge", "--queue", f"{name}-polls-poison")
    assert polls.get_queue_properties().approximate_message_count == 2  # purge does not replay

    refused = subprocess.run(
        [sys.executable, "-m", "shared.storage.poison", "purge", "--queue", f"{name}-polls"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2 and "must be one of" in refused.stderr  # never drains a live queue
