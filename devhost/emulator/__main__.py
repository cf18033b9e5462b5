"""``python -m devhost.emulator --port PORT``: run the emulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
import sys

from aiohttp import web

from . import DEFAULT_IDENTITY_HEADER, DEFAULT_TOKEN_LIFETIME
from .app import build_app
from .entra import DEFAULT_TENANT_ID


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devhost.emulator", description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="TCP port (0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--identity-header", default=DEFAULT_IDENTITY_HEADER)
    parser.add_argument("--token-lifetime", type=float, default=DEFAULT_TOKEN_LIFETIME, metavar="SECONDS")
    parser.add_argument("--tenant-id", default=DEFAULT_TENANT_ID, help="the emulated Entra tenant's id")
    parser.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate (chain) file")
    parser.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    return args


def server_ssl_context(cert: str, key: str) -> ssl.SSLContext:
    """A TLS server context for the emulator (TLS 1.2+)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


async def serve(
    host: str,
    port: int,
    identity_header: str,
    token_lifetime: float,
    tenant_id: str = DEFAULT_TENANT_ID,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    app = build_app(identity_header, token_lifetime, tenant_id)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        bound_port = port
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                bound_port = int(address[1])
                break
        scheme = "https" if ssl_context is not None else "http"
        print(f"emulator listening on {scheme}://{host}:{bound_port}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    context = server_ssl_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    asyncio.run(serve(args.host, args.port, args.identity_header, args.token_lifetime, args.tenant_id, context))
    return 0


if __name__ == "__main__":
    sys.exit(main())
