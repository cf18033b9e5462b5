"""Fixtures for the Logic Apps model's own tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.logicapps.endpoint import Answer, Endpoint, Seen


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[Seen], Answer]], Endpoint]]:
    """serve(handler) starts a scripted endpoint on 127.0.0.1, closed after the test."""
    started: list[Endpoint] = []

    def start(handler: Callable[[Seen], Answer]) -> Endpoint:
        endpoint = Endpoint(handler)
        started.append(endpoint)
        return endpoint

    yield start
    for endpoint in started:
        endpoint.close()
