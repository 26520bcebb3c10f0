"""The console's resolve form offers an approval item its release decisions only (publish,
publish_corrected, withhold), and every other exception the five verdicts only."""

from __future__ import annotations

import re

from tests.fixtures.api import Api
from tests.integration.test_api_approvals import approval
from tests.integration.test_console import sign_in


def offered(page: str) -> list[str]:
    select = re.search(r'<select id="decision" name="decision">(.*?)</select>', page, re.S)
    assert select, page[:500]
    return re.findall(r'<option value="([^"]+)"', select.group(1))


async def test_an_approval_item_is_offered_release_decisions_and_a_breach_verdicts(console: Api) -> None:
    item = await console.create(**approval(None))
    breach = await console.create()
    await sign_in(console)

    page = await console.http.get(f"/console/exceptions/{item['id']}")
    assert page.status_code == 200
    assert offered(page.text) == ["publish", "publish_corrected", "withhold"]
    other = await console.http.get(f"/console/exceptions/{breach['id']}")
    assert offered(other.text) == ["confirmed", "false_positive", "corrected", "escalated", "dismissed"]
