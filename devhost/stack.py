"""`make run`: Azurite, the Graph emulator, a webhook receiver and the function app, until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time

from .services import (
    ROOT,
    AzuritePorts,
    Service,
    ServiceError,
    bridge_environment,
    port_open,
    start_azurite,
    start_emulator,
    start_function_app,
    start_process,
)

DEMO_WORKBOOK = "/me/drive/items/01DEMOITEM"


def start_body(callback_url: str | None = None) -> str:
    """The demo start request's JSON (a createSession; with a callback when `callback_url` is given)."""
    body: dict[str, object] = {
        "workbook": DEMO_WORKBOOK,
        "action": "createSession",
        "parameters": {"persistChanges": True},
    }
    if callback_url:
        body.update(callbackUrl=callback_url, clientReference="demo")
    return json.dumps(body)


def banner(api: str, emulator: str, receiver: str, storage: AzuritePorts) -> str:
    """What `make run` prints: where everything is and commands that work when pasted as they are (a test runs them:
    tests/e2e/test_first_screen.py). Without a callbackUrl the start answers 202 and its Location (the signed status
    URL) is polled; with one it answers 201: a subscription, whose webhook the receiver prints."""
    post = f"curl -i -X POST {api}/operations -H 'content-type: application/json'"
    follow = (
        f"L=$(curl -s -o /dev/null -D - -X POST {api}/operations -H 'content-type: application/json' "
        f"-d '{start_body()}' | tr -d '\\r' | sed -n 's/^[Ll]ocation: //p'); echo \"$L\"; "
        'for i in $(seq 120); do [ "$(curl -s -o /dev/null -w \'%{http_code}\' "$L")" = 200 ] && break; sleep 1; done; '
        'curl -i "$L"'
    )
    return f"""
Excel Async Bridge is running (logs in .run/logs/).
  function app      {api}   (health: {api}/health)
  console           {api}/console   (the operations console: docs/console.md)
  Graph emulator    {emulator}/v1.0   (admin: /_emulator/...)
  webhook receiver  {receiver}   (verified webhooks are printed below)
  Azurite           blob {storage.blob}, queue {storage.queue}, table {storage.table} (data in .azurite/)

Start an operation. It answers 202 Accepted; its Location header is the signed status URL
({api}/status/<id>?se=...&sig=...), which needs no key:
  {post} \\
       -d '{start_body()}'
Then GET that Location exactly as it was printed: 202 while it runs, 200 with the session as "result" when done:
  curl -i '<the Location printed above>'
Or both in one line (it prints the Location, polls it until 200, at most 2 minutes, then prints the answer):
  {follow}

With a callbackUrl the start answers 201 Created instead (a webhook subscription: wait for the call, do not poll),
and a few seconds later the receiver prints "webhook verified: type=workbook.operation.succeeded ...":
  {post} \\
       -d '{start_body(f"{receiver}/hooks/demo")}'

Press Ctrl-C to stop everything.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run Excel Async Bridge locally")
    parser.add_argument("--port", type=int, default=7071, help="function app port")
    parser.add_argument("--emulator-port", type=int, default=7072)
    parser.add_argument("--receiver-port", type=int, default=7073)
    parser.add_argument("--storage-ports", default="10000,10001,10002", help="Azurite blob,queue,table ports")
    args = parser.parse_args(argv)
    blob, queue, table = (int(p) for p in args.storage_ports.split(","))
    storage = AzuritePorts(blob, queue, table)
    busy = [p for p in (args.port, args.emulator_port, args.receiver_port, blob, queue, table) if port_open(p)]
    if busy:
        print(f"ports already in use: {busy}; stop what uses them or pass other ports (see --help)")
        return 2
    settings = ROOT / "local.settings.json"
    if not settings.exists():
        shutil.copy(ROOT / "local.settings.json.example", settings)
        print("created local.settings.json from local.settings.json.example")
    logs = ROOT / ".run" / "logs"
    services: list[Service] = []
    try:
        services.append(start_azurite(storage, logs, location=ROOT / ".azurite"))
        services.append(start_emulator(args.emulator_port, logs))
        services.append(
            start_process(
                "receiver",
                [sys.executable, "-m", "devhost.receiver", "--port", str(args.receiver_port)],
                marker="receiver listening on",
                log_dir=logs,
                echo=True,
            )
        )
        env = bridge_environment(storage, args.emulator_port)
        services.append(start_function_app(args.port, env, logs, echo=False))
    except ServiceError as exc:
        print(exc)
        for service in reversed(services):
            service.stop()
        return 1
    api = f"http://127.0.0.1:{args.port}/api"
    print(
        banner(api, f"http://127.0.0.1:{args.emulator_port}", f"http://127.0.0.1:{args.receiver_port}", storage),
        flush=True,
    )
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stop:
            dead = [s for s in services if s.process.poll() is not None]
            if dead:
                print(f"{dead[0].name} stopped unexpectedly; last lines:\n{dead[0].tail()}")
                break
            time.sleep(0.5)
    finally:
        print("stopping...", flush=True)
        for service in reversed(services):
            service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
