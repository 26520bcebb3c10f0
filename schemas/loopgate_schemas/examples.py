"""Where the contract's example events live in this repository.

schemas/examples/ holds the examples of docs/contract.md, which says what each one reads as
(tests/unit/test_contract_doc.py holds them to it). They are a verbatim copy of the examples the
contract was handed over with; tests/unit/test_events.py checks that the copy still equals those
wherever they are checked out beside the repository.
"""

import json
from pathlib import Path
from typing import Any

CONTRACT_EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SHARED_CONTRACT_EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "contracts" / "examples"

# The contract's valid example of each event type (files in CONTRACT_EXAMPLES), carried as `examples` by the
# event type's generated JSON Schema.
VALID_EXAMPLES: dict[str, tuple[str, ...]] = {
    "bid.adjusted": ("bid-adjusted.json", "bid-adjusted-over-cap.json"),
    "budget.pacing": ("budget-pacing.json",),
    "campaign.constraint_violated": ("campaign-constraint.json",),
    "placement.trafficked": ("placement-trafficked.json",),
    "delivery.report": ("delivery-report.json",),
    "content.generated": ("content-generated.json",),
}


def valid_examples(event_type: str) -> list[dict[str, Any]]:
    """The contract's valid examples of `event_type`, parsed, in the order of VALID_EXAMPLES."""
    return [json.loads((CONTRACT_EXAMPLES / name).read_text()) for name in VALID_EXAMPLES.get(event_type, ())]
