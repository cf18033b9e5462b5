"""devhost runs timer triggers from the decorator metadata, and runs one now through the admin API.

Models the Functions docs: functions-bindings-timer.md (NCRONTAB `{second} {minute} {hour} {day} {month}
{day-of-week}`, `runOnStartup`, `useMonitor`; one run at a time) and functions-manually-run-non-http.md
(`POST /admin/functions/<name>`, body `{"input": ""}`, "APIs under the /admin/ path are only accessible with
authorization" with the master key in `x-functions-key`, not enforced when running locally; 202 Accepted).
`AzureWebJobs.<name>.Disabled` disables a function of any trigger (functions-host disable docs).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devhost.keys import write_keys_file
from tests.devhost.devhost_testlib import Service, start_devhost, wait_until

pytestmark = pytest.mark.timeout(120)

MASTER = "timers-master-TWFzdGVyS2V5"
HOST_KEY = "timers-host-SG9zdEtleQ"

TIMER_APP = """
import json
import os
import pathlib
import uuid

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
RECORDS = pathlib.Path(os.environ["TIMER_RECORDS"])


def _record(kind: str, timer: func.TimerRequest) -> None:
    RECORDS.mkdir(parents=True, exist_ok=True)
    tmp = RECORDS / f".{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps({"past_due": timer.past_due, "status": timer.schedule_status}))
    tmp.rename(RECORDS / f"{kind}-{uuid.uuid4().hex}.json")


@app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", run_on_startup=False, use_monitor=False)
def yearly(timer: func.TimerRequest) -> None:
    _record("yearly", timer)


@app.timer_trigger(arg_name="timer", schedule="%OFTEN_SCHEDULE%")
async def often(timer: func.TimerRequest) -> None:
    _record("often", timer)


@app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", run_on_startup=True)
def at_startup(timer: func.TimerRequest) -> None:
    _record("startup", timer)


@app.timer_trigger(arg_name="timer", schedule="* * * * * *")
def switched_off(timer: func.TimerRequest) -> None:
    _record("off", timer)


@app.route(route="ping", methods=["GET"])
def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")
"""


def records(directory: Path, kind: str) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob(f"{kind}-*.json"))]


def start(tmp: Path, keys: bool) -> Service:
    app_dir = tmp / "app"
    app_dir.mkdir()
    (app_dir / "function_app.py").write_text(TIMER_APP)
    (app_dir / "host.json").write_text(json.dumps({"version": "2.0"}))
    env = {
        "TIMER_RECORDS": str(tmp / "records"),
        "OFTEN_SCHEDULE": "*/2 * * * * *",
        "AzureWebJobs.switched_off.Disabled": "true",
    }
    if keys:
        write_keys_file(tmp / "keys.json", master=MASTER, host_keys={"default": HOST_KEY})
        env["DEVHOST_KEYS_FILE"] = str(tmp / "keys.json")
    return start_devhost(app_dir, env, tmp / "devhost.log")


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Path]]:
    tmp = tmp_path_factory.mktemp("timers-keyed")
    host = start(tmp, keys=True)
    yield host, tmp / "records"
    host.stop()


def test_timer_functions_are_listed_scheduled_and_disabled_ones_skipped(keyed: tuple[Service, Path]) -> None:
    host, directory = keyed
    listing = host.output()
    assert "yearly: timerTrigger schedule='0 0 0 1 1 *'" in listing
    assert "often: timerTrigger schedule='*/2 * * * * *'" in listing  # %setting% resolved
    assert "skipped unsupported functions: switched_off" in listing  # AzureWebJobs.<name>.Disabled
    # every 2 s on the schedule; each run is told the next occurrence (schedule_status.Next)
    runs = wait_until(
        lambda: len(records(directory, "often")) >= 2 and records(directory, "often"), 15, "two scheduled runs"
    )
    assert all(run["past_due"] is False and run["status"]["Next"] for run in runs)  # type: ignore[index]
    assert any(run["status"]["Last"] for run in runs)  # type: ignore[index]  # the previous run
    assert len(records(directory, "startup")) == 1  # runOnStartup: once at start, not on its (yearly) schedule
    assert records(directory, "yearly") == [] and records(directory, "off") == []


def test_admin_route_runs_a_timer_now_with_the_master_key_only(keyed: tuple[Service, Path]) -> None:
    host, directory = keyed
    url = f"{host.url}/admin/functions/yearly"
    assert httpx.post(url, json={"input": ""}).status_code == 401
    assert httpx.post(url, json={"input": ""}, headers={"x-functions-key": HOST_KEY}).status_code == 401
    assert records(directory, "yearly") == []
    response = httpx.post(url, json={"input": ""}, headers={"x-functions-key": MASTER})
    assert response.status_code == 202
    wait_until(lambda: len(records(directory, "yearly")) == 1, 10, "the manual run")
    assert (
        httpx.post(f"{host.url}/admin/functions/YEARLY", json={"input": ""}, params={"code": MASTER}).status_code == 202
    )  # names are case-insensitive; code= works
    wait_until(lambda: len(records(directory, "yearly")) == 2, 10, "the second manual run")
    unknown = httpx.post(f"{host.url}/admin/functions/nothing", json={"input": ""}, headers={"x-functions-key": MASTER})
    assert unknown.status_code == 404
    disabled = httpx.post(
        f"{host.url}/admin/functions/switched_off", json={"input": ""}, headers={"x-functions-key": MASTER}
    )
    assert disabled.status_code == 404 and records(directory, "off") == []
    assert httpx.get(f"{host.url}/admin/functions/yearly", headers={"x-functions-key": MASTER}).status_code == 405
    bad = httpx.post(url, content=b"[1]", headers={"x-functions-key": MASTER})
    assert bad.status_code == 400


def test_without_keys_the_admin_route_is_open_as_locally(tmp_path: Path) -> None:
    host = start(tmp_path, keys=False)
    try:
        assert httpx.post(f"{host.url}/admin/functions/yearly", json={"input": ""}).status_code == 202
        wait_until(lambda: len(records(tmp_path / "records", "yearly")) == 1, 10, "the manual run")
    finally:
        host.stop()
