"""Wires settings, the app, the HTTP server and queue listeners together."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from devhost.easyauth import EasyAuth, EasyAuthConfig, enable_for_app
from devhost.http_server import HttpHost
from devhost.keys import REDACTOR, Secrets, keys_file_path, load_keys_file
from devhost.loader import LoadedApp, load_app
from devhost.queue_listener import QueueListener
from devhost.settings import apply_local_settings
from devhost.storage import QueueClients
from devhost.telemetry import configure as configure_telemetry
from devhost.timers import TimerRunner

logger = logging.getLogger("devhost")

DRAIN_SECONDS = 10.0
DEFAULT_THREADS = 64


@dataclass(frozen=True)
class HostOptions:
    port: int
    host: str = "127.0.0.1"
    app_dir: Path = Path(".")
    lease_seconds: int = 60
    drain_seconds: float = DRAIN_SECONDS
    keys_file: Path | None = None  # --keys-file; else the DEVHOST_KEYS_FILE setting


def load_secrets(app_dir: Path, override: Path | None = None) -> Secrets | None:
    """The function keys to enforce, or None (keys not checked, like func start). Call after prepare()."""
    path = keys_file_path(app_dir, os.environ, override)
    if path is None:
        return None
    secrets = load_keys_file(path)
    REDACTOR.add(secrets.values())
    return secrets


def prepare(app_dir: Path) -> LoadedApp:
    """Load settings into the environment, then import the app (order matters)."""
    applied = apply_local_settings(app_dir)
    if applied:
        logger.info("loaded %d setting(s) from local.settings.json", len(applied))
    spans = configure_telemetry(os.environ)  # before the app is imported: it finds this provider and keeps it
    if spans is not None:
        logger.info("recording spans to %s", spans)
    auth = EasyAuthConfig.from_env(os.environ)
    enable_for_app(auth)
    if auth is not None:
        logger.info(
            "App Service Authentication emulated: issuer %s, audiences %s", auth.issuer, ", ".join(auth.audiences)
        )
    return load_app(app_dir)


class Host:
    def __init__(self, loaded: LoadedApp, options: HostOptions) -> None:
        self.loaded = loaded
        self.options = options
        auth_config = EasyAuthConfig.from_env(os.environ)
        self.auth = EasyAuth(auth_config) if auth_config else None
        self.secrets = load_secrets(loaded.app_dir, options.keys_file)
        self.timers = {f.name.lower(): TimerRunner(f, str(loaded.app_dir)) for f in loaded.timer_functions}
        self.http = HttpHost(
            loaded.http_functions,
            loaded.host_config.route_prefix,
            str(loaded.app_dir),
            self.auth,
            self.secrets,
            admin_invoke=self.run_now,
        )
        self.clients = QueueClients()
        self.listeners: list[QueueListener] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> None:
        queue_options = self.loaded.host_config.queues
        for function in self.loaded.queue_functions:
            client = await self.clients.queue(function.connection, function.queue_name)
            poison = await self.clients.queue(function.connection, f"{function.queue_name}-poison")
            self.listeners.append(
                QueueListener(
                    function,
                    client,
                    poison,
                    queue_options,
                    lease_seconds=self.options.lease_seconds,
                    function_directory=str(self.loaded.app_dir),
                )
            )
        self._runner = web.AppRunner(self.http.make_app(), access_log=None, shutdown_timeout=self.options.drain_seconds)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.options.host, self.options.port)
        await site.start()
        port = self.options.port
        for address in self._runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                port = int(address[1])
                break
        self.base_url = f"http://{self.options.host}:{port}"
        for listener in self.listeners:
            listener.start()
        for runner in self.timers.values():
            runner.start()
        if self.loaded.http_functions and self.secrets is None:
            logger.info("HTTP auth levels are not enforced locally (function keys are ignored, like func start)")
        elif self.secrets is not None:
            names = {f.name.lower() for f in self.loaded.http_functions}
            for extra in sorted(set(self.secrets.function_keys) - names):
                logger.warning("keys file has keys for %s, which is not an HTTP function of this app", extra)
            logger.info(
                "HTTP auth levels enforced: master key, %d host key(s), %d system key(s), keys for %d function(s)",
                len(self.secrets.host_keys),
                len(self.secrets.system_keys),
                len(self.secrets.function_keys),
            )

    def run_now(self, name: str, _input: str) -> bool:
        """The admin API's manual run: timer functions (the host matches names case-insensitively)."""
        runner = self.timers.get(name.lower())
        if runner is None:
            return False
        runner.trigger_now()
        return True

    def describe(self) -> list[str]:
        lines: list[str] = []
        prefix = self.loaded.host_config.route_prefix
        for f in self.loaded.http_functions:
            methods = ",".join(sorted(f.methods)) if f.methods else "ALL"
            path = "/".join(p for p in (prefix, f.route) if p)
            lines.append(f"  {f.name}: httpTrigger [{methods}] {self.base_url}/{path}")
        for q in self.loaded.queue_functions:
            how = self.clients.describe(q.connection)
            lines.append(f"  {q.name}: queueTrigger queue={q.queue_name} connection={q.connection} ({how})")
        for t in self.loaded.timer_functions:
            lines.append(
                f"  {t.name}: timerTrigger schedule={t.schedule.expression!r} "
                f"(run now: POST {self.base_url}/admin/functions/{t.name})"
            )
        return lines

    async def stop(self) -> bool:
        """Stop receiving, drain in-flight work (bounded), close clients. Returns True if drained cleanly."""
        deadline = time.monotonic() + self.options.drain_seconds
        await asyncio.gather(*(listener.stop_receiving() for listener in self.listeners))
        await asyncio.gather(*(runner.stop() for runner in self.timers.values()))
        if self.auth is not None:
            await self.auth.close()
        clean = True
        if self._runner is not None:
            # stops accepting connections, waits for in-flight requests up to shutdown_timeout
            await self._runner.cleanup()
            if self.http.in_flight:
                clean = False
        for listener in self.listeners:
            remaining = max(0.0, deadline - time.monotonic())
            if not await listener.drain(remaining):
                logger.warning("queue function %s still running at shutdown deadline", listener.function.name)
                listener.cancel_in_flight()
                clean = False
        with contextlib.suppress(Exception):
            await self.clients.close()
        return clean


async def serve(options: HostOptions) -> int:
    loaded = prepare(options.app_dir)
    host = Host(loaded, options)
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    # like the Python worker's PYTHON_THREADPOOL_THREAD_COUNT: room for sync functions running concurrently
    try:
        threads = int(os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT") or DEFAULT_THREADS)
    except ValueError:
        threads = DEFAULT_THREADS
    loop.set_default_executor(
        concurrent.futures.ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="devhost-fn")
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_event.set)
    try:
        await host.start()
    except BaseException:
        await host.stop()
        raise
    for line in host.describe():
        print(line, flush=True)
    if loaded.skipped:
        print(f"  (skipped unsupported functions: {', '.join(loaded.skipped)})", flush=True)
    # the last line of the start: whoever waits for it (devhost.services.start_process) has the listing too
    print(f"devhost listening on {host.base_url}", flush=True)
    await stop_event.wait()
    logger.info("shutting down")
    clean = await host.stop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(sig)
    if not clean:
        # Sync functions stuck in worker threads would block interpreter exit; leave now.
        logger.warning("in-flight invocations did not finish within %.0fs; exiting", options.drain_seconds)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    logger.info("stopped")
    return 0
