"""Issue 25, end to end: the client checks its own product claims. Real detector, dispatcher and API
processes on the real broker, the real Keycloak (tests/fixtures/keycloak.py), Debian's Chromium
(the browser fixture of test_console_browser.py), real webhook receivers of two clients.

Simulated `content.generated` posts with product claims of northwind and of contoso, and the bid
stream (northwind's bid exceptions among them), go through the detector and the dispatcher; the
claims are routed to `reviewers-northwind` and `reviewers-contoso`. Nora (Keycloak group
northwind-reviewers) signs in through Keycloak in Chromium, sees her name, role and scope, only
northwind's claim check in the queue (not contoso's, not a bid exception) and no bulk or silence
action; she claims it, corrects the product claims field by field and resolves. The outcome on
exception-outcomes names her and the correction; northwind's receiver was told of northwind's
claim, contoso's receiver (also listed on reviewers-northwind, as a copied line would) only of
contoso's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select

from loopgate_tools.processes import free_port
from loopgate_tools.simulator.generator import SimEvent, generate
from loopgate_tools.simulator.publisher import publish
from tests.e2e.operators import outcomes_of
from tests.e2e.test_console_browser import browser, see, text_of, wait  # noqa: F401  (the browser fixture)
from tests.e2e.test_loop import all_exceptions, caught_up
from tests.fixtures.keycloak import Keycloak
from tests.fixtures.receivers import Receivers
from tests.fixtures.services import Stack, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.e2e, pytest.mark.timeout(900)]

BID_RULES = {"bid_over_cap", "bid_jump"}
CORRECTED_CLAIM = "rated 4.6 by 1,200 customers"
CORRECTED_CAPTION = "Rated 4.6 by 1,200 customers. #ad"


def data_of(event: SimEvent) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(event.value)["data"]
    return data


def simulated() -> tuple[list[SimEvent], SimEvent, SimEvent]:
    """The simulator's bid stream (with northwind's bid exceptions in it), one northwind post with
    product claims and one contoso post with product claims; no other posts."""
    events = list(generate(400, anomaly_share=0.5, seed=25))

    def first_claim(client: str) -> SimEvent:
        return next(e for e in events if e.injected == "claim_verification" and data_of(e)["client_id"] == client)

    bids = [e for e in events if e.event_type.startswith("bid.")]
    assert any(e.injected in BID_RULES and data_of(e).get("client_id") == "northwind" for e in bids)
    return bids, first_claim("northwind"), first_claim("contoso")


def claim_checks(stack: Stack) -> list[dict[str, Any]]:
    return [e for e in all_exceptions(stack) if e["rule_id"] == "claim_verification"]


def told(receiver: Receivers) -> set[tuple[str, str]]:
    """(exception, CloudEvent type) of every notification the receiver accepted."""
    return {(r.body["subject"], r.body["type"]) for r in receiver.snapshot()}


def sign_in_through_keycloak(driver: WebDriver, stack: Stack, keycloak: Keycloak, username: str) -> None:
    driver.get(f"{stack.api_url}/console/sign-in")
    wait(driver).until(ec.element_to_be_clickable((By.ID, "sso-sign-in"))).click()
    wait(driver).until(ec.presence_of_element_located((By.ID, "username"))).send_keys(username)
    driver.find_element(By.ID, "password").send_keys(keycloak.password(username))
    driver.find_element(By.ID, "kc-login").click()
    wait(driver).until(ec.url_to_be(f"{stack.api_url}/console/queue"))


def test_a_northwind_reviewer_signs_in_through_keycloak_and_corrects_only_northwinds_claims(
    stack_factory: Callable[..., Stack],
    keycloak: Keycloak,
    browser: WebDriver,  # noqa: F811
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    northwind_chat, contoso_chat = Receivers().start(), Receivers().start()
    request.addfinalizer(northwind_chat.stop)
    request.addfinalizer(contoso_chat.stop)
    notifications = tmp_path / "notifications.toml"
    notifications.write_text(
        f'[receivers.northwind-chat]\nkind = "webhook"\nurl = "{northwind_chat.base}/nw"\nclients = ["northwind"]\n'
        f'[receivers.contoso-chat]\nkind = "webhook"\nurl = "{contoso_chat.base}/co"\nclients = ["contoso"]\n'
        '[queues.reviewers-northwind]\nreceivers = ["northwind-chat", "contoso-chat"]\nmin_severity = "medium"\n'
        '[queues.reviewers-contoso]\nreceivers = ["contoso-chat"]\nmin_severity = "medium"\n'
    )
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"  # the realm's redirect URI: 127.0.0.1, any port (RFC 8252 loopback)
    stack = stack_factory(
        api_port=port,
        api_url=api_url,
        console_secure_cookie=False,  # plain http on 127.0.0.1
        notifications_file=notifications,
        notify_interval_seconds=0.2,
        **keycloak.console_settings(tmp_path, api_url),
    )
    bids, northwind_post, contoso_post = simulated()
    for name in ("api", "detector", "dispatcher"):
        stack.start(name)
    try:
        asyncio.run(publish(stack.settings, [*bids, northwind_post, contoso_post]))
        wait_until(lambda: len(claim_checks(stack)) == 2, timeout=180, what="both claim checks", interval=0.5)
        wait_until(lambda: caught_up(stack), timeout=120, what="the whole stream to be detected", interval=0.5)
        everything = all_exceptions(stack)
        claims = {e["client_id"]: e for e in everything if e["rule_id"] == "claim_verification"}
        assert set(claims) == {"northwind", "contoso"}
        northwind, contoso = claims["northwind"], claims["contoso"]
        assert (northwind["queue"], contoso["queue"]) == ("reviewers-northwind", "reviewers-contoso")
        northwind_bids = [e for e in everything if e["rule_id"] in BID_RULES and e["client_id"] == "northwind"]
        assert northwind_bids, "the bid stream made no northwind bid exception"
        wait_until(
            lambda: (
                (northwind["id"], "loopgate.exception.opened") in told(northwind_chat)
                and (contoso["id"], "loopgate.exception.opened") in told(contoso_chat)
            ),
            timeout=60,
            what="the reviewers' receivers to be told",
        )

        sign_in_through_keycloak(browser, stack, keycloak, "nora")
        assert text_of(browser, "#who-name") == "nora"
        assert text_of(browser, "#who-role") == "(reviewer)"
        assert text_of(browser, "#who-scope") == "clients northwind (queues reviewers-northwind)"
        see(browser, "#total", "1 matching")
        rows = browser.find_elements(By.CSS_SELECTOR, "table.queue tbody tr")
        assert [r.find_element(By.CSS_SELECTOR, "td.summary a").text for r in rows] == [northwind["summary"]]
        page = browser.page_source
        for hidden in [contoso["id"], *(e["id"] for e in northwind_bids)]:
            assert hidden not in page
        assert browser.find_elements(By.CSS_SELECTOR, "fieldset.bulk, input.pick, a[href='/console/silences']") == []

        browser.find_element(By.LINK_TEXT, northwind["summary"]).click()
        before = northwind["observed"]["product_claims"]
        caption = northwind["event"]["data"]["caption"]
        marked = {m.text.lower() for m in browser.find_elements(By.CSS_SELECTOR, "#caption mark.claim")}
        assert marked == {c.lower() for c in before}
        assert browser.find_elements(By.ID, "silence") == []
        browser.find_element(By.ID, "claim").click()
        see(browser, ".notice", "Claimed")
        see(browser, "#status", "claimed (assigned to nora)")
        Select(browser.find_element(By.ID, "decision")).select_by_value("corrected")
        browser.find_element(By.ID, "reason").send_keys("Only the first claim is substantiated")
        claims_field = browser.find_element(By.CSS_SELECTOR, "[name='after.product_claims']")
        claims_field.clear()
        claims_field.send_keys(CORRECTED_CLAIM)
        caption_field = browser.find_element(By.CSS_SELECTOR, "[name='after.caption']")
        caption_field.clear()
        caption_field.send_keys(CORRECTED_CAPTION)
        browser.find_element(By.ID, "resolve").click()
        see(browser, ".notice", "Resolved (corrected)")
        see(browser, "#resolution", "corrected by nora")
        browser.get(f"{stack.api_url}/console/exceptions/{contoso['id']}")
        see(browser, "main h1", "Not found")

        wait_until(lambda: len(outcomes_of(stack, northwind["id"])) == 1, timeout=30, what="the outcome on Kafka")
        [outcome] = outcomes_of(stack, northwind["id"])
        assert outcome["data"]["decision"] == "corrected"
        assert outcome["data"]["resolver"] == "nora"
        assert outcome["data"]["correction"] == {
            "caption": {"before": caption, "after": CORRECTED_CAPTION},
            "product_claims": {"before": before, "after": [CORRECTED_CLAIM]},
        }
        assert outcomes_of(stack, contoso["id"]) == []
        with httpx.Client(base_url=stack.api_url, timeout=10) as http:
            still = http.get(
                f"/v1/exceptions/{contoso['id']}", headers={"authorization": f"Bearer {stack.operator_token}"}
            )
        assert still.json()["status"] == "open"
    except BaseException:
        print(stack.logs())
        raise
    # Each client's receiver heard of its own client's claim check alone, whichever queue listed it.
    assert {subject for subject, _ in told(northwind_chat)} == {northwind["id"]}
    assert {subject for subject, _ in told(contoso_chat)} == {contoso["id"]}
