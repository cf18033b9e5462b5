"""``python -m devhost``: run a Python v2 Azure Functions app locally."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from azure.core.exceptions import AzureError

from devhost.host import HostOptions, serve
from devhost.keys import REDACTOR
from devhost.settings import ConfigurationError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devhost", description="Local Azure Functions host (Python v2)")
    parser.add_argument("--port", type=int, required=True, help="HTTP port (0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--app-dir", type=Path, default=Path.cwd(), help="app directory (default: cwd)")
    parser.add_argument(
        "--lease-seconds", type=int, default=60, help="queue message visibility lease while running (default 60)"
    )
    parser.add_argument(
        "--keys-file",
        type=Path,
        default=None,
        help="enforce authLevel with the function keys in this JSON file (default: the DEVHOST_KEYS_FILE setting;"
        " unset: keys are not checked, like func start)",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level (default INFO)"
    )
    args = parser.parse_args(argv)
    if args.lease_seconds < 1:
        parser.error("--lease-seconds must be >= 1")
    return args


class RedactingFormatter(logging.Formatter):
    """Every log line, tracebacks included, without function keys (devhost.keys.Redactor)."""

    def format(self, record: logging.LogRecord) -> str:
        return REDACTOR.redact(super().format(record))


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level), handlers=[handler])
    if level != "DEBUG":
        # the Azure SDK logs every HTTP request at INFO
        logging.getLogger("azure").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level)
    options = HostOptions(
        port=args.port,
        host=args.host,
        app_dir=args.app_dir.resolve(),
        lease_seconds=args.lease_seconds,
        keys_file=args.keys_file.resolve() if args.keys_file is not None else None,
    )
    try:
        return asyncio.run(serve(options))
    except ConfigurationError as exc:
        logging.getLogger("devhost").error("startup failed: %s", exc)
        return 1
    except (OSError, AzureError) as exc:
        logging.getLogger("devhost").error("startup failed: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
