"""Helpers for the devhost tests: devhost on a test app as a process (start_devhost), polling, the sample app."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devhost.services import ROOT, AzuritePorts, Service, free_port, start_function_app
from tests.support import wait_for as wait_until

__all__ = ["REPO_ROOT", "AzuritePorts", "Service", "free_port", "wait_until"]

REPO_ROOT = ROOT  # the repository (devhost runs from there)

SAMPLE_APP = r"""
import asyncio
import json
import os
import pathlib
import threading
import time
import uuid

import azure.functions as func

# read at import time: proves local.settings.json is applied before the app is imported
RECORD_DIR = pathlib.Path(os.environ["SAMPLE_RECORD_DIR"])
GREETING_AT_IMPORT = os.environ.get("GREETING", "<unset>")

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def _record(kind: str, payload: dict) -> None:
    RECORD_DIR.mkdir(parents=True, exist_ok=True)
    tmp = RECORD_DIR / f".{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(payload))
    tmp.rename(RECORD_DIR / f"{kind}-{uuid.uuid4().hex}.json")


@app.route(route="items/{id:int}", methods=["GET"])
def get_item(req: func.HttpRequest, context) -> func.HttpResponse:
    payload = {
        "id": req.route_params.get("id"),
        "params": dict(req.params),
        "url": req.url,
        "method": req.method,
        "thread": threading.current_thread() is threading.main_thread(),
        "context_function": context.function_name,
        "invocation_id": context.invocation_id,
        "header": req.headers.get("x-custom"),
    }
    return func.HttpResponse(json.dumps(payload), mimetype="application/json")


@app.route(route="operations/{id}", methods=["GET", "DELETE"])
async def get_operation(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"operation {req.route_params['id']}", status_code=200)


@app.route(route="operations/health", methods=["GET"])
async def health(req: func.HttpRequest) -> func.HttpResponse:
    resp = func.HttpResponse("healthy", status_code=203, headers={"X-Health": "ok"})
    resp.headers.add("Set-Cookie", "a=1")
    resp.headers.add("Set-Cookie", "b=2")
    return resp


@app.route(route="echo", methods=["POST"])
async def echo(req: func.HttpRequest) -> func.HttpResponse:
    body = req.get_body()
    return func.HttpResponse(
        body,
        status_code=201,
        headers={"Content-Type": "application/x-echo", "X-Echo-Length": str(len(body))},
    )


@app.route(route="files/{*path}", methods=["GET"])
def files(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.route_params.get("path", "<none>"))


@app.route(route="opt/{name:alpha?}", methods=["GET"])
def optional(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.route_params.get("name", "<none>"))


@app.route(route="guids/{id:guid}", methods=["GET"])
def guids(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.route_params["id"])


@app.route(route="settings", methods=["GET"])
def settings(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(
            {
                "greeting": os.environ.get("GREETING"),
                "greeting_at_import": GREETING_AT_IMPORT,
                "only_local": os.environ.get("ONLY_LOCAL"),
            }
        ),
        mimetype="application/json",
    )


@app.route(route="async", methods=["GET"])
async def async_fn(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0)
    return func.HttpResponse("async ok", mimetype="text/plain")


@app.route(route="boom", methods=["GET"])
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("kaboom")


@app.route(route="slow", methods=["GET"])
async def slow(req: func.HttpRequest) -> func.HttpResponse:
    marker = pathlib.Path(req.params["marker"])
    marker.write_text("started")
    release = pathlib.Path(req.params["release"])
    deadline = time.monotonic() + 20
    while not release.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return func.HttpResponse("slow done")


@app.timer_trigger(arg_name="timer", schedule="0 */5 * * * *")
def tick(timer: func.TimerRequest) -> None:  # scheduled every 5 minutes (devhost/timers.py)
    pass


@app.queue_trigger(arg_name="msg", queue_name="%WORK_QUEUE%", connection="AzureWebJobsStorage")
def work(msg: func.QueueMessage) -> None:
    _record(
        "work",
        {
            "id": msg.id,
            "body": msg.get_body().decode("utf-8"),
            "dequeue_count": msg.dequeue_count,
            "has_pop_receipt": bool(msg.pop_receipt),
            "has_insertion_time": msg.insertion_time is not None,
        },
    )


@app.queue_trigger(arg_name="item", queue_name="%FAIL_QUEUE%", connection="AzureWebJobsStorage")
async def always_fails(item: func.QueueMessage) -> None:
    _record("fail", {"id": item.id, "body": item.get_body().decode("utf-8"), "dequeue_count": item.dequeue_count})
    raise ValueError("always fails")
"""


def start_devhost(
    app_dir: Path,
    env: dict[str, str],
    log_path: Path,
    *,
    lease_seconds: int = 30,
    extra_args: list[str] | None = None,
) -> Service:
    """devhost serving the app in `app_dir` on a free port (devhost.services.start_function_app), its output in
    `log_path`. Host settings overrides (AzureFunctionsJobHost__*) of the environment pytest runs in are not
    passed on: only those in `env` count."""
    return start_function_app(
        free_port(),
        env,
        log_path.parent,
        name=log_path.stem,
        extra_args=["--lease-seconds", str(lease_seconds), *(extra_args or [])],
        app_dir=app_dir,
        drop_inherited=("AzureFunctionsJobHost__",),
    )


@dataclass
class SampleApp:
    app_dir: Path
    record_dir: Path
    work_queue: str
    fail_queue: str

    def records(self, kind: str) -> list[dict[str, Any]]:
        if not self.record_dir.exists():
            return []
        return [json.loads(p.read_text()) for p in sorted(self.record_dir.glob(f"{kind}-*.json"))]
