"""The hostile requests, by family (issue 18). Each case is one raw HTTP request and what must hold for it:

- `refuse`: bad input. A 4xx, never a 5xx; when the app answers (not the HTTP layer refusing a request it cannot
  parse), an application/problem+json naming `field` when one is at fault; nothing stored, queued or sent to
  Graph (tests/hostile/test_hostile_input.py checks the table, the queues and the emulator's request log).
- `any`: input the bridge may take or refuse (an Excel cell may hold a line feed; a BOM before JSON is read as
  UTF-8): never a 5xx, and a refusal is a problem.

Every case names its own workbook item (`item`), so the emulator's log shows whether anything reached Graph for
it. `host` marks requests the HTTP server may refuse before any application sees them (a control character in
a header, a request line or header past its limits, a path its routes do not match): the answer may then be the
server's own 4xx, which in Azure is the front end's, not the app's problem+json.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

REFUSE, ANY = "refuse", "any"

# The control characters of the issue, by name: C0 (CR, LF, TAB, NUL), DEL, C1 (NEL, APC) and U+2028.
CONTROLS = {
    "CR": "\r",
    "LF": "\n",
    "TAB": "\t",
    "NUL": "\x00",
    "DEL": "\x7f",
    "NEL": "\x85",
    "C1-9F": "\x9f",
    "LS-2028": "\u2028",
}


@dataclass
class Case:
    id: str
    method: str
    target: bytes
    body: bytes | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    expect: str = REFUSE
    field: str | None = None  # the field a refusal must name (None: no single field is at fault)
    item: str = ""
    host: bool = False  # the HTTP layer may refuse it before the app (a malformed request)
    statuses: tuple[int, ...] = ()  # for REFUSE: the statuses allowed (default: any 4xx)


def new_item() -> str:
    return "01HOSTILE" + uuid.uuid4().hex.upper()[:17]


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _start(item: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "workbook": f"/me/drive/items/{item}",
        "action": "createTableRow",
        "parameters": {"table": "Table1", "values": [["a", 1]]},
    }
    body.update(fields)
    return body


JSON = [(b"Content-Type", b"application/json")]
OPERATIONS = b"/api/operations"
SUBSCRIPTIONS = b"/api/subscriptions"


def _post(case_id: str, body: dict[str, Any] | bytes, item: str, *, path: bytes = OPERATIONS, **kw: Any) -> Case:
    data = body if isinstance(body, bytes) else _json(body)
    return Case(case_id, "POST", path, data, list(JSON) + kw.pop("headers", []), item=item, **kw)


# --- control characters in every field, header and query parameter ------------------------------------------------


def control_characters(graph: str) -> Iterator[Case]:
    for name, char in CONTROLS.items():
        free_text = name == "LS-2028"  # a line separator is not a control character in free text
        item = new_item()
        yield _post(
            f"control {name} at the end of workbook",
            _start(item, workbook=f"/me/drive/items/{item}{char}"),
            item,
            field="workbook",
        )
        item = new_item()
        yield _post(
            f"control {name} inside workbook",
            _start(item, workbook=f"/me/drive/items/{item[:8]}{char}{item[8:]}"),
            item,
            field="workbook",
        )
        item = new_item()
        yield _post(f"control {name} in action", _start(item, action=f"createTableRow{char}"), item, field="action")
        for where, value in (("end", f"session-1{char}"), ("inside", f"sess{char}ion-1")):
            item = new_item()
            yield _post(
                f"control {name} at the {where} of sessionId", _start(item, sessionId=value), item, field="sessionId"
            )
        item = new_item()
        yield _post(
            f"control {name} in clientReference",
            _start(item, clientReference=f"ref{char}x"),
            item,
            field="clientReference",
            expect=ANY if free_text else REFUSE,
        )
        item = new_item()
        yield _post(
            f"control {name} in callbackUrl",
            _start(item, callbackUrl=f"https://hooks.example.com/a{char}b"),
            item,
            field="callbackUrl",
        )
        item = new_item()
        yield _post(
            f"control {name} in callbackFormat",
            _start(item, callbackUrl="https://hooks.example.com/cb", callbackFormat=f"binary{char}"),
            item,
            field="callbackFormat",
        )
        item = new_item()
        yield _post(
            f"control {name} in parameters.table",
            _start(item, parameters={"table": f"Table{char}1", "values": [[1]]}),
            item,
            field="parameters.table",
            expect=ANY if free_text else REFUSE,  # U+2028 is no control character: Graph judges a table's name
        )
        item = new_item()  # an Excel cell may hold any text (a line feed is a multi-line cell)
        yield _post(
            f"control {name} in a cell value",
            _start(item, parameters={"table": "T", "values": [[f"a{char}b"]]}),
            item,
            expect=ANY,
        )
        item = new_item()
        url = f"{graph}/me/drive/items/{item}/workbook/operations/op{char}1"
        yield _post(f"control {name} in operationUrl", {"operationUrl": url}, item, field="operationUrl")
        item = new_item()
        yield _post(
            f"control {name} in a subscription callbackUrl",
            {"callbackUrl": f"https://hooks.example.com/s{char}"},
            item,
            path=SUBSCRIPTIONS,
            field="callbackUrl",
        )
        item = new_item()
        yield _post(
            f"control {name} in subscription actions",
            {"callbackUrl": "https://hooks.example.com/s", "actions": [f"createSession{char}"]},
            item,
            path=SUBSCRIPTIONS,
            field="actions",
        )
        item = new_item()
        yield _post(
            f"control {name} in subscription statuses",
            {"callbackUrl": "https://hooks.example.com/s", "statuses": [f"failed{char}"]},
            item,
            path=SUBSCRIPTIONS,
            field="statuses",
        )
        # headers
        raw = char.encode("utf-8")
        item = new_item()
        yield _post(
            f"control {name} in Idempotency-Key",
            _start(item),
            item,
            field="Idempotency-Key",
            headers=[(b"Idempotency-Key", b"key" + raw + b"1")],
            host=True,  # the HTTP server may refuse a control character in a header itself
        )
        item = new_item()
        yield _post(
            f"control {name} in Content-Type",
            _start(item),
            item,
            field="Content-Type",
            expect=ANY,
            headers=[(b"Content-Type", b"application/json" + raw + b"x")],
            host=True,  # the HTTP server may refuse a control character in a header itself
        )
        item = new_item()
        yield _post(
            f"control {name} in traceparent",
            _start(item),
            item,
            expect=ANY,
            headers=[(b"traceparent", b"00-" + raw + b"0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")],
            host=True,  # the HTTP server may refuse a control character in a header itself
        )
        # query parameters and path segments (percent-encoded: what a URL can carry)
        encoded = quote(char, safe="").encode()
        yield Case(f"control {name} in top", "GET", b"/api/operations?top=1" + encoded, field="top")
        yield Case(f"control {name} in status", "GET", b"/api/operations?status=running" + encoded, field="status")
        yield Case(
            f"control {name} in continuationToken",
            "GET",
            b"/api/operations?continuationToken=eyJhZnRlciI6IjEifQ" + encoded,
            field="continuationToken",
        )
        yield Case(  # the host's route may not match it: then its own 404
            f"control {name} in an operation id",
            "GET",
            b"/api/operations/8213" + encoded,
            statuses=(400, 404),
            host=True,
        )
        yield Case(
            f"control {name} in a key to cancel by",
            "DELETE",
            b"/api/operations/by-key/key" + encoded,
            field="Idempotency-Key",
            statuses=(400, 404),
            host=True,
        )


# --- lone surrogates and invalid UTF-8 ----------------------------------------------------------------------------

SURROGATE = "\\ud800"  # as the JSON escape: json.dumps would refuse to write it raw


def surrogates_and_invalid_utf8() -> Iterator[Case]:
    for name, template in (
        ("workbook", '{"workbook": "/me/drive/items/%s%s", "action": "createSession"}'),
        ("sessionId", '{"workbook": "/me/drive/items/%s", "action": "createSession", "sessionId": "s%s"}'),
        ("clientReference", '{"workbook": "/me/drive/items/%s", "action": "createSession", "clientReference": "r%s"}'),
        (
            "callbackUrl",
            '{"workbook": "/me/drive/items/%s", "action": "createSession", "callbackUrl": "https://h.example.com/%s"}',
        ),
    ):
        for kind, escape in (
            ("lone high surrogate", SURROGATE),
            ("lone low surrogate", "\\udc00"),
            ("reversed pair", "\\udc00\\ud800"),
        ):
            item = new_item()
            yield _post(f"{kind} in {name}", (template % (item, escape)).encode(), item, field=name)
    item = new_item()
    cells = (
        '{"workbook": "/me/drive/items/' + item + '", "action": "createTableRow", '
        '"parameters": {"table": "T", "values": [["a' + SURROGATE + 'b"]]}}'
    )
    yield _post("lone surrogate in a cell value", cells.encode(), item, field="parameters.values")
    for kind, raw in (
        ("0xFF byte", b"\xff"),
        ("lone continuation byte", b"\x80"),
        ("overlong slash", b"\xc0\xaf"),
        ("overlong NUL", b"\xc0\x80"),
        ("UTF-8 encoded surrogate", b"\xed\xa0\x80"),
        ("truncated sequence", b"\xe2\x82"),
        ("code point past U+10FFFF", b"\xf4\x90\x80\x80"),
    ):
        item = new_item()
        body = b'{"workbook": "/me/drive/items/' + item.encode() + raw + b'", "action": "createSession"}'
        yield _post(f"invalid UTF-8 in the body: {kind}", body, item, field="body")
        yield Case(
            f"invalid UTF-8 in a query: {kind}",
            "GET",
            b"/api/operations?status=" + quote(raw, safe="").encode(),
            field="status",
        )
        yield Case(
            f"invalid UTF-8 in a continuation token: {kind}",
            "GET",
            b"/api/operations?continuationToken=" + quote(raw, safe="").encode(),
            field="continuationToken",
        )
    token = base64.urlsafe_b64encode(b'{"after":"\\ud800"}').decode().rstrip("=").encode()
    yield Case(
        "a continuation token holding a lone surrogate",
        "GET",
        b"/api/operations?continuationToken=" + token,
        field="continuationToken",
    )
    yield Case(
        "a lone surrogate in a query",
        "GET",
        b"/api/operations?status=" + quote("\udc80", errors="surrogatepass", safe="").encode(),
        field="status",
    )


# --- encodings ----------------------------------------------------------------------------------------------------


def encodings(graph: str) -> Iterator[Case]:
    item = new_item()
    yield _post("a UTF-8 BOM before the JSON", b"\xef\xbb\xbf" + _json(_start(item)), item, expect=ANY)
    for codec in ("utf-16", "utf-16-le", "utf-16-be", "utf-32"):
        item = new_item()
        yield _post(f"a {codec} body", json.dumps(_start(item)).encode(codec), item, field="body")
    for kind, segment in (
        ("encoded dot-dot", "%2e%2e"),
        ("encoded slash", "a%2Fb"),
        ("double-encoded dot-dot", "%252e%252e"),
        ("encoded NUL", "a%00b"),
        ("encoded question mark", "a%3Fb"),
        ("fullwidth dots", "\uff0e\uff0e"),
        ("dot-dot", ".."),
        ("backslash", "a\\b"),
        ("space", "a b"),
    ):
        item = new_item()
        yield _post(
            f"workbook path with {kind}", _start(item, workbook=f"/me/drive/items/{segment}"), item, field="workbook"
        )
        item = new_item()
        url = f"{graph}/me/drive/items/{item}/workbook/operations/{segment}"
        yield _post(f"operationUrl with {kind}", {"operationUrl": url}, item, field="operationUrl")
    item = new_item()
    yield _post(
        "operationUrl whose path climbs out",
        {"operationUrl": f"{graph}/me/drive/items/{item}/workbook/operations/%2e%2e/%2e%2e/%2e%2e/admin"},
        item,
        field="operationUrl",
    )
    item = new_item()
    yield _post(
        "operationUrl with user info",
        {"operationUrl": graph.replace("://", "://user:pw@") + f"/me/drive/items/{item}/workbook/operations/x"},
        item,
        field="operationUrl",
    )
    item = new_item()
    yield _post(
        "a percent-encoded callback host",
        _start(item, callbackUrl="https://%68ooks.example.com/cb"),
        item,
        field="callbackUrl",
    )
    item = new_item()
    yield _post(
        "a callback with an IDN host",
        _start(item, callbackUrl="https://h\u00f6oks.example.com/cb"),
        item,
        field="callbackUrl",
    )


# --- SSRF spellings of private and platform addresses -------------------------------------------------------------

PRIVATE = [
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "localhost",
    "localhost.",
    "app.localhost",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",
    "0.0.0.0",
    "[::]",
    "[fc00::1]",
    "[::ffff:10.0.0.1]",
    "[64:ff9b::a00:1]",
    "224.0.0.1",
]
PLATFORM = [
    "168.63.129.16",
    "168.63.129.16.",
    "2822734096",
    "0xa83f8110",
    "025017700420",
    "0250.077.0201.020",
    "168.63.33040",
    "168.4161808",
    "[::ffff:168.63.129.16]",
    "[::ffff:a83f:8110]",
    "[::168.63.129.16]",
    "[64:ff9b::a83f:8110]",
    "[2002:a83f:8110::]",
    "169.254.169.254",
    "2852039166",
    "0xa9fea9fe",
    "[::ffff:169.254.169.254]",
    "[fe80::1]",
    "%31%36%38.63.129.16",
]


def ssrf_spellings() -> Iterator[Case]:
    for kind, hosts in (("private", PRIVATE), ("platform", PLATFORM)):
        for host in hosts:
            for path, port in (("/hook", ""), ("/hook", ":8443")):
                url = f"https://{host}{port}{path}"
                item = new_item()
                yield _post(f"{kind} callback {host}{port}", _start(item, callbackUrl=url), item, field="callbackUrl")
            item = new_item()
            yield _post(
                f"{kind} subscription callback {host}",
                {"callbackUrl": f"https://{host}/hook"},
                item,
                path=SUBSCRIPTIONS,
                field="callbackUrl",
            )


# --- tampered signed status links and continuation tokens ---------------------------------------------------------


def _flip(text: str, at: int = -3) -> str:
    chars = list(text)
    chars[at] = "A" if chars[at] != "A" else "B"
    return "".join(chars)


def tampered(link_path: str, se: str, sig: str, token: str, other_id: str) -> Iterator[Case]:
    """`link_path` is /api/status/{id} of a real operation, with its `se` and `sig`; `token` a real
    continuation token; `other_id` another real operation's id."""
    base = link_path.encode()
    for kind, query in (
        ("a flipped signature", f"se={se}&sig={_flip(sig)}"),
        ("a later expiry", f"se={int(se) + 1}&sig={sig}"),
        ("an expiry with leading zeros", f"se=0{se}&sig={sig}"),
        ("an expiry in other digits", f"se={quote(se.replace('1', chr(0x661)))}&sig={sig}"),
        ("two signatures, the wrong one first", f"se={se}&sig={_flip(sig)}&sig={sig}"),
        ("two signatures, the right one first", f"se={se}&sig={sig}&sig={_flip(sig)}"),
        ("no signature", f"se={se}"),
        ("no expiry", f"sig={sig}"),
        ("an empty signature", f"se={se}&sig="),
        ("a signature for another key id", f"se={se}&sig=zz.{sig.split('.', 1)[-1]}"),
        ("a truncated signature", f"se={se}&sig={sig[:-8]}"),
        ("a signature with a line feed", f"se={se}&sig={sig}%0A"),
        ("a signature with a NUL", f"se={se}&sig=%00{sig}"),
        ("an expiry past 64 bits", f"se={'9' * 40}&sig={sig}"),
    ):
        yield Case(f"status link with {kind}", "GET", base + b"?" + query.encode(), statuses=(400, 401, 403))
    other = link_path.rsplit("/", 1)[0] + "/" + other_id
    yield Case("status link of another operation", "GET", f"{other}?se={se}&sig={sig}".encode(), statuses=(403,))
    yield Case(
        "status link to cancel with a flipped signature",
        "DELETE",
        base + f"?se={se}&sig={_flip(sig)}".encode(),
        statuses=(401, 403),
    )
    for kind, value in (
        ("a flipped character", _flip(token, 2)),
        ("a truncated token", token[:-4]),
        ("another JSON inside", base64.urlsafe_b64encode(b'{"after":"0","x":1}').decode().rstrip("=")),
        ("a number inside", base64.urlsafe_b64encode(b'{"after":1}').decode().rstrip("=")),
        ("an array inside", base64.urlsafe_b64encode(b'["after"]').decode().rstrip("=")),
        ("a deep JSON inside", base64.urlsafe_b64encode(b"[" * 3000 + b"]" * 3000).decode().rstrip("=")),
        ("not base64", "!!!!"),
        ("an 8 KiB token", "A" * 8192),
    ):
        yield Case(
            f"continuation token with {kind}",
            "GET",
            b"/api/operations?continuationToken=" + quote(value, safe="").encode(),
            field="continuationToken",
            host=len(value) > 4096,  # past the host's request-line limit: its own 400
        )
    for kind, value in (
        ("padding added", token + "=="),
        ("standard base64", token.replace("-", "+").replace("_", "/")),
    ):
        yield Case(  # the same token spelt otherwise: taken or refused, never a 5xx
            f"continuation token with {kind}",
            "GET",
            b"/api/operations?continuationToken=" + quote(value, safe="").encode(),
            expect=ANY,
        )


# --- oversized and deep bodies ------------------------------------------------------------------------------------


def oversized_and_deep() -> Iterator[Case]:
    item = new_item()
    yield _post(
        "a body over 1 MiB", _start(item, clientReference="x" * (1024 * 1024)), item, field="body", statuses=(413,)
    )
    item = new_item()
    yield _post(
        "arrays nested 10,000 deep", b'{"workbook": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", item, field="body"
    )
    item = new_item()
    yield _post("objects nested 10,000 deep", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, item, field="body")
    item = new_item()
    yield _post(
        "values nested 200 deep",
        _start(item, parameters={"table": "T", "values": [[[[[[[1]]]]]]]}),
        item,
        field="parameters.values",
    )
    item = new_item()
    yield _post("5,000 unknown fields", {**_start(item), **{f"f{n}": n for n in range(5000)}}, item)
    item = new_item()
    yield _post(
        "a workbook of 100,000 characters",
        _start(item, workbook="/me/drive/items/" + "A" * 100_000),
        item,
        field="workbook",
    )
    item = new_item()
    yield _post("a 64 KiB sessionId", _start(item, sessionId="s" * 65536), item, field="sessionId")
    item = new_item()
    yield _post(
        "an index of 400 digits",
        b'{"workbook": "/me/drive/items/'
        + item.encode()
        + b'", "action": "deleteTableRow", "parameters": {"table": "T", "index": '
        + b"9" * 400
        + b"}}",
        item,
        field="body",
    )
    item = new_item()
    yield _post(
        "an index of 1e400",
        b'{"workbook": "/me/drive/items/'
        + item.encode()
        + b'", "action": "deleteTableRow", "parameters": {"table": "T", "index": 1e400}}',
        item,
        field="body",
    )
    item = new_item()
    yield _post(
        "values over 32 KiB",
        _start(item, parameters={"table": "T", "values": [["x" * 40_000]]}),
        item,
        field="parameters.values",
    )
    item = new_item()
    yield _post(
        "an Idempotency-Key of 8 KiB",
        _start(item),
        item,
        field="Idempotency-Key",
        headers=[(b"Idempotency-Key", b"k" * 8192)],
        host=True,  # past the host's header limit: its own 400
    )
    yield Case("a query of 16 KiB", "GET", b"/api/operations?status=" + b"r" * 16384, field="status", host=True)
    item = new_item()
    yield _post(
        "a subscription with 10,000 statuses",
        {"callbackUrl": "https://hooks.example.com/s", "statuses": ["failed"] * 10_000},
        item,
        path=SUBSCRIPTIONS,
        expect=ANY,
    )


def all_cases(graph: str, link: tuple[str, str, str], token: str, other_id: str) -> list[Case]:
    return [
        *control_characters(graph),
        *surrogates_and_invalid_utf8(),
        *encodings(graph),
        *ssrf_spellings(),
        *tampered(*link, token, other_id),
        *oversized_and_deep(),
    ]
