"""Social post captions: on-brand ones, off-voice ones, risky ones and ones with product claims."""

from __future__ import annotations

import random

from loopgate_tools.simulator.world import Client

_HOOKS = (
    "New season, new favourites.",
    "Meet the {product}.",
    "Say hello to the {product}.",
    "Your weekend just got better.",
    "Made for the way you live.",
    "Winter is here.",
    "Good things come to those who plan ahead.",
)
_BENEFITS = (
    "Designed for every day.",
    "Built to last, made to be used.",
    "Now in three new colours.",
    "Thoughtful details, honest materials.",
    "Comfortable from the first minute.",
    "Simple to set up, easy to love.",
)
_CTAS = (
    "Find out more at {domain}.",
    "Discover it at {domain}.",
    "Link in bio.",
    "See the range at {domain}.",
)
_OFF_VOICE = (
    "OMG!!! the {product} is LIT, u need it NOW!!! no cap",
    "ok so basically {product}?? yes. buy. lol",
    "BREAKING: {product} DESTROYS the competition!!! CLICK NOW!!!",
)
_RISKY = (
    "Forget the election chaos - grab a {product} instead.",
    "Cheaper than your divorce lawyer: the {product}.",
    "Hot enough to start a wildfire: the {product}.",
    "The {product}: more reliable than the hospital waiting list.",
)


def _hashtag(text: str) -> str:
    return "#" + "".join(w.capitalize() for w in text.replace("-", " ").split() if w.isalnum())


def clean_caption(rng: random.Random, client: Client) -> str:
    """An on-brand caption, always under 280 characters (the shortest platform limit)."""
    spec = client.spec
    product = rng.choice(spec.products)
    hook = rng.choice(_HOOKS).format(product=product)
    body = f"{hook} {rng.choice(_BENEFITS)} {rng.choice(_CTAS).format(domain=client.landing_domains[0])}"
    return f"{body} {_hashtag(spec.name)} {_hashtag(product)}"


def off_voice_caption(rng: random.Random, client: Client) -> str:
    return rng.choice(_OFF_VOICE).format(product=rng.choice(client.spec.products))


def risky_caption(rng: random.Random, client: Client) -> str:
    return f"{rng.choice(_RISKY).format(product=rng.choice(client.spec.products))} {_hashtag(client.spec.name)}"


def claim_caption(rng: random.Random, client: Client, claims: list[str]) -> str:
    product = rng.choice(client.spec.products)
    return f"The {product}: {', '.join(claims)}. {rng.choice(_CTAS).format(domain=client.landing_domains[0])}"


def long_caption(rng: random.Random, client: Client, length: int) -> str:
    """A rambling caption of exactly `length` characters."""
    parts: list[str] = []
    size = 0
    while size <= length:
        sentence = clean_caption(rng, client)
        parts.append(sentence)
        size += len(sentence) + 1
    return " ".join(parts)[:length]
