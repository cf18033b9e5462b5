"""/api/health reflects whether storage answers."""

from __future__ import annotations

from pathlib import Path

import httpx

from devhost.services import AzuritePorts, bridge_environment, free_port, start_azurite, start_function_app

from .harness import Emulator, wait_for


def test_health_is_503_when_storage_goes_away(emulator: Emulator, log_dir: Path) -> None:
    ports = AzuritePorts(free_port(), free_port(), free_port())
    storage = start_azurite(ports, log_dir / "health-azurite")
    port = free_port()
    env = bridge_environment(
        ports, int(emulator.url.rsplit(":", 1)[1]), POLL_QUEUE="health-polls", WEBHOOK_QUEUE="health-hooks"
    )
    app = start_function_app(port, env, log_dir, name="functions-health")
    try:
        url = f"http://127.0.0.1:{port}/api/health"
        healthy = httpx.get(url, timeout=10).json()
        assert healthy == {"status": "healthy", "poison": {"health-polls-poison": 0, "health-hooks-poison": 0}}
        storage.stop()
        response = wait_for(lambda: (r := httpx.get(url, timeout=30)).status_code == 503 and r, 30, "503")
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "unhealthy"
    finally:
        app.stop()
        storage.stop()
