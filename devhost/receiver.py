"""A tiny webhook receiver for local runs: verifies each POST with the `standardwebhooks` package and reads it
as a CloudEvent with the `cloudevents` package, in either content mode (binary: `ce-*` headers and the record
as an application/json body; structured: the whole event as application/cloudevents+json).

    .venv/bin/python -m devhost.receiver --port 7073 [--secret whsec_...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cloudevents.exceptions import GenericException
from cloudevents.http import from_http
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from .services import DEV_WEBHOOK_SECRET


def make_handler(secret: str) -> type[BaseHTTPRequestHandler]:
    verifier = Webhook(secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                verifier.verify(body, headers)
                event = from_http(headers, body)
            except WebhookVerificationError as exc:
                print(f"webhook REJECTED ({exc}) id={headers.get('webhook-id')}", flush=True)
                self.send_response(401)
            except GenericException as exc:
                print(f"webhook verified but not a CloudEvent ({type(exc).__name__})", flush=True)
                self.send_response(400)
            else:
                mode = "binary" if "ce-specversion" in headers else "structured"
                data: Any = event.data if isinstance(event.data, dict) else {}
                print(
                    f"webhook verified ({mode}): type={event['type']} id={event['id']} "
                    f"operation={event.get('subject')} result={json.dumps(data.get('result'))} "
                    f"error={(data.get('error') or {}).get('code')}",
                    flush=True,
                )
                self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print and verify Excel Async Bridge webhooks")
    parser.add_argument("--port", type=int, default=7073)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--secret", default=os.environ.get("WEBHOOK_SECRET", DEV_WEBHOOK_SECRET).split()[0])
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(args.secret))
    print(f"receiver listening on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
