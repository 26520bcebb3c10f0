"""Threshold tuning a human approves (`loopgate tune`): from the operators' verdicts, a proposed diff
to detection.toml, each change with its evidence. Pure functions; the CLI reads and prints.

Only loosening is proposed. A verdict history holds the firings and what operators made of them, so
it shows which firings a looser threshold would have spared (and how many of those were right); it
says nothing of the events that did not fire, so it cannot tell what a tighter one would catch.

For each tunable rule and scope (one client, then one platform, then the default), the candidates
are the observed values of the scope's false positives, rounded outward to the threshold's grid.
A candidate is proposed when, over the scope's decided verdicts (confirmed, corrected, false
positive; dismissed and escalated are reported but judge nothing):
  - the scope has at least `min_verdicts` of them (`min_verdicts_critical` for a critical rule),
  - it removes at least `min_noise_removed` false positives,
  - the confirmed it would miss are at most `max_missed_share` of what it removes (none at all
    for a critical rule),
  - it moves the threshold by at most `max_change` of its value (a finite threshold on the side
    it fires keeps the rule on: the rule is never switched off),
and among those the one with the best `noise removed - miss_cost x missed` (ties: the smaller
change) wins. A scope whose verdicts are mostly false positives but too few is reported as held
back, never proposed.

Scopes are taken narrowest first: a client's override wins over its platform's, a platform's over
the default, so a platform is judged on the verdicts of clients without an override of that
threshold (configured or proposed here), and the default on those with neither.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from loopgate.common.errors import LoopgateError
from loopgate.common.strict_toml import parse_toml
from loopgate.detector.config import DetectionConfig
from loopgate_schemas.exceptions import Severity
from loopgate_schemas.outcomes import OUTCOME_TYPE, Decision, OutcomeData
from loopgate_schemas.training import TrainingRecord

RIGHT = frozenset({Decision.CONFIRMED, Decision.CORRECTED})  # the flag was right: a miss if it stops firing
WRONG = frozenset({Decision.FALSE_POSITIVE})  # the rule should not have fired: noise

Scope = Literal["client", "platform", "default"]
_EPS = 1e-9  # observed values are decimals read as floats: 1.35 + 0.04 is 1.3900000000000001


@dataclass(frozen=True, slots=True)
class Verdict:
    """One final resolution, with what the rule saw: all tuning needs of an outcome."""

    exception_id: str
    rule_id: str
    decision: Decision
    client_id: str | None
    platform: str | None
    observed: dict[str, Any]
    resolved_at: datetime


@dataclass(frozen=True, slots=True)
class TunableThreshold:
    """A threshold of [thresholds] and the observed value of one rule it is compared with."""

    rule_id: str
    key: str
    value_of: Callable[[dict[str, Any]], float | None]
    fires_above: bool  # fires when value > threshold (else when value < threshold)
    grid: float = 0.01


def _number(observed: dict[str, Any], name: str) -> float | None:
    value = observed.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _ratio_up(observed: dict[str, Any]) -> float | None:
    ratio = _number(observed, "ratio")
    return ratio if ratio is not None and ratio > 1 else None


def _ratio_down(observed: dict[str, Any]) -> float | None:
    ratio = _number(observed, "ratio")
    return ratio if ratio is not None and ratio < 1 else None


TUNABLE: tuple[TunableThreshold, ...] = (
    TunableThreshold("pacing_off", "pacing_max_ratio", lambda o: _number(o, "ratio"), fires_above=True),
    TunableThreshold("bid_jump", "bid_jump_max_ratio", _ratio_up, fires_above=True),
    TunableThreshold("bid_jump", "bid_jump_min_ratio", _ratio_down, fires_above=False),
    TunableThreshold("brand_safety", "brand_safety_min", lambda o: _number(o, "brand_safety_score"), fires_above=False),
    TunableThreshold("brand_voice", "brand_voice_min", lambda o: _number(o, "brand_voice_score"), fires_above=False),
)


@dataclass(frozen=True, slots=True)
class TuningPolicy:
    min_verdicts: int = 20  # decided verdicts a scope needs before anything is proposed for it
    min_verdicts_critical: int = 100  # ... for a critical rule
    min_noise_removed: int = 5  # false positives a change must spare
    max_missed_share: float = 0.1  # confirmed among what a change removes, at most (critical: none)
    miss_cost: float = 5.0  # one missed confirmation weighs as much as this many false positives
    max_change: float = 0.5  # a change moves a threshold by at most this share of its value
    min_wrong_share_to_report: float = 0.5  # a thin scope this noisy is reported as held back


@dataclass(frozen=True, slots=True)
class Evidence:
    verdicts: int  # decided verdicts in the scope (confirmed, corrected, false positive)
    other: int  # dismissed or escalated in the scope: reported, judging nothing
    no_longer_fire: int  # past exceptions (any decision) the new threshold would not have raised
    missed: int  # of those, confirmed or corrected: would be missed
    noise_removed: int  # of those, false positives
    minimum: int  # the decided verdicts a scope needs for this rule


@dataclass(frozen=True, slots=True)
class Proposal:
    rule_id: str
    key: str
    scope: Scope
    name: str | None  # the client or platform; None for the default
    current: float
    proposed: float
    evidence: Evidence

    @property
    def table(self) -> str:
        if self.scope == "default":
            return "thresholds"
        return f"{'clients' if self.scope == 'client' else 'platforms'}.{_toml_key(self.name or '')}"


@dataclass(frozen=True, slots=True)
class HeldBack:
    """A scope whose verdicts lean towards loosening, on too little evidence to propose it."""

    rule_id: str
    key: str
    scope: Scope
    name: str | None
    verdicts: int
    wrong: int
    minimum: int


@dataclass(slots=True)
class TuningResult:
    proposals: list[Proposal] = field(default_factory=list)
    held_back: list[HeldBack] = field(default_factory=list)
    held_back_sets: set[tuple[str, frozenset[str]]] = field(default_factory=set, repr=False)


def verdict_from_json(doc: Any) -> Verdict | None:
    """A verdict from one outcome CloudEvent (as on exception-outcomes) or one training-data export
    row; None for anything else, or an outcome without what tuning needs (a v1 outcome has no
    observed values). Only an export row, or an event carried whole, names the platform."""
    if not isinstance(doc, dict):
        return None
    try:
        if doc.get("type") == OUTCOME_TYPE and isinstance(doc.get("data"), dict):
            data: OutcomeData = OutcomeData.model_validate(doc["data"])
            platform = None
        else:
            data = TrainingRecord.model_validate(doc)
            event_data = (data.event or {}).get("data")
            platform = data.platform or (event_data.get("platform") if isinstance(event_data, dict) else None)
    except ValidationError:
        return None
    if data.observed is None:
        return None
    decision = data.decision
    review = data.second_review if isinstance(data, TrainingRecord) else None
    if review is not None and review.status == "disagreed":
        return None  # contested until the lead decides: not a label to tune on
    if review is not None and review.final_decision is not None:
        decision = review.final_decision  # the settled label: the lead's (gold) or the two reviewers' shared one
    return Verdict(
        exception_id=data.exception_id,
        rule_id=data.rule_id,
        decision=decision,
        client_id=data.client_id,
        platform=platform if isinstance(platform, str) else None,
        observed=data.observed,
        resolved_at=data.resolved_at,
    )


def latest_verdicts(verdicts: Iterable[Verdict]) -> list[Verdict]:
    """One verdict per exception, its latest (an outcome delivered twice counts once; a reopened
    exception's later resolution replaces the earlier one)."""
    latest: dict[str, Verdict] = {}
    for v in verdicts:
        seen = latest.get(v.exception_id)
        if seen is None or v.resolved_at >= seen.resolved_at:
            latest[v.exception_id] = v
    return sorted(latest.values(), key=lambda v: (v.resolved_at, v.exception_id))


def propose(
    config: DetectionConfig, verdicts: Iterable[Verdict], policy: TuningPolicy = TuningPolicy()
) -> TuningResult:
    """The threshold changes the verdicts support (deterministic for a given history)."""
    history = latest_verdicts(verdicts)
    result = TuningResult()
    for spec in TUNABLE:
        valued = [
            (v, x) for v in history if v.rule_id == spec.rule_id for x in [spec.value_of(v.observed)] if x is not None
        ]
        critical = config.severity_of(spec.rule_id) is Severity.CRITICAL
        _propose_rule(config, spec, valued, critical, policy, result)
    return result


def _propose_rule(
    config: DetectionConfig,
    spec: TunableThreshold,
    valued: list[tuple[Verdict, float]],
    critical: bool,
    policy: TuningPolicy,
    result: TuningResult,
) -> None:
    default = float(getattr(config.thresholds, spec.key))
    clients_overridden = {c for c, o in config.clients.items() if getattr(o, spec.key) is not None}
    platforms_overridden = {p for p, o in config.platforms.items() if getattr(o, spec.key) is not None}

    def current(layer: dict[str, Any], name: str, fallback: float) -> float:
        override = layer.get(name)
        value = getattr(override, spec.key) if override is not None else None
        return float(value) if value is not None else fallback

    def platform_value(platform: str | None) -> float:
        return current(config.platforms, platform or "", default)

    for client in sorted({v.client_id for v, _ in valued if v.client_id}):
        rows = [(v, x) for v, x in valued if v.client_id == client]
        platforms = {v.platform for v, _ in rows}
        base = platform_value(next(iter(platforms))) if len(platforms) == 1 else default
        if _judge(spec, "client", client, current(config.clients, client, base), rows, critical, policy, result):
            clients_overridden.add(client)
    rest = [(v, x) for v, x in valued if v.client_id not in clients_overridden]
    for platform in sorted({v.platform for v, _ in rest if v.platform}):
        rows = [(v, x) for v, x in rest if v.platform == platform]
        if _judge(spec, "platform", platform, platform_value(platform), rows, critical, policy, result):
            platforms_overridden.add(platform)
    rows = [(v, x) for v, x in rest if v.platform not in platforms_overridden]
    _judge(spec, "default", None, default, rows, critical, policy, result)


def _judge(
    spec: TunableThreshold,
    scope: Scope,
    name: str | None,
    current: float,
    rows: Sequence[tuple[Verdict, float]],
    critical: bool,
    policy: TuningPolicy,
    result: TuningResult,
) -> bool:
    """Propose the best loosening of this scope's threshold, if its verdicts support one."""
    decided = [(v, x) for v, x in rows if v.decision in RIGHT or v.decision in WRONG]
    wrong = sum(1 for v, _ in decided if v.decision in WRONG)
    minimum = policy.min_verdicts_critical if critical else policy.min_verdicts
    if not decided:
        return False
    if len(decided) < minimum:
        ids = frozenset(v.exception_id for v, _ in decided)
        noisy = wrong >= policy.min_noise_removed and wrong / len(decided) >= policy.min_wrong_share_to_report
        if noisy and (spec.key, ids) not in result.held_back_sets:  # a wider scope of the same verdicts: once
            result.held_back_sets.add((spec.key, ids))
            result.held_back.append(HeldBack(spec.rule_id, spec.key, scope, name, len(decided), wrong, minimum))
        return False
    limit = current * (1 + policy.max_change) if spec.fires_above else current * (1 - policy.max_change)
    best: tuple[float, float, Evidence] | None = None  # (objective, -change, evidence) of the best candidate
    best_value = current
    for candidate in sorted({_outward(x, spec) for v, x in decided if v.decision in WRONG}):
        loosens = candidate > current if spec.fires_above else candidate < current
        within = candidate <= limit if spec.fires_above else candidate >= limit
        if not loosens or not within or candidate <= 0:
            continue
        spared = [v for v, x in rows if (x <= candidate + _EPS if spec.fires_above else x >= candidate - _EPS)]
        missed = sum(1 for v in spared if v.decision in RIGHT)
        noise = sum(1 for v in spared if v.decision in WRONG)
        judged = missed + noise
        if noise < policy.min_noise_removed or (critical and missed) or missed > policy.max_missed_share * judged:
            continue
        objective = noise - policy.miss_cost * missed
        evidence = Evidence(len(decided), len(rows) - len(decided), len(spared), missed, noise, minimum)
        key = (objective, -abs(candidate - current), evidence)
        if objective > 0 and (best is None or key[:2] > best[:2]):
            best, best_value = key, candidate
    if best is None:
        return False
    result.proposals.append(Proposal(spec.rule_id, spec.key, scope, name, current, best_value, best[2]))
    return True


def _outward(value: float, spec: TunableThreshold) -> float:
    """The grid value at or beyond `value` on the side that stops it firing."""
    steps = value / spec.grid
    snapped = math.ceil(steps - _EPS) if spec.fires_above else math.floor(steps + _EPS)
    return round(snapped * spec.grid, 10)


# --- the proposal as a diff to detection.toml -----------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(name: str) -> str:
    return name if _BARE_KEY.match(name) else '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _header_of(line: str) -> str | None:
    stripped = line.strip()
    if not stripped.startswith("[") or stripped.startswith("[["):
        return None
    try:  # the header's table path, as TOML reads it (quoted or bare keys alike)
        parsed = tomllib.loads(stripped.split("#", 1)[0].strip() + "\n")
    except tomllib.TOMLDecodeError:
        return None
    path: list[str] = []
    node: Any = parsed
    while isinstance(node, dict) and len(node) == 1:
        key = next(iter(node))
        path.append(_toml_key(key))
        node = node[key]
    return ".".join(path)


def _format(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.1f}"


def apply_proposals(text: str, proposals: Sequence[Proposal]) -> str:
    """detection.toml's text with each proposal set (comments and layout kept)."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    for p in proposals:
        note = (
            f"  # loopgate tune: {p.evidence.noise_removed} false positives fewer, "
            f"{p.evidence.missed} confirmed missed, {p.evidence.verdicts} verdicts"
        )
        setting = f"{p.key} = {_format(p.proposed)}"
        headers = [i for i, line in enumerate(lines) if _header_of(line) is not None]
        start = next((i for i in headers if _header_of(lines[i]) == p.table), None)
        if start is None:
            lines += ["\n", f"[{p.table}]\n", f"{setting}{note}\n"]
            continue
        end = next((i for i in headers if i > start), len(lines))
        key_line = re.compile(rf"^\s*{re.escape(p.key)}\s*=")
        at = next((i for i in range(start + 1, end) if key_line.match(lines[i])), None)
        if at is None:
            lines.insert(start + 1, f"{setting}{note}\n")
        else:
            lines[at] = f"{setting}{note}\n"
    return "".join(lines)


class ProposalInvalid(LoopgateError):
    """The proposed file would not load, or would not set what it proposes (a bug: never printed)."""


def proposal_diff(text: str, proposals: Sequence[Proposal], path: str) -> str:
    """A unified diff from the current detection.toml to the proposed one, checked to load and to
    set exactly the proposed thresholds."""
    if not proposals:
        return ""
    proposed = apply_proposals(text, proposals)
    config = parse_toml(proposed, DetectionConfig, source=f"{path} (proposed)", error=ProposalInvalid)
    for p in proposals:
        layer = {"client": config.clients, "platform": config.platforms}.get(p.scope)
        holder = config.thresholds if layer is None else layer.get(p.name or "")
        if holder is None or getattr(holder, p.key) != p.proposed:
            raise ProposalInvalid(f"{p.table}.{p.key} does not read back as {p.proposed}")
    return "".join(
        difflib.unified_diff(
            text.splitlines(keepends=True), proposed.splitlines(keepends=True), f"a/{path}", f"b/{path}"
        )
    )


def describe(result: TuningResult) -> str:
    """The evidence, one paragraph per proposal, then what was held back."""
    out: list[str] = []
    if not result.proposals:
        out.append("No threshold change is supported by the verdicts.")
    for n, p in enumerate(result.proposals, 1):
        e = p.evidence
        where = "default" if p.scope == "default" else f"{p.scope} {p.name}"
        direction = "raise" if p.proposed > p.current else "lower"
        out.append(
            f"{n}. {p.rule_id} ({where}): {direction} {p.key} {_format(p.current)} -> {_format(p.proposed)}\n"
            f"   would no longer fire: {e.no_longer_fire} of the {e.verdicts + e.other} past exceptions in this scope\n"
            f"   of those, confirmed or corrected (would be missed): {e.missed}\n"
            f"   of those, false positives (noise removed): {e.noise_removed}\n"
            f"   verdicts behind it: {e.verdicts} decided (minimum {e.minimum}), {e.other} dismissed or escalated"
        )
    for h in result.held_back:
        where = "default" if h.scope == "default" else f"{h.scope} {h.name}"
        out.append(
            f"held back: {h.rule_id} ({where}) {h.key}: {h.wrong} of {h.verdicts} decided verdicts are false "
            f"positives, fewer verdicts than the {h.minimum} a change needs"
        )
    return "\n".join(out) + "\n"
