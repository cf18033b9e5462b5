"""The HttpWebhook action: subscribe, wait for a POST to the callback URL, unsubscribe.

Sources (MicrosoftDocs/azure-docs, articles/...):
- connectors/connectors-native-webhook.md: "When the workflow runs, the webhook action pauses the workflow and
  waits for the service endpoint to call the URL before the workflow resumes running. The webhook action
  unsubscribes from the service endpoint when the following conditions occur: The webhook action successfully
  finishes. The workflow run is canceled while waiting for a response. Before a workflow run times out."
- logic-apps/logic-apps-create-api-app.md, "webhook pattern": "Your API then calls back with an HTTP POST to the
  URL and passes any returned content and headers as input to the logic app."; "If the logic app run is canceled,
  the Logic Apps engine calls the `unsubscribe` endpoint."
- logic-apps/logic-apps-workflow-actions-triggers.md, "Webhooks and subscriptions": "the `@listCallbackUrl()`
  expression returns a unique "callback URL" for the trigger or action"; the subscribe call "uses the same
  parameters as standard HTTP actions"; the HTTPWebhook example's unsubscribe uses `url` (others `uri`): both
  are read. "You can also specify limits on an ApiConnectionWebhook action in the same way as HTTP asynchronous
  limits" (limit.timeout).
- Callback URLs (platform-contracts): `https://prod-NN.<region>.logic.azure.com/workflows/<id>/runs/<run>/actions/
  <name>/run?api-version=...&sp=...&sv=1.0&sig=...`; Standard ones are on the app's host under
  `/runtime/webhooks/workflow/api/management/workflows/<name>/...`. The `sig` authenticates the POST.
The unsubscribe request is evaluated from the definition when it is sent (no documented way to read the
subscribe answer there). The status codes answered to the POSTer are not documented: see options.py.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from aiohttp import web

from tests.logicapps.content import ContentError, parse_body
from tests.logicapps.http_action import ActionFailure, Sender, follow_location, outputs_of, request_parts
from tests.logicapps.options import Interrupted, Options, Waiter
from tests.logicapps.results import ActionResult
from tests.logicapps.retry import RetryPolicy


@dataclass
class Registration:
    action: ActionResult
    path: str
    sig: str
    url: str
    loop: asyncio.AbstractEventLoop  # the run's loop, where `arrived` lives
    arrived: asyncio.Future[dict[str, Any]]
    state: str = "waiting"  # "waiting" | "delivered" | "closed"


class CallbackServer:
    """The engine's callback endpoint on 127.0.0.1, shaped like Logic Apps' own, on its own thread.

    It outlives each run (as Logic Apps' endpoint does), so a late or repeated POST gets an answer.
    """

    def __init__(self, options: Options) -> None:
        self.options = options
        self.registrations: dict[str, Registration] = {}
        self.lock = threading.Lock()
        self.base = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self.lock:
            if self._thread is not None:
                return
            self._start()

    def _start(self) -> None:
        ready = threading.Event()

        async def serve() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self.handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.base = f"http://127.0.0.1:{port}"
            ready.set()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(serve())
            loop.run_forever()
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=main, name="logicapps-callbacks", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the callback server did not start")

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def register(self, action: ActionResult, workflow_path: str, run_name: str, api_version: str) -> str:
        """The action's callback URL (the same one each time listCallbackUrl() is evaluated in the run)."""
        self.start()  # on first use
        name = quote(action.name, safe="")
        path = f"{workflow_path}/runs/{run_name}/actions/{name}/run"
        with self.lock:
            if path in self.registrations:
                return self.registrations[path].url
            sp = quote(f"/runs/{run_name}/actions/{name}/run,/runs/{run_name}/actions/{name}/read", safe="")
            sig = secrets.token_urlsafe(32)
            url = f"{self.base}{path}?api-version={api_version}&sp={sp}&sv=1.0&sig={sig}"
            loop = asyncio.get_running_loop()
            self.registrations[path] = Registration(action, path, sig, url, loop, loop.create_future())
            return url

    def find(self, action: ActionResult) -> Registration | None:
        with self.lock:
            return next((r for r in self.registrations.values() if r.action is action), None)

    def close(self, registration: Registration) -> None:
        with self.lock:
            if registration.state == "waiting":
                registration.state = "closed"

    async def handle(self, request: web.Request) -> web.Response:
        with self.lock:
            registration = self.registrations.get(request.path)
        if registration is None:
            return _error(404, "WorkflowRunActionNotFound", "no such callback")
        query = parse_qs(request.query_string)
        if "api-version" not in query:
            # ARM-style endpoints refuse a request without api-version (the URL must be used as given).
            return _error(400, "MissingApiVersionParameter", "The api-version query parameter is required.")
        issued = parse_qs(urlsplit(registration.url).query)
        given = query.get("sig", [""])[0]
        if (
            not hmac.compare_digest(given.encode(), registration.sig.encode())
            or query.get("sp") != issued["sp"]
            or query.get("sv") != issued["sv"]
        ):
            return _error(
                self.options.bad_signature_status,
                "DirectApiInvalidAuthorizationSignature",
                "The provided callback signature is not valid.",
            )
        if request.method != "POST":
            return _error(405, "MethodNotAllowed", "callbacks are POSTs")
        raw = await request.read()
        headers = dict(request.headers)
        try:
            body = parse_body(headers.get("Content-Type"), raw, json_suffix_is_json=self.options.json_suffix_is_json)
        except ContentError as error:
            return _error(400, "InvalidRequestContent", str(error))
        with self.lock:
            if registration.state != "waiting":
                return _error(
                    self.options.repeat_callback_status,
                    "WorkflowRunActionCallbackNotWaiting",
                    "the action is not waiting for a callback",
                )
            registration.state = "delivered"
            registration.action.callbacks.append({"headers": headers, "body": body, "raw": raw})
        arrived = {"headers": headers, "body": body}

        def deliver() -> None:
            if not registration.arrived.done():
                registration.arrived.set_result(arrived)

        try:
            registration.loop.call_soon_threadsafe(deliver)
        except RuntimeError:  # the run is over
            return _error(
                self.options.repeat_callback_status, "WorkflowRunActionCallbackNotWaiting", "the run has ended"
            )
        return web.Response(status=self.options.callback_status)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


async def unsubscribe(
    sender: Sender, action: ActionResult, evaluate_unsubscribe: Callable[[], dict[str, Any] | None]
) -> None:
    """Send the unsubscribe request once (its failure does not change the action's status: a guess)."""
    try:
        spec = evaluate_unsubscribe()
    except ActionFailure:
        return
    if not spec:
        return
    method, url, headers, data, _ = request_parts(spec, sender.options)
    # The unsubscribe must go out even when the wait ended on cancel or timeout: a fresh, bounded waiter.
    fresh = Waiter(asyncio.Event(), None)
    answer = await sender.send(
        action,
        "unsubscribe",
        method,
        url,
        {**sender.engine_headers, **headers},
        data,
        RetryPolicy("none", 0, 0, 0, 0),
        fresh,
    )
    action.unsubscribe_status = answer.status if answer else None


async def run_webhook(
    sender: Sender,
    server: CallbackServer,
    action: ActionResult,
    subscribe: dict[str, Any],
    evaluate_unsubscribe: Callable[[], dict[str, Any] | None],
    waiter: Waiter,
    on_subscribed: Callable[[str], Awaitable[None] | None],
) -> dict[str, Any]:
    """Run an HttpWebhook action whose `subscribe` inputs are evaluated (listCallbackUrl() registered already)."""
    registration = server.find(action)
    if registration is None:
        raise ActionFailure(
            "InvalidTemplate", "the subscribe request does not use listCallbackUrl(), so no callback can ever arrive"
        )
    method, url, headers, data, auth = request_parts(subscribe, sender.options)
    policy = RetryPolicy.from_inputs(subscribe)
    answer = await sender.send(
        action, "subscribe", method, url, {**sender.engine_headers, **headers}, data, policy, waiter
    )
    if answer is None:
        raise ActionFailure("ServiceUnavailable", f"no answer to the subscribe request: {action.requests[-1].error}")
    if sender.options.on_subscribe_202 == "poll" and answer.status == 202 and answer.header("location"):
        answer = await follow_location(sender, action, answer, auth, policy, waiter)
    action.subscribe_status = answer.status
    if not 200 <= answer.status <= 299:
        server.close(registration)
        raise ActionFailure(
            "SubscribeFailed", f"the subscribe request answered {answer.status}", outputs_of(answer, sender.options)
        )
    notified = on_subscribed(registration.url)
    if notified is not None:
        await notified
    try:
        arrived: dict[str, Any] = await waiter.until(asyncio.shield(registration.arrived))
    except Interrupted:
        server.close(registration)
        await unsubscribe(sender, action, evaluate_unsubscribe)
        raise
    await unsubscribe(sender, action, evaluate_unsubscribe)
    return arrived
