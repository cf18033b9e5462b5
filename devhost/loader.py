"""Import a Python v2 Functions app and read its metadata and host.json."""

from __future__ import annotations

import asyncio
import copy
import importlib
import inspect
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func

from devhost.ncrontab import Schedule, ScheduleError
from devhost.ncrontab import parse as parse_schedule
from devhost.settings import STORAGE_SETTING, ConfigurationError, resolve_setting_expression

logger = logging.getLogger("devhost.loader")

HOST_JSON = "host.json"
HOST_ENV_PREFIX = "azurefunctionsjobhost__"
DEFAULT_SCRIPT = "function_app.py"

UserFunction = Callable[..., Any]

_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<h>\d+):(?P<m>\d+)(?::(?P<s>\d+(?:\.\d+)?))?$")


@dataclass(frozen=True)
class QueueOptions:
    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0
    max_polling_interval: float = 2.0
    message_encoding: str = "base64"


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    queues: QueueOptions = field(default_factory=QueueOptions)


@dataclass(frozen=True)
class HttpFunction:
    name: str
    binding_name: str
    route: str
    methods: frozenset[str] | None
    auth_level: str
    user_function: UserFunction
    wants_context: bool


@dataclass(frozen=True)
class QueueFunction:
    name: str
    binding_name: str
    queue_name: str
    connection: str
    user_function: UserFunction
    wants_context: bool


@dataclass(frozen=True)
class TimerFunction:
    """A timerTrigger binding: ``schedule`` (NCRONTAB, may be a %setting%), ``runOnStartup``, ``useMonitor``
    (functions-bindings-timer.md, "Configuration"; the v2 decorator writes exactly these names)."""

    name: str
    binding_name: str
    schedule: Schedule
    run_on_startup: bool
    use_monitor: bool
    user_function: UserFunction
    wants_context: bool


@dataclass(frozen=True)
class LoadedApp:
    app_dir: Path
    host_config: HostConfig
    http_functions: tuple[HttpFunction, ...]
    queue_functions: tuple[QueueFunction, ...]
    skipped: tuple[str, ...] = ()
    timer_functions: tuple[TimerFunction, ...] = ()


class InvocationContext:
    """The small subset of ``azure.functions.Context`` that devhost provides."""

    def __init__(self, invocation_id: str, function_name: str, function_directory: str) -> None:
        self.invocation_id = invocation_id
        self.function_name = function_name
        self.function_directory = function_directory

    def __repr__(self) -> str:
        return f"InvocationContext(invocation_id={self.invocation_id!r}, function_name={self.function_name!r})"


async def invoke_user_function(fn: UserFunction, kwargs: Mapping[str, Any]) -> Any:
    """Await ``fn`` on the loop if it is a coroutine function, else run it in a worker thread."""
    if inspect.iscoroutinefunction(fn):
        return await fn(**kwargs)
    result = await asyncio.to_thread(fn, **kwargs)
    if inspect.isawaitable(result):
        return await result
    return result


# ---------------------------------------------------------------- host.json


def parse_timespan(value: Any) -> float:
    """Parse a .NET TimeSpan string (``[d.]hh:mm[:ss[.fff]]``) into seconds; numbers are seconds."""
    if isinstance(value, bool):
        raise ValueError(f"invalid TimeSpan: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    match = _TIMESPAN.match(text)
    if not match:
        raise ValueError(f"invalid TimeSpan: {value!r} (expected hh:mm:ss)")
    days = int(match.group("days") or 0)
    seconds = float(match.group("s") or 0)
    return days * 86400 + int(match.group("h")) * 3600 + int(match.group("m")) * 60 + seconds


def _ci_get(mapping: Mapping[str, Any], key: str) -> Any:
    for k, v in mapping.items():
        if k.lower() == key.lower():
            return v
    return None


def apply_env_overrides(config: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Apply ``AzureFunctionsJobHost__a__b=value`` overrides (case-insensitive) to a host.json dict."""
    result = copy.deepcopy(config)
    for env_key, value in sorted(environ.items()):
        if not env_key.lower().startswith(HOST_ENV_PREFIX):
            continue
        path = [p for p in env_key[len(HOST_ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        node = result
        for part in path[:-1]:
            existing = next((k for k in node if k.lower() == part.lower()), None)
            if existing is None or not isinstance(node[existing], dict):
                existing = existing or part
                node[existing] = {}
            node = node[existing]
        leaf = next((k for k in node if k.lower() == path[-1].lower()), path[-1])
        node[leaf] = value
    return result


def _as_int(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    try:
        return int(str(value).strip())
    except ValueError as exc:
        raise ConfigurationError(f"host.json: {name} must be an integer, got {value!r}") from exc


def _as_timespan(value: Any, name: str, default: float) -> float:
    if value is None:
        return default
    try:
        return parse_timespan(value)
    except ValueError as exc:
        raise ConfigurationError(f"host.json: {name}: {exc}") from exc


def parse_host_config(raw: Mapping[str, Any]) -> HostConfig:
    extensions = _ci_get(raw, "extensions") or {}
    http = _ci_get(extensions, "http") or {}
    queues = _ci_get(extensions, "queues") or {}
    prefix_raw = _ci_get(http, "routePrefix")
    route_prefix = "api" if prefix_raw is None else str(prefix_raw).strip("/")

    batch_size = _as_int(_ci_get(queues, "batchSize"), "batchSize", 16)
    if not 1 <= batch_size <= 32:
        raise ConfigurationError(f"host.json: queues.batchSize must be between 1 and 32, got {batch_size}")
    threshold = _as_int(_ci_get(queues, "newBatchThreshold"), "newBatchThreshold", batch_size // 2)
    max_dequeue = _as_int(_ci_get(queues, "maxDequeueCount"), "maxDequeueCount", 5)
    if max_dequeue < 1:
        raise ConfigurationError("host.json: queues.maxDequeueCount must be >= 1")
    encoding = str(_ci_get(queues, "messageEncoding") or "base64").lower()
    if encoding not in ("base64", "none"):
        raise ConfigurationError(f"host.json: queues.messageEncoding must be 'base64' or 'none', got {encoding!r}")
    max_poll = _as_timespan(_ci_get(queues, "maxPollingInterval"), "maxPollingInterval", 2.0)
    options = QueueOptions(
        batch_size=batch_size,
        new_batch_threshold=max(0, threshold),
        max_dequeue_count=max_dequeue,
        visibility_timeout=_as_timespan(_ci_get(queues, "visibilityTimeout"), "visibilityTimeout", 0.0),
        max_polling_interval=max(0.1, max_poll),
        message_encoding=encoding,
    )
    return HostConfig(route_prefix=route_prefix, queues=options)


def load_host_config(app_dir: Path, environ: Mapping[str, str] | None = None) -> HostConfig:
    env: Mapping[str, str] = os.environ if environ is None else environ
    path = app_dir / HOST_JSON
    raw: dict[str, Any] = {}
    if path.is_file():
        try:
            loaded: Any = json.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigurationError(f"{path}: top level must be a JSON object")
        raw = loaded
    else:
        logger.warning("no host.json in %s; using defaults", app_dir)
    return parse_host_config(apply_env_overrides(raw, env))


# ---------------------------------------------------------------- app import


def import_app(app_dir: Path, environ: Mapping[str, str] | None = None) -> func.FunctionRegister:
    """Import the app's script (``function_app.py`` by default) and return its FunctionApp."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    script = env.get("PYTHON_SCRIPT_FILE_NAME", DEFAULT_SCRIPT)
    module_name = Path(script).stem
    if not (app_dir / script).is_file():
        raise ConfigurationError(f"{app_dir / script} not found")
    app_dir_str = str(app_dir)
    if app_dir_str not in sys.path:
        sys.path.insert(0, app_dir_str)
    module = importlib.import_module(module_name)
    candidate = getattr(module, "app", None)
    if isinstance(candidate, func.FunctionRegister):
        return candidate
    for value in vars(module).values():
        if isinstance(value, func.FunctionRegister):
            return value
    raise ConfigurationError(f"{script} defines no azure.functions.FunctionApp instance")


def _wants_context(fn: UserFunction) -> bool:
    try:
        return "context" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _build_http(name: str, binding: Mapping[str, Any], fn: UserFunction) -> HttpFunction:
    methods_raw = binding.get("methods")
    methods: frozenset[str] | None = None
    if methods_raw:
        methods = frozenset(str(m).upper() for m in methods_raw)
    route = binding.get("route")
    return HttpFunction(
        name=name,
        binding_name=str(binding.get("name", "req")),
        route=str(route).strip("/") if route is not None else name,
        methods=methods,
        auth_level=str(binding.get("authLevel", "FUNCTION")),
        user_function=fn,
        wants_context=_wants_context(fn),
    )


def _build_queue(name: str, binding: Mapping[str, Any], fn: UserFunction, environ: Mapping[str, str]) -> QueueFunction:
    queue_raw = binding.get("queueName")
    if not queue_raw:
        raise ConfigurationError(f"function {name}: queueTrigger binding has no queueName")
    try:
        queue_name = resolve_setting_expression(str(queue_raw), environ)
    except ConfigurationError as exc:
        raise ConfigurationError(f"function {name}: queueName {queue_raw!r}: {exc}") from exc
    connection = str(binding.get("connection") or STORAGE_SETTING)
    if connection.startswith("%") and connection.endswith("%"):
        connection = resolve_setting_expression(connection, environ)
    return QueueFunction(
        name=name,
        binding_name=str(binding.get("name", "msg")),
        queue_name=queue_name,
        connection=connection,
        user_function=fn,
        wants_context=_wants_context(fn),
    )


def _flag(value: Any) -> bool:
    return value is True or str(value).strip().lower() == "true"


def _build_timer(name: str, binding: Mapping[str, Any], fn: UserFunction, environ: Mapping[str, str]) -> TimerFunction:
    raw = binding.get("schedule")
    if not raw:
        raise ConfigurationError(f"function {name}: timerTrigger binding has no schedule")
    try:
        text = resolve_setting_expression(str(raw), environ)
        schedule = parse_schedule(text)
    except (ConfigurationError, ScheduleError) as exc:
        raise ConfigurationError(f"function {name}: schedule {raw!r}: {exc}") from exc
    use_monitor = binding.get("useMonitor")
    return TimerFunction(
        name=name,
        binding_name=str(binding.get("name", "timer")),
        schedule=schedule,
        run_on_startup=_flag(binding.get("runOnStartup", False)),
        use_monitor=True if use_monitor is None else _flag(use_monitor),  # the docs' default: true
        user_function=fn,
        wants_context=_wants_context(fn),
    )


def load_app(app_dir: Path, environ: Mapping[str, str] | None = None) -> LoadedApp:
    """Import the app and return its typed function metadata and host configuration.

    App settings must already be in the environment.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    app_dir = app_dir.resolve()
    host_config = load_host_config(app_dir, env)
    app = import_app(app_dir, env)
    functions = app.get_functions()  # may only be called once per app
    http_functions: list[HttpFunction] = []
    queue_functions: list[QueueFunction] = []
    timer_functions: list[TimerFunction] = []
    skipped: list[str] = []
    for function in functions:
        name = str(function.get_function_name())
        fn: UserFunction = function.get_user_function()
        bindings = [json.loads(raw) for raw in function.get_raw_bindings()]
        trigger = next((b for b in bindings if str(b.get("type", "")).lower().endswith("trigger")), None)
        trigger_type = str(trigger.get("type")) if trigger else "<none>"
        if env.get(f"AzureWebJobs.{name}.Disabled", "").strip().lower() in ("1", "true"):
            logger.warning("function %s is disabled (AzureWebJobs.%s.Disabled)", name, name)
            skipped.append(name)
            continue
        if trigger is not None and trigger_type == "httpTrigger":
            http_functions.append(_build_http(name, trigger, fn))
        elif trigger is not None and trigger_type == "queueTrigger":
            queue_functions.append(_build_queue(name, trigger, fn, env))
        elif trigger is not None and trigger_type == "timerTrigger":
            timer_functions.append(_build_timer(name, trigger, fn, env))
        else:
            logger.warning("function %s: trigger type %s is not supported by devhost; skipped", name, trigger_type)
            skipped.append(name)
            continue
        extra = [b.get("type") for b in bindings if b is not trigger and b.get("type") not in ("http",)]
        if extra:
            logger.warning("function %s: bindings %s are not supported by devhost and are ignored", name, extra)
    return LoadedApp(
        app_dir=app_dir,
        host_config=host_config,
        http_functions=tuple(http_functions),
        queue_functions=tuple(queue_functions),
        skipped=tuple(skipped),
        timer_functions=tuple(timer_functions),
    )
