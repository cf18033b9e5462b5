"""Excel Async Bridge: HTTP and queue functions (Azure Functions, Python v2 model).

Thin on purpose: each function parses its trigger, calls shared/, and formats the answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import azure.functions as func
from azure.storage.queue.aio import QueueClient

from shared.api.identity import Caller, caller_from_headers
from shared.api.openapi import build_spec
from shared.api.problems import Problem
from shared.api.responses import (
    api_base,
    json_response,
    page_response,
    problem_response,
    reply_response,
    unexpected_response,
)
from shared.console import api as console_api
from shared.console import assets as console_assets
from shared.delivery import operation_webhooks as deliverer
from shared.lanes import admission as lane_flow
from shared.observability import telemetry
from shared.operations import changes as operation_changes
from shared.operations import poll_step as poller
from shared.operations import purge
from shared.operations import reads as operation_reads
from shared.operations import start as operations
from shared.operations.record import DamagedRecord
from shared.runtime.settings import SettingsError, load_settings
from shared.runtime.worker import Runtime, get_runtime, queue_client
from shared.storage import poison
from shared.storage.messages import LANE_KIND, message_kind, trace_context
from shared.subscriptions import api as subscription_api
from shared.subscriptions import rules as subscriptions

telemetry.configure()  # once per worker: Azure Monitor, the console, devhost's own, or off (docs/observability.md)
app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
log = logging.getLogger("excel_async_bridge")

Handler = Callable[[Runtime], Awaitable[func.HttpResponse]]
HEALTH_TIMEOUT_SECONDS = 5


def caller(rt: Runtime, req: func.HttpRequest) -> Caller:
    """The caller as App Service Authentication describes it (trusted only when it is on)."""
    return caller_from_headers(
        req.headers, auth_enabled=rt.settings.auth_enabled, default_owner=rt.settings.default_owner
    )


async def _answer(req: func.HttpRequest, handler: Handler, route: str) -> func.HttpResponse:
    """Run a handler in the request's span (the caller's W3C trace continued); problems become
    application/problem+json, anything else a logged 500."""
    with telemetry.server_span(route, req.headers, {"http.route": route.split(" ", 1)[1]}) as span:
        response = await _run(req, handler)
        telemetry.answered(span, response.status_code)
        return response


async def _run(req: func.HttpRequest, handler: Handler) -> func.HttpResponse:
    try:
        return await handler(await get_runtime())
    except Problem as problem:
        return problem_response(problem, req.url.split("?", 1)[0])
    except SettingsError as exc:
        return problem_response(Problem(500, "misconfigured", "The bridge is misconfigured", str(exc)))
    except DamagedRecord as exc:  # met by a path that did not expect it (a keyed retry): named, never internalError
        return problem_response(operation_reads.damaged_problem(exc), req.url.split("?", 1)[0])
    except Exception as exc:
        return unexpected_response(exc)


@app.route(route="operations", methods=["POST"])
async def start_operation(req: func.HttpRequest) -> func.HttpResponse:
    async def handle(rt: Runtime) -> func.HttpResponse:
        reply = await operations.start(
            rt,
            req.get_body(),
            req.headers.get("Idempotency-Key"),
            api_base(req, "operations"),
            caller(rt, req),
            req.headers.get("Authorization"),
            req.headers.get("Content-Type"),
        )
        return reply_response(reply, failure=operation_reads.failure_problem(reply.operation))

    return await _answer(req, handle, "POST /api/operations")


@app.route(route="operations/{id}", methods=["GET"])
async def get_operation(req: func.HttpRequest) -> func.HttpResponse:
    async def handle(rt: Runtime) -> func.HttpResponse:
        reply = await operation_reads.get(rt, req.route_params.get("id", ""), caller(rt, req))
        return reply_response(reply, failure=operation_reads.failure_problem(reply.operation))

    return await _answer(req, handle, "GET /api/operations/{id}")


@app.route(route="operations", methods=["GET"])
async def list_operations(req: func.HttpRequest) -> func.HttpResponse:
    async def handle(rt: Runtime) -> func.HttpResponse:
        status, top = req.params.get("status"), req.params.get("top")
        page = await operation_reads.list_page(rt, status, top, req.params.get("continuationToken"), caller(rt, req))
        top_given = operation_reads.parse_top(top, default=None)
        return page_response(
            page.operations, page.continuation, req.url.split("?", 1)[0], status, top_given, page.damaged
        )

    return await _answer(req, handle, "GET /api/operations")


@app.route(route="operations/{id}", methods=["DELETE"])
async def cancel_operation(req: func.HttpRequest) -> func.HttpResponse:
    async def handle(rt: Runtime) -> func.HttpResponse:
        return reply_response(await operation_changes.cancel(rt, req.route_params.get("id", ""), caller(rt, req)))

    return await _answer(req, handle, "DELETE /api/operations/{id}")


@app.route(route="operations/by-key/{key}", methods=["DELETE"])
async def cancel_operation_by_key(req: func.HttpRequest) -> func.HttpResponse:
    async def handle(rt: Runtime) -> func.HttpResponse:
        return reply_response(
            await operation_changes.cancel_by_key(rt, req.route_params.get("key", ""), caller(rt, req))
        )

    return await _answer(req, handle, "DELETE /api/operations/by-key/{key}")


@app.route(route="operations/{id}/webhook/redeliver", methods=["POST"])
async def redeliver_webhook(req: func.HttpRequest) -> func.HttpResponse:
    async def handle(rt: Runtime) -> func.HttpResponse:
        reply = await operation_changes.redeliver(rt, req.route_params.get("id", ""), caller(rt, req))
        return reply_response(reply, status_code=202)

    return await _answer(req, handle, "POST /api/operations/{id}/webhook/redeliver")


def status_link(req: func.HttpRequest) -> operation_reads.StatusLink:
    return operation_reads.StatusLink.from_query(urlsplit(req.url).query, req.params)


# Signed status URLs (the Location given to every caller; the key: shared/runtime/link_key.py): anonymous at the host,
# because pollers such as Logic Apps (custom headers dropped on follow-ups) and Power Automate (no credential)
# cannot send a function key; the URL's own signature opens this one operation's status and cancel only.
@app.route(route="status/{id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def get_operation_by_link(req: func.HttpRequest) -> func.HttpResponse:
    async def handle(rt: Runtime) -> func.HttpResponse:
        reply = await operation_reads.get(rt, req.route_params.get("id", ""), status_link(req))
        return reply_response(reply, failure=operation_reads.failure_problem(reply.operation))

    return await _answer(req, handle, "GET /api/status/{id}")


@app.route(route="status/{id}", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
async def cancel_operation_by_link(req: func.HttpRequest) -> func.HttpResponse:
    async def handle(rt: Runtime) -> func.HttpResponse:
        return reply_response(await operation_changes.cancel(rt, req.route_params.get("id", ""), status_link(req)))

    return await _answer(req, handle, "DELETE /api/status/{id}")


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):  # a probe must answer fast, even when storage hangs
            rt = await get_runtime()
            await rt.store.ping()
            await rt.polls.ping()
            poisoned = await poison.counts(rt.settings, _poison_clients(rt))
    except SettingsError as exc:  # e.g. a damaged status-link key (shared/runtime/link_key.py): say which
        log.warning("health check failed: %s", exc)
        return problem_response(Problem(503, "misconfigured", "The bridge is misconfigured", str(exc)))
    except Exception as exc:
        log.warning("health check failed: %s", type(exc).__name__)
        return problem_response(Problem(503, "unhealthy", "Storage is not reachable", type(exc).__name__))
    # Approximate counts (Get Queue Metadata); replay or purge them with `python -m shared.storage.poison`.
    return json_response(200, {"status": "healthy", "poison": poisoned})


_poison: dict[str, QueueClient] = {}


def _poison_clients(rt: Runtime) -> dict[str, QueueClient]:
    """One client per poison queue, made once per worker (health is probed often)."""
    if not _poison:
        _poison.update({name: queue_client(rt.settings, name) for name in poison.poison_queues(rt.settings)})
    return _poison


@app.timer_trigger(schedule=purge.PURGE_SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)
async def purge_expired(timer: func.TimerRequest) -> None:
    """Retention (RETENTION_DAYS): delete expired operations and keys, fail stranded ones
    (shared/operations/purge.py)."""
    rt = await get_runtime()
    await purge.run(rt)
    await poison.counts(rt.settings, _poison_clients(rt))  # the poison gauge, at least hourly (docs/observability.md)


@app.queue_trigger(arg_name="msg", queue_name="%POLL_QUEUE%", connection="AzureWebJobsStorage")
async def poll_operation(msg: func.QueueMessage) -> None:
    """One poll of one operation. Raises only for storage failures, so the host retries, then poisons."""
    rt = await get_runtime()
    text = msg.get_body().decode("utf-8", "replace")
    with telemetry.consumer_span(f"process {rt.settings.poll_queue}", trace_context(text), _message_attributes(msg)):
        if message_kind(text) == LANE_KIND:  # the workbook lane's advance step (shared/lanes/admission.py)
            await lane_flow.handle_message(rt, text)
            return
        await poller.handle_message(rt, text, msg.dequeue_count or 1, msg.id)


@app.queue_trigger(arg_name="msg", queue_name="%WEBHOOK_QUEUE%", connection="AzureWebJobsStorage")
async def deliver_webhook(msg: func.QueueMessage) -> None:
    """One webhook attempt; retries are new messages with a visibility delay."""
    rt = await get_runtime()
    text = msg.get_body().decode("utf-8", "replace")
    with telemetry.consumer_span(f"process {rt.settings.webhook_queue}", trace_context(text), _message_attributes(msg)):
        await deliverer.handle_message(rt, text)


def _message_attributes(msg: func.QueueMessage) -> dict[str, str | int]:
    return {
        "messaging.system": "azure_queue",
        "messaging.message.id": msg.id or "",
        "messaging.azure_queue.dequeue_count": msg.dequeue_count or 1,
    }


@app.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    """The OpenAPI 3 document of every route (shared/api/openapi.py; tests keep it in step with this file), with
    this deployment's bounds; a misconfigured bridge still describes its routes (with the widest bounds)."""
    try:
        settings = load_settings()
    except SettingsError:
        return json_response(200, build_spec(api_base(req, "openapi.json")))
    spec = build_spec(
        api_base(req, "openapi.json"),
        operation_timeout=settings.operation_timeout,
        http_callbacks=settings.webhook_allow_private_networks,
        graph_origin=settings.graph_origin,
    )
    return json_response(200, spec)


# Subscriptions: "an operation of mine finished" (shared/subscriptions/api.py); the connector's webhook trigger.
@app.route(route="subscriptions", methods=["POST"])
async def create_subscription(req: func.HttpRequest) -> func.HttpResponse:
    async def handle(rt: Runtime) -> func.HttpResponse:
        sub = await subscription_api.create(
            rt, req.get_body(), api_base(req, "subscriptions"), caller(rt, req), req.headers.get("Content-Type")
        )
        return json_response(201, subscriptions.to_json(sub), {"Location": subscriptions.subscription_url(sub)})

    return await _answer(req, handle, "POST /api/subscriptions")


@app.route(route="subscriptions", methods=["GET"])
async def list_subscriptions(req: func.HttpRequest) -> func.HttpResponse:
    async def handle(rt: Runtime) -> func.HttpResponse:
        found = await subscription_api.list_for(rt, caller(rt, req))
        return json_response(200, {"value": [subscriptions.to_json(sub) for sub in found]})

    return await _answer(req, handle, "GET /api/subscriptions")


@app.route(route="subscriptions/{id}", methods=["GET"])
async def get_subscription(req: func.HttpRequest) -> func.HttpResponse:
    async def handle(rt: Runtime) -> func.HttpResponse:
        sub = await subscription_api.get(rt, req.route_params.get("id", ""), caller(rt, req))
        return json_response(200, subscriptions.to_json(sub))

    return await _answer(req, handle, "GET /api/subscriptions/{id}")


@app.route(route="subscriptions/{id}", methods=["DELETE"])
async def delete_subscription(req: func.HttpRequest) -> func.HttpResponse:
    async def handle(rt: Runtime) -> func.HttpResponse:
        await subscription_api.delete(rt, req.route_params.get("id", ""), caller(rt, req))
        return func.HttpResponse(status_code=204)

    return await _answer(req, handle, "DELETE /api/subscriptions/{id}")


# The operations console (docs/console.md): static files, anonymous at the host because they hold no data and no key
# (App Service Authentication, when on, still guards them); the page calls the API routes with the user's credential.
def _console_file(name: str) -> func.HttpResponse:
    found = console_assets.asset(name)
    if found is None:
        return problem_response(Problem(404, "notFound", "No such console file"))
    return func.HttpResponse(
        body=found.body, status_code=200, headers={"Content-Type": found.content_type, **console_assets.HEADERS}
    )


@app.route(route="console", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def console_page(req: func.HttpRequest) -> func.HttpResponse:
    return _console_file(console_assets.INDEX)


@app.route(route="console/{asset}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def console_asset(req: func.HttpRequest) -> func.HttpResponse:
    return _console_file(req.route_params.get("asset", ""))


@app.route(route="durations", methods=["GET"])
async def list_durations(req: func.HttpRequest) -> func.HttpResponse:
    """How long the caller's kinds of work took: the history the poll schedule learns from
    (shared/console/durations.py)."""

    async def handle(rt: Runtime) -> func.HttpResponse:
        return json_response(200, await console_api.durations(rt, caller(rt, req)))

    return await _answer(req, handle, "GET /api/durations")
