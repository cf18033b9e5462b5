"""The run engine: parameters, trigger, runAfter ordering, control actions, run status.

Sources (MicrosoftDocs/azure-docs, articles/logic-apps/...):
- error-exception-handling.md, "Manage the run after behavior": "After an action finishes running, that action
  is marked with a status such as Succeeded, Failed, Skipped, or TimedOut"; "the `runAfter` property specifies
  that the predecessor action that must first finish and the statuses permitted for that predecessor before the
  successor action can run"; "When an action throws an unhandled error or exception, the action is marked
  Failed, and any successor action is marked Skipped."; "if a branch ends with a Skipped action, that branch's
  completion status is based on that skipped action's predecessor status. After the workflow run completes, the
  engine determines the entire run's status by evaluating all the branch statuses. If any branch ends in
  failure, the entire workflow run is marked Failed."
- same file, scopes: "By default, when all the scope's actions succeed, the scope's status is marked Succeeded.
  If the final action in a scope is marked Failed or Aborted, the scope's status is marked Failed." (the model
  evaluates a scope's branches like a run's; `scope_fails_on_any_failure=True` gives the stricter reading.)
  "The `result()` function returns the results from the top-level actions in a scoped action."
- logic-apps-workflow-actions-triggers.md: control actions "can only "run after" other actions that are in the
  same control workflow structure", yet "you can reference the `@body('Http')` expression from anywhere";
  If: "The actions in the `actions` or `else` objects get these statuses: "Succeeded" when they run and
  succeed, "Failed" when they run and fail, "Skipped" when the respective branch doesn't run"; Response: "When
  your workflow's execution reaches the Response action, but the incoming request has already received a
  response, the Response action is marked as "Failed" due to the conflict"; "The default code is "200 OK"".
- create-single-tenant-workflows / edit-app-settings-host-settings (Standard): workflow.json is
  `{"definition": ..., "kind": "Stateful" | "Stateless"}` and `@appsetting('<name>')` reads an app setting.
Parallel branches run one after another here (in definition order), never at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from tests.logicapps.content import iso_duration_seconds
from tests.logicapps.expressions import (
    ExpressionError,
    UnsupportedExpression,
    evaluate_condition,
    evaluate_value,
)
from tests.logicapps.http_action import ActionFailure, Sender, run_http
from tests.logicapps.options import Interrupted, Options, Waiter
from tests.logicapps.results import ActionResult, RunResult
from tests.logicapps.webhook_action import CallbackServer, run_webhook

SUPPORTED_TYPES = {
    "http": "Http",
    "httpwebhook": "HttpWebhook",
    "response": "Response",
    "if": "If",
    "scope": "Scope",
    "compose": "Compose",
    "terminate": "Terminate",
}
FINISHED = {"Succeeded", "Failed", "Skipped", "TimedOut", "Cancelled"}


class UnsupportedDefinition(Exception):
    """A definition this model cannot run faithfully (an unknown action type, a runAfter to nowhere, ...)."""


class _RunCancelled(Exception):
    pass


class _RunTerminated(Exception):
    def __init__(self, status: str, error: dict[str, Any] | None) -> None:
        super().__init__(status)
        self.status = status
        self.error = error


def new_run_name() -> str:
    """Shaped like Logic Apps run names, e.g. 08584737551867954143243946780CU57."""
    digits = "".join(secrets.choice("0123456789") for _ in range(25))
    return f"0858{digits}CU{secrets.randbelow(100):02d}"


def _operation_options(definition: Mapping[str, Any]) -> set[str]:
    return {o.strip().lower() for o in str(definition.get("operationOptions") or "").split(",") if o.strip()}


def _children(definition: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The action maps directly inside a control action."""
    groups = []
    if isinstance(definition.get("actions"), dict):
        groups.append(definition["actions"])
    if isinstance(definition.get("else"), dict) and isinstance(definition["else"].get("actions"), dict):
        groups.append(definition["else"]["actions"])
    return groups


def validate(actions: Mapping[str, Any], seen: set[str]) -> None:
    for name, action in actions.items():
        if name in seen:
            raise UnsupportedDefinition(f"two actions are named {name!r}")
        seen.add(name)
        kind = str(action.get("type", "")).lower()
        if kind not in SUPPORTED_TYPES:
            raise UnsupportedDefinition(
                f"action {name!r} has type {action.get('type')!r}, which the model does not "
                f"run (supported: {sorted(SUPPORTED_TYPES.values())})"
            )
        for predecessor, statuses in (action.get("runAfter") or {}).items():
            if predecessor not in actions:
                raise UnsupportedDefinition(
                    f"{name!r} runs after {predecessor!r}, which is not in the same "
                    "container (workflow-actions-triggers.md: only actions in the same "
                    "control structure)"
                )
            bad = [s for s in statuses if s.lower() not in ("succeeded", "failed", "skipped", "timedout")]
            if bad:
                raise UnsupportedDefinition(f"{name!r} runAfter {predecessor!r} lists unknown statuses {bad}")
        for group in _children(action):
            validate(group, seen)


class _Run:
    """One run, executed on its own event loop thread."""

    def __init__(
        self,
        engine: LogicAppsEngine,
        definition: dict[str, Any],
        kind: str | None,
        parameters: Mapping[str, Any],
        trigger_body: Any,
        trigger_headers: Mapping[str, str],
        on_subscribed: Callable[[str, str], None],
    ) -> None:
        self.engine = engine
        self.options = engine.options
        self.definition = definition
        self.kind = kind  # None: Consumption definition; "Stateful"/"Stateless": Standard workflow.json
        self.run_name = new_run_name()
        self.on_subscribed_hook = on_subscribed
        self.actions: dict[str, ActionResult] = {}
        self.containers: dict[str, list[str]] = {}  # control action -> its top-level inner action names
        self.response: tuple[int, Any] | None = None
        self.response_headers: dict[str, str] = {}
        self.cancel_event: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.cancelled = False
        self.terminated: _RunTerminated | None = None
        self.server = engine.callbacks
        self.sender: Sender | None = None
        self.trigger_name = next(iter(definition.get("triggers") or {"manual": {}}))
        self.trigger_value = {
            "name": self.trigger_name,
            "status": "Succeeded",
            "outputs": {"headers": dict(trigger_headers), "body": trigger_body},
        }
        self._register_actions(definition.get("actions") or {})
        self.parameters: dict[str, Any] = {}
        self.parameters = self._resolve_parameters(parameters)

    # ------------------------------------------------------------ setup

    def _register_actions(self, actions: Mapping[str, Any]) -> None:
        for name, action in actions.items():
            self.actions[name] = ActionResult(name, SUPPORTED_TYPES[str(action["type"]).lower()])
            inner: list[str] = []
            for group in _children(action):
                inner.extend(group)
                self._register_actions(group)
            if inner:
                self.containers[name] = inner

    def _resolve_parameters(self, given: Mapping[str, Any]) -> dict[str, Any]:
        declared = self.definition.get("parameters") or {}
        unknown = set(given) - set(declared)
        if unknown and self.kind is None:
            raise UnsupportedDefinition(f"parameters {sorted(unknown)} are not declared in the definition")
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            if name in given:
                continue
            if "defaultValue" not in spec:
                raise UnsupportedDefinition(f"parameter {name!r} has no defaultValue and no value was given")
            values[name] = copy.deepcopy(spec["defaultValue"])
        # Standard parameters.json values may be "@appsetting('NAME')" (edit-app-settings-host-settings.md);
        # values given to a Consumption run are taken as they are.
        context = _Context(self, None)
        for name, value in given.items():
            values[name] = evaluate_value(value, context) if self.kind is not None else copy.deepcopy(value)
        return values

    # ------------------------------------------------------------ expression context

    def workflow_path(self) -> str:
        if self.kind is not None:
            return f"/runtime/webhooks/workflow/api/management/workflows/{self.engine.workflow_name}"
        return f"/workflows/{self.engine.workflow_id}"

    def workflow_value(self) -> dict[str, Any]:
        resource = (
            f"/subscriptions/{self.engine.subscription_id}/resourceGroups/{self.engine.resource_group}"
            f"/providers/Microsoft.Logic/workflows/{self.engine.workflow_name}"
        )
        return {
            "id": resource,
            "name": self.engine.workflow_name,
            "type": "Microsoft.Logic/workflows",
            "location": self.engine.location,
            "run": {
                "id": f"{resource}/runs/{self.run_name}",
                "name": self.run_name,
                "type": "Microsoft.Logic/workflows/runs",
            },
        }

    def engine_headers(self, action: str, definition: Mapping[str, Any]) -> dict[str, str]:
        if "suppressworkflowheaders" in _operation_options(definition):
            return {}
        return {
            "User-Agent": f"azure-logic-apps/1.0 (workflow {self.engine.workflow_id}; version 08584000000000000000)",
            "x-ms-workflow-name": self.engine.workflow_name,
            "x-ms-workflow-run-id": self.run_name,
            "x-ms-workflow-operation-name": action,
            "x-ms-client-tracking-id": self.run_name,
            "x-ms-tracking-id": str(uuid.uuid4()),
            "x-ms-execution-location": self.engine.location,
        }

    # ------------------------------------------------------------ main

    async def main(self, ready: threading.Event) -> RunResult:
        self.loop = asyncio.get_running_loop()
        self.cancel_event = asyncio.Event()
        ready.set()
        try:
            async with aiohttp.ClientSession(auto_decompress=True) as session:
                self.sender = Sender(session, self.options, {})
                try:
                    await self.run_container(list((self.definition.get("actions") or {}).items()))
                except _RunCancelled:
                    self.cancelled = True
                except _RunTerminated as terminated:
                    self.terminated = terminated
                    # workflow-actions-triggers.md, Terminate: "cancels any actions in progress, skips any
                    # remaining actions"
                    for action in self.actions.values():
                        if action.status == "Running":
                            action.status = "Cancelled"
                        elif action.status not in FINISHED:
                            action.status = "Skipped"
        finally:
            for action in self.actions.values():
                registration = self.server.find(action)
                if registration is not None:
                    self.server.close(registration)
        for action in self.actions.values():
            if action.status not in FINISHED:
                action.status = "Cancelled"
        top = self.definition.get("actions") or {}
        status = "Cancelled" if self.cancelled else self.container_status(list(top), top)
        error = None
        if self.terminated is not None:
            status = self.terminated.status
            error = str(self.terminated.error) if self.terminated.error else None
        return RunResult(self.run_name, status, self.actions, self.response, self.response_headers, error)

    def container_status(self, names: list[str], definitions: Mapping[str, Any]) -> str:
        """Branch evaluation (error-exception-handling.md): a branch's status is its last action's, a Skipped
        last action taking its predecessors'; Failed when any branch failed."""
        referenced = {p for n in names for p in (definitions[n].get("runAfter") or {})}
        terminals = [n for n in names if n not in referenced]
        memo: dict[str, str] = {}

        def resolve(name: str) -> str:
            if name in memo:
                return memo[name]
            status = self.actions[name].status
            if status == "Skipped":
                predecessors = list(definitions[name].get("runAfter") or {})
                resolved = [resolve(p) for p in predecessors]
                status = "Failed" if "Failed" in resolved else "Cancelled" if "Cancelled" in resolved else "Succeeded"
            elif status == "TimedOut" or self.actions[name].code == "ActionTimedOut":
                status = "Failed"
            memo[name] = status
            return status

        results = [resolve(n) for n in terminals]
        if "Failed" in results:
            return "Failed"
        if "Cancelled" in results:
            return "Cancelled"
        return "Succeeded"

    async def run_container(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        pending = dict(items)
        while pending:
            ready = next(
                (
                    n
                    for n, d in pending.items()
                    if all(self.actions[p].status in FINISHED for p in (d.get("runAfter") or {}))
                ),
                None,
            )
            if ready is None:
                raise UnsupportedDefinition(f"actions {sorted(pending)} wait on each other (a runAfter cycle)")
            definition = pending.pop(ready)
            assert self.cancel_event is not None
            if self.cancel_event.is_set():
                raise _RunCancelled
            run_after = definition.get("runAfter") or {}
            runnable = all(
                self.actions[p].status.lower() in {s.lower() for s in allowed} for p, allowed in run_after.items()
            )
            if runnable:
                await self.run_action(ready, definition)
            else:
                self.skip(ready, definition)

    def skip(self, name: str, definition: Mapping[str, Any]) -> None:
        self.actions[name].status = "Skipped"
        for group in _children(definition):
            for inner, inner_definition in group.items():
                self.skip(inner, inner_definition)

    def evaluate(self, value: Any, action: str) -> Any:
        try:
            return evaluate_value(value, _Context(self, action))
        except ExpressionError as error:
            raise ActionFailure(
                "InvalidTemplate", f"Unable to process template language expressions in action '{action}': {error}"
            ) from None

    async def run_action(self, name: str, definition: dict[str, Any]) -> None:
        result = self.actions[name]
        result.status = "Running"
        result.start_time = time.time()
        kind = result.type
        timeout = (definition.get("limit") or {}).get("timeout")
        assert self.cancel_event is not None and self.sender is not None
        deadline = time.monotonic() + iso_duration_seconds(str(timeout)) if timeout else None
        waiter = Waiter(self.cancel_event, deadline)
        try:
            if kind == "Http":
                inputs = self.evaluate(definition.get("inputs") or {}, name)
                result.inputs = inputs
                # connectors-native-http.md: stateless workflows do not poll.
                async_pattern = (
                    "disableasyncpattern" not in _operation_options(definition)
                    and (self.kind or "Stateful").lower() != "stateless"
                )
                sender = Sender(self.sender.session, self.options, self.engine_headers(name, definition))
                result.outputs = await run_http(sender, result, definition, inputs, waiter, async_pattern)
                result.status = "Succeeded"
            elif kind == "HttpWebhook":
                await self.run_webhook_action(name, definition, result, waiter)
            elif kind == "Response":
                inputs = self.evaluate(definition.get("inputs") or {}, name)
                result.inputs = inputs
                status_code = int(inputs.get("statusCode", 200))
                if self.response is not None:
                    raise ActionFailure("ActionResponseAlreadySent", "the request already received a response")
                self.response = (status_code, inputs.get("body"))
                self.response_headers = {str(k): str(v) for k, v in (inputs.get("headers") or {}).items()}
                result.outputs = {
                    "statusCode": status_code,
                    "headers": self.response_headers,
                    "body": inputs.get("body"),
                }
                result.status = "Succeeded"
            elif kind == "Compose":
                result.inputs = self.evaluate(definition.get("inputs"), name)
                result.outputs = result.inputs
                result.status = "Succeeded"
            elif kind == "Terminate":
                # workflow-actions-triggers.md, Terminate: "stops the run for a workflow instance, cancels any
                # actions in progress, skips any remaining actions, and returns the specified status"
                inputs = self.evaluate(definition.get("inputs") or {}, name)
                result.inputs = inputs
                run_status = str(inputs.get("runStatus", ""))
                if run_status not in ("Failed", "Cancelled", "Succeeded"):
                    raise UnsupportedDefinition(f"Terminate {name!r}: runStatus {run_status!r}")
                result.status = "Succeeded"
                result.end_time = time.time()
                raise _RunTerminated(run_status, inputs.get("runError") if run_status == "Failed" else None)
            elif kind == "If":
                await self.run_if(name, definition, result)
            elif kind == "Scope":
                inner = definition.get("actions") or {}
                await self.run_container(list(inner.items()))
                result.status = self.scope_status(list(inner), inner)
        except ActionFailure as failure:
            result.status = "Failed"
            result.code = failure.code
            result.error = {"code": failure.code, "message": str(failure)}
            if failure.outputs is not None:
                result.outputs = failure.outputs
        except Interrupted as interrupted:
            if interrupted.reason == "cancel":
                result.status = "Cancelled"
                result.end_time = time.time()
                raise _RunCancelled from None
            result.status = self.options.timeout_status
            result.code = "ActionTimedOut"
            result.error = {"code": "ActionTimedOut", "message": f"the action did not finish within {timeout}"}
        result.end_time = time.time()

    def scope_status(self, names: list[str], definitions: Mapping[str, Any]) -> str:
        if self.options.scope_fails_on_any_failure and any(
            self.actions[n].status in ("Failed", "TimedOut") for n in self.all_inside(names, definitions)
        ):
            return "Failed"
        return self.container_status(names, definitions)

    def all_inside(self, names: list[str], definitions: Mapping[str, Any]) -> list[str]:
        out = []
        for n in names:
            out.append(n)
            for group in _children(definitions[n]):
                out.extend(self.all_inside(list(group), group))
        return out

    async def run_if(self, name: str, definition: dict[str, Any], result: ActionResult) -> None:
        then_actions = definition.get("actions") or {}
        else_actions = (definition.get("else") or {}).get("actions") or {}
        try:
            outcome = evaluate_condition(definition.get("expression"), _Context(self, name))
        except ExpressionError as error:
            for inner, inner_definition in {**then_actions, **else_actions}.items():
                self.skip(inner, inner_definition)
            raise ActionFailure("InvalidTemplate", f"Unable to process the condition of '{name}': {error}") from None
        result.inputs = {"expressionResult": outcome}
        taken, other = (then_actions, else_actions) if outcome else (else_actions, then_actions)
        for inner, inner_definition in other.items():
            self.skip(inner, inner_definition)
        await self.run_container(list(taken.items()))
        result.status = self.scope_status(list(taken), taken)

    async def run_webhook_action(
        self, name: str, definition: dict[str, Any], result: ActionResult, waiter: Waiter
    ) -> None:
        assert self.sender is not None
        raw_inputs = definition.get("inputs") or {}
        subscribe = self.evaluate(raw_inputs.get("subscribe") or {}, name)
        result.inputs = {"subscribe": subscribe}

        def evaluate_unsubscribe() -> dict[str, Any] | None:
            spec = raw_inputs.get("unsubscribe")
            return self.evaluate(spec, name) if spec else None

        def subscribed(url: str) -> None:
            result.callback_url = url
            self.on_subscribed_hook(name, url)

        sender = Sender(self.sender.session, self.options, self.engine_headers(name, definition))
        arrived = await run_webhook(sender, self.server, result, subscribe, evaluate_unsubscribe, waiter, subscribed)
        result.outputs = arrived
        result.status = "Succeeded"

    def callback_url_for(self, action: str | None) -> str:
        if action is None or self.actions[action].type != "HttpWebhook":
            raise ExpressionError("listCallbackUrl() is only modelled inside an HttpWebhook action")
        api_version = "2018-11-01" if self.kind is not None else "2016-10-01"
        return self.server.register(self.actions[action], self.workflow_path(), self.run_name, api_version)


class _Context:
    """What expressions read, seen from one action."""

    def __init__(self, run: _Run, action: str | None) -> None:
        self.run = run
        self.current = action

    def parameter(self, name: str) -> Any:
        if name not in self.run.parameters:
            raise ExpressionError(f"The workflow parameter '{name}' is not found.")
        return self.run.parameters[name]

    def appsetting(self, name: str) -> Any:
        if name not in self.run.engine.app_settings:
            raise ExpressionError(f"The app setting '{name}' is not found.")
        return self.run.engine.app_settings[name]

    def workflow(self) -> dict[str, Any]:
        return self.run.workflow_value()

    def trigger(self) -> dict[str, Any]:
        return self.run.trigger_value

    def _finished(self, name: str) -> ActionResult:
        result = self.run.actions.get(name)
        if result is None:
            raise ExpressionError(f"The action '{name}' is not defined in the template.")
        if result.status not in FINISHED:
            raise ExpressionError(f"The action '{name}' has not run yet (status {result.status}).")
        return result

    def action(self, name: str) -> dict[str, Any]:
        return self._finished(name).as_expression_value()

    def outputs(self, name: str) -> Any:
        # A Skipped action has no outputs: null (a guess; a Skipped action's body is not documented).
        return self._finished(name).outputs

    def result(self, name: str) -> list[dict[str, Any]]:
        if name not in self.run.containers:
            raise ExpressionError(f"result('{name}') needs a Scope, If or loop action")
        self._finished(name)
        return [self.run.actions[n].as_expression_value() for n in self.run.containers[name]]

    def list_callback_url(self) -> str:
        return self.run.callback_url_for(self.current)


class RunHandle:
    """A run in progress (on its own thread): wait for it, cancel it, or learn its callback URLs."""

    def __init__(self, run: _Run, on_subscribed: Callable[[str, str], None] | None = None) -> None:
        self._run = run
        self._on_subscribed_user = on_subscribed
        self.run_name = run.run_name
        self._ready = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Condition()
        self._subscribed: dict[str, str] = {}
        self._result: RunResult | None = None
        self._error: BaseException | None = None
        run.on_subscribed_hook = self._on_subscribed
        self._thread = threading.Thread(target=self._main, name=f"logicapps-run-{run.run_name}", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _main(self) -> None:
        try:
            self._result = asyncio.run(self._run.main(self._ready))
        except BaseException as error:  # handed to wait()
            self._error = error
        finally:
            self._ready.set()
            self._done.set()
            with self._lock:
                self._lock.notify_all()

    def _on_subscribed(self, action: str, url: str) -> None:
        with self._lock:
            self._subscribed[action] = url
            self._lock.notify_all()
        if self._on_subscribed_user is not None:
            self._on_subscribed_user(action, url)  # on the run's thread: keep it short

    def callback_url(self, action: str, timeout: float = 30.0) -> str:
        """The callback URL of HttpWebhook `action`, once its subscribe request was answered 2xx."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while action not in self._subscribed:
                if self._done.is_set():
                    raise AssertionError(f"the run ended before {action!r} subscribed: {self._describe()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{action!r} did not subscribe within {timeout}s: {self._describe()}")
                self._lock.wait(left)
            return self._subscribed[action]

    def _describe(self) -> str:
        return str({n: a.status for n, a in self._run.actions.items()})

    def cancel(self) -> None:
        """Cancel the run, as the portal's "Cancel run" does (a waiting webhook unsubscribes)."""
        loop, event = self._run.loop, self._run.cancel_event
        if loop is not None and event is not None and not self._done.is_set():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(event.set)

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float = 120.0) -> RunResult:
        """The run's result; past `timeout` the run is canceled and AssertionError names the stuck actions."""
        if not self._done.wait(timeout):
            stuck = self._describe()
            self.cancel()
            self._done.wait(30)
            raise AssertionError(f"run {self.run_name} did not finish within {timeout}s (canceled): {stuck}")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


class LogicAppsEngine:
    """Runs workflow definitions against real HTTP endpoints the way Azure Logic Apps does (see the modules)."""

    def __init__(
        self,
        *,
        default_poll_interval: float = 20.0,
        retry_scale: float = 1.0,
        poll_scale: float = 1.0,
        on_subscribe_202: str = "accept",
        app_settings: Mapping[str, str] | None = None,
        workflow_name: str = "excel-bridge-flow",
        json_suffix_is_json: bool = False,
        timeout_status: str = "TimedOut",
        scope_fails_on_any_failure: bool = False,
        request_timeout: float = 120.0,
        token_provider: Callable[[str], str] | None = None,
        callback_status: int = 200,
        repeat_callback_status: int = 409,
        bad_signature_status: int = 401,
    ) -> None:
        if on_subscribe_202 not in ("accept", "poll"):
            raise ValueError("on_subscribe_202 is 'accept' or 'poll'")
        if timeout_status not in ("TimedOut", "Cancelled"):
            raise ValueError("timeout_status is 'TimedOut' or 'Cancelled'")
        self.options = Options(
            default_poll_interval=default_poll_interval,
            poll_scale=poll_scale,
            retry_scale=retry_scale,
            request_timeout=request_timeout,
            json_suffix_is_json=json_suffix_is_json,
            on_subscribe_202=on_subscribe_202,
            timeout_status=timeout_status,
            callback_status=callback_status,
            repeat_callback_status=repeat_callback_status,
            bad_signature_status=bad_signature_status,
            scope_fails_on_any_failure=scope_fails_on_any_failure,
        )
        if token_provider is not None:
            self.options.token_provider = token_provider
        self.callbacks = CallbackServer(self.options)
        self.app_settings = dict(app_settings or {})
        self.workflow_name = workflow_name
        self.workflow_id = uuid.uuid4().hex
        self.subscription_id = "00000000-0000-0000-0000-000000000000"
        self.resource_group = "rg-model"
        self.location = "westeurope"

    def start(
        self,
        definition_or_workflow_json: Mapping[str, Any],
        parameters: Mapping[str, Any] | None = None,
        trigger_body: Any = None,
        trigger_headers: Mapping[str, str] | None = None,
        on_subscribed: Callable[[str, str], None] | None = None,
    ) -> RunHandle:
        """Start a run on its own thread. `on_subscribed(action, callback_url)` is called once an HttpWebhook
        action's subscribe request was answered 2xx (RunHandle.callback_url() waits for the same moment)."""
        document = copy.deepcopy(dict(definition_or_workflow_json))
        if "definition" in document:
            # Standard workflow.json ({"definition", "kind"}) or an ARM/portal export ({"definition", "parameters"}).
            kind = document.get("kind")
            definition = document["definition"]
        else:
            kind, definition = None, document
        if kind is not None and str(kind).lower() not in ("stateful", "stateless"):
            raise UnsupportedDefinition(f"workflow kind {kind!r} is not Stateful or Stateless")
        validate(definition.get("actions") or {}, set())
        run = _Run(
            self,
            definition,
            kind,
            dict(parameters or {}),
            copy.deepcopy(trigger_body),
            dict(trigger_headers or {"Content-Type": "application/json"}),
            lambda a, u: None,
        )
        return RunHandle(run, on_subscribed)

    def run(
        self,
        definition_or_workflow_json: Mapping[str, Any],
        parameters: Mapping[str, Any] | None = None,
        trigger_body: Any = None,
        timeout: float = 120.0,
        trigger_headers: Mapping[str, str] | None = None,
    ) -> RunResult:
        """Run to the end (blocking). The callback server starts at the first listCallbackUrl(), lives to close()."""
        return self.start(definition_or_workflow_json, parameters, trigger_body, trigger_headers).wait(timeout)

    def close(self) -> None:
        """Stop the callback server (a daemon thread: it also ends with the process)."""
        self.callbacks.stop()

    def __enter__(self) -> LogicAppsEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["LogicAppsEngine", "RunHandle", "UnsupportedDefinition", "UnsupportedExpression"]
