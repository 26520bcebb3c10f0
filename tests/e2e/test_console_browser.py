"""The console in a real browser (Debian's headless Chromium through Selenium and Debian's
chromedriver) against a real `loopgate api serve` on the real broker: sign-in refused with a bad
token, sign in, filter, claim, resolve a brand_safety exception with a correction and find its
outcome on exception-outcomes, a concurrent edit, a bulk resolve, a silence.

Screenshots of the main pages go to LOOPGATE_SCREENSHOTS (the README's are made with
LOOPGATE_SCREENSHOTS=docs/screenshots), else to the test's temporary directory."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.e2e.operators import BRAND_SAFETY_CAPTION, brand_safety_record, create, outcomes_of
from tests.fixtures.api import record
from tests.fixtures.services import Stack, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_SECONDS = 20


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def stack(stack_factory: Callable[..., Stack]) -> Stack:
    running = stack_factory(console_secure_cookie=False)  # plain http on 127.0.0.1
    running.start("api")
    return running


@pytest.fixture
def shots(tmp_path: Path) -> Callable[[WebDriver, str], None]:
    folder = Path(os.environ.get("LOOPGATE_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)

    def save(driver: WebDriver, name: str) -> None:
        height = driver.execute_script("return Math.min(document.body.scrollHeight, 1400)")
        driver.set_window_size(1280, max(700, int(height) + 20))
        driver.execute_script("window.scrollTo(0, 0)")
        assert driver.save_screenshot(str(folder / f"{name}.png"))
        driver.set_window_size(1280, 900)

    return save


def wait(driver: WebDriver) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, WAIT_SECONDS)


def text_of(driver: WebDriver, css: str) -> str:
    element = wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))
    return str(element.text)


def see(driver: WebDriver, css: str, text: str) -> None:
    """Wait until the element shows `text` (the page may still be the one before a click). While
    htmx swaps the page, Chromium may answer for a node it just dropped with a plain
    WebDriverException ("Node with given id does not belong to the document"), not a stale
    element: that is polled again too; a page that never shows the text still times out."""
    WebDriverWait(driver, WAIT_SECONDS, ignored_exceptions=(WebDriverException,)).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), text)
    )


def sign_in(driver: WebDriver, stack: Stack, token: str) -> None:
    driver.get(f"{stack.api_url}/console/sign-in")
    field = wait(driver).until(ec.presence_of_element_located((By.ID, "token")))
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()


def impact(amount: float) -> dict[str, Any]:
    return {"amount": amount, "currency": "EUR", "basis": "excess CPM over one hour at 40,000 impressions"}


def a_busy_queue(stack: Stack) -> dict[str, dict[str, Any]]:
    """A queue worth looking at: a few rules, clients and severities, money at risk on some."""
    made = {
        "bid": create(
            stack,
            record(
                severity="critical",
                client_id="northwind",
                summary="Bid 14.80 EUR CPM on li-7781 is 85% over the campaign cap of 8.00",
                impact=impact(272.0),
            ),
        ),
        "pacing": create(
            stack,
            record(
                rule_id="pacing_off",
                severity="medium",
                client_id="contoso",
                summary="Campaign cmp-204 has spent 78% of its daily budget by 11:00",
                impact=impact(96.5),
            ),
        ),
        "content": create(stack, brand_safety_record()),
        "caption": create(
            stack,
            brand_safety_record(
                rule_id="caption_too_long",
                severity="low",
                summary="Caption of post-x1 (lumen, x, copywriter-v3) is 301 characters, over the x limit of 280",
                threshold={"max_length": 280},
                observed={"caption_length": 301},
            ),
        ),
    }
    for n in range(3):
        made[f"stalled-{n}"] = create(
            stack,
            record(
                rule_id="delivery_stalled",
                severity="high",
                client_id="fabrikam",
                source="ad-server.events",
                summary=f"Placement pl-{300 + n} delivered no impressions for 45 minutes",
            ),
        )
    return made


def test_a_bad_token_is_refused_at_sign_in(browser: WebDriver, stack: Stack, shots: Callable[..., None]) -> None:
    browser.get(f"{stack.api_url}/console/queue")
    wait(browser).until(ec.url_contains("/console/sign-in"))
    shots(browser, "sign-in")
    sign_in(browser, stack, "lg_not-a-real-token")
    see(browser, "#sign-in-error", "unknown or revoked")
    browser.get(f"{stack.api_url}/console/queue")
    wait(browser).until(ec.url_contains("/console/sign-in"))


def test_an_operator_resolves_a_brand_safety_exception_with_a_correction(
    browser: WebDriver, stack: Stack, shots: Callable[..., None]
) -> None:
    made = a_busy_queue(stack)
    sign_in(browser, stack, stack.operator_token)
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "total"), "7 matching"))
    see(browser, "table.queue tbody tr:first-child", "85% over the campaign cap")  # critical first
    shots(browser, "queue")

    browser.find_element(By.ID, "f-rule").send_keys("brand_safety")
    browser.find_element(By.CSS_SELECTOR, ".filters button[type=submit]").click()
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "total"), "1 matching"))
    browser.find_element(By.LINK_TEXT, made["content"]["summary"]).click()

    caption = text_of(browser, "#caption")
    assert caption == BRAND_SAFETY_CAPTION
    assert browser.find_element(By.CSS_SELECTOR, "#caption mark.claim").text == "Clinically proven"
    browser.find_element(By.ID, "claim").click()
    see(browser, ".notice", "Claimed")
    see(browser, "#status", "claimed (assigned to alice)")

    Select(browser.find_element(By.ID, "decision")).select_by_value("corrected")
    browser.find_element(By.ID, "reason").send_keys("Unverifiable medical claim removed")
    editor = browser.find_element(By.CSS_SELECTOR, "textarea[name='after.caption']")
    editor.clear()
    editor.send_keys("Glow all day with Lumen serum. #ad")
    claims = browser.find_element(By.CSS_SELECTOR, "textarea[name='after.product_claims']")
    claims.clear()
    shots(browser, "exception")
    browser.find_element(By.ID, "resolve").click()
    see(browser, ".notice", "Resolved (corrected)")
    see(browser, "#resolution", "corrected by alice")

    exception_id = made["content"]["id"]
    wait_until(lambda: len(outcomes_of(stack, exception_id)) == 1, timeout=30, what="the outcome on Kafka")
    [outcome] = outcomes_of(stack, exception_id)
    assert outcome["data"]["decision"] == "corrected"
    assert outcome["data"]["resolver"] == "alice"
    assert outcome["data"]["correction"] == {
        "caption": {"before": BRAND_SAFETY_CAPTION, "after": "Glow all day with Lumen serum. #ad"},
        "product_claims": {"before": ["clinically proven"], "after": []},
    }


def test_a_concurrent_edit_is_refused_and_a_bulk_resolve_asks_to_confirm_the_count(
    browser: WebDriver, stack: Stack, shots: Callable[..., None]
) -> None:
    made = a_busy_queue(stack)
    sign_in(browser, stack, stack.operator_token)
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "total"), "7 matching"))

    browser.get(f"{stack.api_url}/console/exceptions/{made['bid']['id']}")
    wait(browser).until(ec.presence_of_element_located((By.ID, "resolve")))
    with stack.client(stack.admin_token) as http:  # someone else claims it meanwhile
        assert http.post(f"/v1/exceptions/{made['bid']['id']}/claim", json={"assignee": "bob"}).status_code == 200
    Select(browser.find_element(By.ID, "decision")).select_by_value("confirmed")
    browser.find_element(By.ID, "resolve").click()
    see(browser, "#action-error", "changed by someone else")
    see(browser, "#status", "assigned to bob")
    with stack.client() as http:
        assert http.get(f"/v1/exceptions/{made['bid']['id']}").json()["status"] == "claimed"

    browser.get(f"{stack.api_url}/console/queue?client_id=fabrikam")
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "total"), "3 matching"))
    browser.find_element(By.ID, "scope-filter").click()
    Select(browser.find_element(By.ID, "b-decision")).select_by_value("false_positive")
    browser.find_element(By.ID, "b-reason").send_keys("Ad server outage, not the placements")
    browser.find_element(By.CSS_SELECTOR, "fieldset.bulk button").click()
    see(browser, "#bulk-count", "3 exceptions match the filter")
    shots(browser, "bulk-confirm")
    browser.find_element(By.CSS_SELECTOR, "button.primary").click()
    see(browser, ".notice", "Resolved 3 exception(s)")
    see(browser, "#total", "0 matching")
    bulk_ids = [made[f"stalled-{n}"]["id"] for n in range(3)]
    wait_until(lambda: all(len(outcomes_of(stack, i)) == 1 for i in bulk_ids), timeout=30, what="the bulk outcomes")


def test_an_operator_silences_a_rule_for_a_client_from_an_exception_and_expires_it(
    browser: WebDriver, stack: Stack, shots: Callable[..., None]
) -> None:
    made = a_busy_queue(stack)
    sign_in(browser, stack, stack.operator_token)
    see(browser, "#total", "7 matching")
    browser.get(f"{stack.api_url}/console/exceptions/{made['content']['id']}")
    Select(wait(browser).until(ec.presence_of_element_located((By.ID, "silence-hours")))).select_by_value("4")
    browser.find_element(By.ID, "silence-comment").send_keys("Lumen's brand-safety model is being retrained")
    browser.find_element(By.ID, "silence").click()
    see(browser, ".notice", "Silenced rule_id brand_safety, client_id lumen for 4 h: 1 exception(s) held")
    see(browser, "#silences", "brand_safety")
    shots(browser, "silences")
    browser.get(f"{stack.api_url}/console/queue")
    see(browser, "#total", "6 matching")  # the silenced one is out of the on-call queue
    browser.get(f"{stack.api_url}/console/silences")
    browser.find_element(By.CSS_SELECTOR, "#silences button").click()
    see(browser, ".notice", "Silence expired")
    browser.get(f"{stack.api_url}/console/queue")
    see(browser, "#total", "7 matching")
