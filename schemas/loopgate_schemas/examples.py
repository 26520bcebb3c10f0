"""Where the contract's example events live in this repository.

schemas/examples/ is a verbatim copy of ../shared/contracts/examples/ (the contract), so the
tests and upstream teams have them in a fresh clone; tests/unit/test_events.py checks that the
copy still equals the contract's wherever the contract is checked out beside the repository.
"""

from pathlib import Path

CONTRACT_EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SHARED_CONTRACT_EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "contracts" / "examples"
