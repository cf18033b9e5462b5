"""A tiny OpenID issuer for tests: discovery + JWKS over http on 127.0.0.1, and signed tokens on demand."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

TENANT = "11111111-2222-3333-4444-555555555555"
AUDIENCE = "api://excel-bridge"
KID = "test-key-1"


class Issuer:
    """A tiny OpenID issuer: discovery + JWKS over http on 127.0.0.1, and a way to mint tokens."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": KID, "use": "sig", "alg": "RS256"})
        documents: dict[str, Any] = {}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = documents.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(body).encode() if body is not None else b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.issuer = f"{base}/{TENANT}/v2.0"
        documents[f"/{TENANT}/v2.0/.well-known/openid-configuration"] = {
            "issuer": self.issuer,
            "jwks_uri": f"{base}/{TENANT}/discovery/v2.0/keys",
        }
        documents[f"/{TENANT}/discovery/v2.0/keys"] = {"keys": [jwk]}
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, *, key: Any = None, lifetime: float = 600, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "tid": TENANT,
            "oid": "user-oid-1",
            "preferred_username": "ada@contoso.example",
            "scp": "access_as_user",
            "roles": ["Operations.ReadAll"],
            "iat": now,
            "nbf": now,
            "exp": int(now + lifetime),
        }
        claims.update(overrides)
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": KID})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
