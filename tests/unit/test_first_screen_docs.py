"""The README's first screen says what the API does today: its copy of `make run`'s banner is the banner
(devhost/stack.py, whose commands tests/e2e/test_first_screen.py runs), a start without a callbackUrl is a 202 and
one with a callbackUrl a 201, and the sequence diagram's Location is the signed status URL."""

from __future__ import annotations

import json
import re
from pathlib import Path

from devhost.services import AzuritePorts
from devhost.stack import banner

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
PRINTED = banner(
    "http://127.0.0.1:7071/api", "http://127.0.0.1:7072", "http://127.0.0.1:7073", AzuritePorts(10000, 10001, 10002)
)


def readme_block(after: str) -> str:
    start = README.index(after)
    return re.findall(r"```\w*\n(.*?)```", README[start:], re.DOTALL)[0]


def test_the_readme_shows_lines_the_banner_prints() -> None:
    shown = [line for line in readme_block("`make run` prints").splitlines() if line.strip()]
    assert len(shown) >= 8
    printed = PRINTED.splitlines()
    for line in shown:
        assert line in printed, line


def test_the_banner_starts_without_a_callback_for_its_202_and_says_201_with_one() -> None:
    bodies = [json.loads(body) for body in re.findall(r"-d '(\{.*?\})'", PRINTED)]
    assert [("callbackUrl" in body) for body in bodies] == [False, False, True]  # start, one-liner, with a webhook
    assert "answers 202 Accepted" in PRINTED and "answers 201 Created" in PRINTED
    assert "/api/operations/<id>" not in PRINTED  # the Location to follow is the signed one
    assert "/api/status/<id>?se=...&sig=..." in PRINTED


def test_the_sequence_diagram_shows_the_signed_location() -> None:
    diagram = readme_block("## How an operation flows")
    [answer] = [line for line in diagram.splitlines() if "H-->>C: 202" in line and "Location" in line]
    assert "Location: /api/status/{id}?se=…&sig=…" in answer and "201 with a callbackUrl" in answer
    assert "Location: /api/operations/{id}" not in diagram
