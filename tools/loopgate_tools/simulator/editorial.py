"""The editor case: one content client's weeks of generated posts, with what was really wrong with each.

This is the case Loopgate is built around: a client publishing 30 posts a week on four platforms,
whose agency editor read every post (8 minutes each, 4 hours a week). Each post is drawn with its
real problems first (off-voice, unsafe, too long for its platform, an unsubstantiated product
claim), then with what the content pipeline's classifiers made of it: the brand-voice and
brand-safety scores and the claim detector's `product_claims` are right most of the time and wrong
at the rates below. So the detector sees what it would see in production, scores that sometimes
miss a real problem or flag a sound post, and the ground truth says which posts needed a person.

Every rate is a named assumption (docs/review-load.md lists them). Posts are built apart from
generator.py's stream, with ids of their own (`ed<seed>-...`), so the seeds of that stream generate
what they always did.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

from loopgate.detector.config import DetectionConfig
from loopgate_schemas import topics
from loopgate_tools.simulator import captions
from loopgate_tools.simulator.generator import CONTENT_GENERATED, CONTENT_MODELS, DEFAULT_START, SimEvent
from loopgate_tools.simulator.world import CLIENT_SPECS, Client, ClientSpec

# The case's client: content only (no campaigns or placements), four platforms.
EDITORIAL_SPEC = ClientSpec(
    "bluefin",
    "Bluefin Coffee",
    "EUR",
    ("bluefin.example",),
    (),
    ("instagram", "facebook", "linkedin", "tiktok"),
    ("Cold Brew No. 3", "Espresso Blend", "Oat Latte Can"),
    ("Fairtrade certified", "roasted within 48 hours", "50% less sugar", "100% compostable pods"),
)
EDITORIAL_CLIENT = EDITORIAL_SPEC.client_id
POSTS_PER_WEEK = 30
WEEK = dt.timedelta(days=7)

# What is really wrong with a post (independent draws; a post may have several problems).
OFF_VOICE_RATE = 0.12  # posts off the brand's voice
UNSAFE_RATE = 0.02  # posts a brand-safety reviewer would stop
TOO_LONG_RATE = 0.03  # posts over their platform's caption limit (platforms with a limit under 5000)
CLAIM_RATE = 0.30  # posts stating a product claim
FALSE_CLAIM_RATE = 0.20  # of the claims stated, the share the client cannot substantiate
# What the classifiers make of it.
VOICE_MISS = 0.10  # off-voice posts the brand-voice classifier scores at or above brand_voice_min
VOICE_FALSE_FLAG = 0.05  # on-voice posts it scores below brand_voice_min
SAFETY_MISS = 0.05  # unsafe posts scored at or above brand_safety_min
SAFETY_FALSE_FLAG = 0.02  # safe posts scored below it
CLAIM_DETECTOR_MISS = 0.05  # stated claims the claim detector does not find (product_claims stays empty)
NEAR = 0.08  # a classifier's wrong score lands within this of the threshold
LONG_CAPTION_LIMIT = 5000  # a too-long post is only drawn on a platform whose limit is below this

# A real problem is named by the rule meant to catch it.
PROBLEM_RULES = ("brand_voice", "brand_safety", "caption_too_long", "claim_verification")


@dataclass(frozen=True, slots=True)
class LabelledEvent:
    """A simulated event and its real problems (rule ids: the rule meant to catch each), with a line
    per problem saying what it was."""

    event: SimEvent
    problems: frozenset[str] = frozenset()
    details: Mapping[str, str] = field(default_factory=dict)


def known_clients() -> dict[str, ClientSpec]:
    """Every client the simulated world has, the editor case's first."""
    return {EDITORIAL_CLIENT: EDITORIAL_SPEC, **{spec.client_id: spec for spec in CLIENT_SPECS}}


def editorial_posts(
    *,
    weeks: int,
    seed: int,
    rules: DetectionConfig,
    posts_per_week: int = POSTS_PER_WEEK,
    client_id: str = EDITORIAL_CLIENT,
    start: dt.datetime = DEFAULT_START,
) -> list[LabelledEvent]:
    """`weeks` weeks of `posts_per_week` posts of `client_id`, spread evenly over each week and
    round-robin over the client's social platforms. Same arguments, same posts (and bytes)."""
    if weeks <= 0:
        raise ValueError(f"weeks must be a positive whole number (got {weeks})")
    if posts_per_week <= 0:
        raise ValueError(f"posts_per_week must be a positive whole number (got {posts_per_week})")
    clients = known_clients()
    if client_id not in clients:
        raise ValueError(f"unknown client {client_id!r}: one of {', '.join(clients)}")
    spec = clients[client_id]
    client = Client(
        spec, tuple(rules.allowed_domains.get(client_id) or spec.domains), client_id in rules.allowed_domains
    )
    rng = random.Random(f"loopgate-editorial-{seed}-{client_id}")
    step = WEEK / posts_per_week
    posts = []
    for n in range(weeks * posts_per_week):
        platform = spec.social_platforms[n % len(spec.social_platforms)]
        posts.append(_post(rng, client, platform, n, start + step * n, seed, rules))
    return posts


def _score(rng: random.Random, threshold: float, *, flagged: bool, near: bool) -> float:
    """A classifier score below `threshold` when `flagged`, at or above it otherwise; `near` (a
    wrong score: a close call) within NEAR of the threshold, else beyond NEAR on its side."""
    if flagged:
        low, high = (threshold - NEAR, threshold) if near else (threshold - 0.4, threshold - NEAR)
        score = round(rng.uniform(max(0.0, low), max(0.0, high)), 3)
        return max(0.0, min(score, math.floor(threshold * 1000 - 1) / 1000))
    low, high = (threshold, threshold + NEAR) if near else (threshold + NEAR, 1.0)
    score = round(rng.uniform(min(1.0, low), min(1.0, high)), 3)
    return min(1.0, max(score, math.ceil(threshold * 1000) / 1000))


def _post(
    rng: random.Random,
    client: Client,
    platform: str,
    n: int,
    at: dt.datetime,
    seed: int,
    rules: DetectionConfig,
) -> LabelledEvent:
    th = rules.thresholds_for(client.client_id, platform)
    limit = rules.caption_limits.get(platform)
    off_voice = rng.random() < OFF_VOICE_RATE
    unsafe = rng.random() < UNSAFE_RATE
    too_long = rng.random() < TOO_LONG_RATE and limit is not None and limit < LONG_CAPTION_LIMIT
    states_claim = rng.random() < CLAIM_RATE
    false_claim = states_claim and rng.random() < FALSE_CLAIM_RATE
    # The classifiers' reading of it.
    voice_wrong = rng.random() < (VOICE_MISS if off_voice else VOICE_FALSE_FLAG)
    safety_wrong = rng.random() < (SAFETY_MISS if unsafe else SAFETY_FALSE_FLAG)
    claim_found = states_claim and rng.random() >= CLAIM_DETECTOR_MISS
    voice = _score(rng, th.brand_voice_min, flagged=off_voice != voice_wrong, near=voice_wrong)
    safety = _score(rng, th.brand_safety_min, flagged=unsafe != safety_wrong, near=safety_wrong)
    spec = client.spec
    claims = rng.sample(spec.claims, k=1) if states_claim else []
    if too_long and limit is not None:
        caption = captions.long_caption(rng, client, limit + rng.randint(1, 400))
    elif unsafe:
        caption = captions.risky_caption(rng, client)
    elif off_voice:
        caption = captions.off_voice_caption(rng, client)
    elif claims:
        caption = captions.claim_caption(rng, client, claims)
    else:
        caption = captions.clean_caption(rng, client)
    if claims and claims[0] not in caption:
        caption = f"{claims[0]}! {caption}"
    if limit is not None and not too_long and len(caption) >= limit:
        caption = caption[: limit - 1]
    details: dict[str, str] = {}
    if off_voice:
        details["brand_voice"] = "off the brand's voice"
    if unsafe:
        details["brand_safety"] = "not brand safe"
    if too_long:
        details["caption_too_long"] = f"{len(caption)} characters on {platform} (limit {limit})"
    if false_claim:
        details["claim_verification"] = f"claims {claims[0]!r}, which the client cannot substantiate"
    content_id = f"post-{client.client_id}-{seed}-{n:06d}"
    event_id = f"ed{seed}-{client.client_id}-{n:07d}"
    data = {
        "content_id": content_id,
        "client_id": client.client_id,
        "platform": platform,
        "caption": caption,
        "model": CONTENT_MODELS[rng.randrange(len(CONTENT_MODELS))],
        "model_confidence": round(rng.uniform(0.35, 0.99), 3),
        "brand_voice_score": voice,
        "brand_safety_score": safety,
        "product_claims": claims if claim_found else [],
    }
    value = orjson.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": "contentgen/social",
            "type": CONTENT_GENERATED,
            "time": at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z",
            "subject": content_id,
            "data": data,
        }
    )
    expected = tuple(
        rule
        for rule, fires in (
            ("caption_too_long", too_long),
            ("brand_safety", safety < th.brand_safety_min),
            ("brand_voice", voice < th.brand_voice_min),
            ("claim_verification", claim_found),
        )
        if fires
    )
    event = SimEvent(topics.CONTENT, content_id.encode(), value, event_id, CONTENT_GENERATED, content_id, expected)
    return LabelledEvent(event, frozenset(details), details)
