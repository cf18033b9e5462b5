"""The operations console in a real browser (issue 12): headless Chromium (Debian's `chromium`, driven through
its `chromedriver` by Selenium; never a downloaded browser) against a devhost with App Service Authentication
emulated, Azurite and the Graph emulator.

Ada opens the console with her token, lists and filters her operations, opens one, reads its timeline, redelivers
its webhook and sees the new attempt; Bob's operation is not listed, and opening its id shows "not found".

`make console-screenshots` (CONSOLE_SCREENSHOTS=docs) saves a PNG of each page to docs/; other runs save them
under pytest's temporary directory, so a normal test run never rewrites docs/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import wait_for

from .conftest import BridgeFactory
from .harness import Bridge, Emulator, WebhookReceiver, new_item

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _missing() -> str | None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        return (
            f"the console's browser test needs Debian's chromium and chromium-driver ({', '.join(missing)} missing): "
            "`make browser` installs them as root with apt-get"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the console's browser test needs selenium (requirements-dev.txt; `make install`)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


TENANT = "11111111-2222-3333-4444-666666666666"
AUDIENCE = "api://excel-bridge"


@pytest.fixture(scope="module")
def guarded(make_bridge: BridgeFactory, emulator: Emulator) -> Bridge:
    """A bridge behind Easy Auth trusting the emulator's Entra (tenant TENANT), as in test_ownership."""
    return make_bridge(
        "console",
        DEVHOST_AUTH_ISSUER=emulator.issuer(TENANT),
        DEVHOST_AUTH_AUDIENCES=AUDIENCE,
        DEVHOST_AUTH_ALLOWED_TENANTS=TENANT,
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get("CONSOLE_SCREENSHOTS")
    path = Path(target) if target else tmp_path_factory.mktemp("console-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def user(emulator: Emulator, oid: str) -> dict[str, str]:
    """The headers of a caller signed in at the emulator's Entra as user `oid`."""
    token = emulator.sign_in(f"{oid}.console@contoso.example", tenant=TENANT, audience=AUDIENCE, oid=oid, lifetime=1800)
    return {"Authorization": f"Bearer {token}"}


def start(bridge: Bridge, headers: dict[str, str], body: dict[str, Any]) -> str:
    response = bridge.client.post(f"{bridge.api}/operations", headers=headers, json=body)
    assert response.status_code in (200, 201, 202), response.text
    return str(response.json()["id"])


def record(bridge: Bridge, headers: dict[str, str], operation_id: str) -> dict[str, Any]:
    response = bridge.client.get(f"{bridge.api}/operations/{operation_id}", headers=headers)
    assert response.status_code in (200, 202), response.text
    return response.json()  # type: ignore[no-any-return]


def until(driver: Any, condition: Any, what: str, timeout: float = 30) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d))
    except TimeoutException:
        logs = "\n".join(str(entry) for entry in driver.get_log("browser"))
        raise AssertionError(f"the console did not show {what} within {timeout}s; browser log:\n{logs}") from None


def rows(driver: Any) -> dict[str, str]:
    """The listed operations' ids and statuses, read in one script (the list re-renders while it loads)."""
    script = (
        "return Array.from(document.querySelectorAll('#operations tbody tr'))"
        ".map(r => [r.dataset.id, r.dataset.status])"
    )
    return dict(driver.execute_script(script))


def timeline(driver: Any) -> list[str]:
    script = "return Array.from(document.querySelectorAll('#op-timeline li')).map(li => li.innerText)"
    return list(driver.execute_script(script))


def test_the_console_lists_filters_opens_and_redelivers_only_the_callers_operations(
    guarded: Bridge, emulator: Emulator, receiver: WebhookReceiver, browser: Any, shots: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    ada, bob = user(emulator, "ada"), user(emulator, "bob")
    hook = receiver.new_url(503, 200)  # the first attempt is refused, the retry delivered
    ok, failing, endless, theirs = new_item(), new_item(), new_item(), new_item()
    emulator.scenario(ok, notStartedPolls=1, runningPolls=2)
    emulator.scenario(failing, runningPolls=1, outcome="failed")
    emulator.scenario(endless, runningPolls=10_000)
    emulator.scenario(theirs, mode="sync")
    done_id = start(
        guarded,
        ada,
        {
            "workbook": f"/me/drive/items/{ok}",
            "action": "createSession",
            "callbackUrl": hook,
            "clientReference": "demo",
        },
    )
    failed_id = start(guarded, ada, {"workbook": f"/me/drive/items/{failing}", "action": "createSession"})
    running_id = start(guarded, ada, {"workbook": f"/me/drive/items/{endless}", "action": "createSession"})
    bob_id = start(guarded, bob, {"workbook": f"/me/drive/items/{theirs}", "action": "createSession"})
    wait_for(lambda: record(guarded, ada, done_id)["webhook"]["state"] == "delivered", 60, "the webhook delivered")
    wait_for(lambda: record(guarded, ada, failed_id)["status"] == "failed", 60, "the failing operation failed")
    wait_for(lambda: record(guarded, ada, running_id)["status"] == "running", 60, "the endless operation running")
    assert len(receiver.for_path(hook)) == 2

    page = httpx.get(f"{guarded.api}/console")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    token = ada["Authorization"].removeprefix("Bearer ")
    browser.get(f"{guarded.api}/console#token={token}")

    # the list: Ada's three, never Bob's; the credential left the URL at once
    until(browser, lambda d: {done_id, failed_id, running_id} <= set(rows(d)), "Ada's operations")
    assert bob_id not in rows(browser)
    assert token not in browser.current_url
    assert browser.execute_script("return sessionStorage.getItem('eab.token')") == token
    browser.save_screenshot(str(shots / "console-list.png"))

    # smaller loads (?top=1&pages=2): two of the three, then "Load more" follows the API's nextLink
    browser.get(f"{guarded.api}/console?top=1&pages=2#list")
    until(browser, lambda d: len(rows(d)) == 2, "the first two operations")
    browser.find_element(By.ID, "more").click()
    until(browser, lambda d: set(rows(d)) == {done_id, failed_id, running_id}, "all three after Load more")
    browser.get(f"{guarded.api}/console#list")  # the default loads again (the token stayed in sessionStorage)
    until(browser, lambda d: {done_id, failed_id, running_id} <= set(rows(d)), "Ada's operations again")

    # filter by status (the API's filter) and by workbook (the console's, over the pages it loaded)
    Select(browser.find_element(By.ID, "f-status")).select_by_visible_text("succeeded")
    browser.find_element(By.ID, "f-apply").click()
    until(browser, lambda d: set(rows(d)) == {done_id}, "only the succeeded operation")
    Select(browser.find_element(By.ID, "f-status")).select_by_visible_text("any")
    browser.find_element(By.ID, "f-workbook").send_keys(failing)
    browser.find_element(By.ID, "f-apply").click()
    until(browser, lambda d: set(rows(d)) == {failed_id}, "only the failing workbook's operation")
    browser.save_screenshot(str(shots / "console-list-filtered.png"))
    browser.find_element(By.ID, "f-workbook").clear()
    browser.find_element(By.ID, "f-apply").click()
    until(browser, lambda d: done_id in rows(d), "the list again")

    # open one: its timeline has the status changes and each webhook attempt with its status
    browser.find_element(By.CSS_SELECTOR, f'#operations tr[data-id="{done_id}"]').click()
    until(browser, lambda d: d.find_element(By.ID, "op-id").text == done_id, "the operation page")
    until(browser, lambda d: any("webhook attempt 2: delivered (HTTP 200)" in t for t in timeline(d)), "attempt 2")
    events = timeline(browser)
    assert events[0].endswith("created (createSession)")
    assert any("status running" in t for t in events) and any("status succeeded" in t for t in events)
    assert any("webhook attempt 1: retrying (HTTP 503)" in t for t in events)
    assert browser.find_element(By.ID, "op-redeliver").is_enabled()
    browser.save_screenshot(str(shots / "console-operation.png"))

    # redeliver: a third attempt reaches the receiver and the timeline shows it
    browser.find_element(By.ID, "op-redeliver").click()
    until(browser, lambda d: any("redelivery requested (attempt 3 queued)" in t for t in timeline(d)), "the request")
    until(browser, lambda d: any("webhook attempt 3: delivered (HTTP 200)" in t for t in timeline(d)), "attempt 3")
    assert len(receiver.wait(hook, count=3)) == 3
    browser.save_screenshot(str(shots / "console-redelivered.png"))

    # the failed one: its error chain
    browser.get(f"{guarded.api}/console#op={failed_id}")
    until(browser, lambda d: d.find_element(By.ID, "op-id").text == failed_id, "the failed operation")
    chain = until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#op-outcome ul.chain li"), "the error chain")
    assert len(chain) >= 2 and chain[0].text.split()[0] == record(guarded, ada, failed_id)["error"]["code"]
    browser.save_screenshot(str(shots / "console-failed.png"))

    # cancel the running one from its page
    browser.get(f"{guarded.api}/console#op={running_id}")
    until(browser, lambda d: d.find_element(By.ID, "op-id").text == running_id, "the running operation")
    until(browser, lambda d: d.find_element(By.ID, "op-cancel").is_enabled(), "the cancel button")
    browser.find_element(By.ID, "op-cancel").click()
    until(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#op-status .status").text == "canceled", "canceled")
    assert record(guarded, ada, running_id)["status"] == "canceled"

    # Bob's operation, opened by its id: not found (the API answers 404, as for an id that does not exist)
    browser.get(f"{guarded.api}/console#op={bob_id}")
    until(browser, lambda d: d.find_element(By.ID, "op-notfound").is_displayed(), "not found")
    assert browser.find_element(By.ID, "op-notfound-id").text == bob_id
    assert not browser.find_element(By.ID, "op-found").is_displayed()
    assert record(guarded, bob, bob_id)["status"] == "succeeded"  # it exists: Ada may not see it
    browser.save_screenshot(str(shots / "console-not-found.png"))

    # the charts: Ada's durations per kind of work and her outcomes over time
    browser.get(f"{guarded.api}/console#charts")
    until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#durations .chart svg circle"), "the durations chart")
    kinds = {c.get_attribute("data-action") for c in browser.find_elements(By.CSS_SELECTOR, "#durations .chart")}
    assert kinds == {"createSession"}
    bars = {r.get_attribute("data-status") for r in browser.find_elements(By.CSS_SELECTOR, "#outcomes rect")}
    assert {"succeeded", "failed", "canceled"} <= bars
    browser.save_screenshot(str(shots / "console-charts.png"))
    # no script error and no Content-Security-Policy violation; the one failed request is Bob's 404
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not [e for e in severe if not (e["source"] == "network" and bob_id in e["message"])], severe


def test_with_function_keys_the_console_asks_for_the_key_and_keeps_it_out_of_every_url(
    make_bridge: BridgeFactory, emulator: Emulator, browser: Any, tmp_path: Path
) -> None:
    """Keys checked as in Azure (devhost's DEVHOST_KEYS_FILE), authentication off as in `make run`: the page opens
    without a key, the API refuses the list (401), the form takes the key, and no request URL ever carries it."""
    from selenium.webdriver.common.by import By

    from devhost.keys import write_keys_file

    key = "console-host-key-" + new_item().lower()
    keys = write_keys_file(tmp_path / "keys.json", master="console-master-" + new_item(), host_keys={"default": key})
    keyed = make_bridge("console-keys", DEVHOST_KEYS_FILE=str(keys))
    item = new_item()
    emulator.scenario(item, mode="sync")
    operation_id = start(
        keyed, {"x-functions-key": key}, {"workbook": f"/me/drive/items/{item}", "action": "createSession"}
    )
    assert keyed.client.get(f"{keyed.api}/operations").status_code == 401  # the data routes need the key

    browser.get(f"{keyed.api}/console")
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    until(browser, lambda d: d.find_element(By.ID, "signin").is_displayed(), "the credential form")
    browser.find_element(By.ID, "signin-key").send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    until(browser, lambda d: operation_id in rows(d), "the operation, listed with the key")
    assert rows(browser)[operation_id] == "succeeded"

    browser.find_element(By.ID, "signout").click()  # forget it, then pass it in the fragment instead
    assert browser.execute_script("return sessionStorage.getItem('eab.key')") is None
    assert rows(browser) == {}  # nothing read with the forgotten key stays on screen
    browser.get(f"{keyed.api}/console#key={key}")
    until(browser, lambda d: operation_id in rows(d), "the operation, listed with the key from the fragment")
    assert key not in browser.current_url
    requested = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert requested and not [url for url in requested if key in url]  # sent as x-functions-key only
