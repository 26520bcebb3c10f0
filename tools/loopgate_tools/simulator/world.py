"""A small, realistic advertising world, built deterministically from a seed.

Clients run campaigns on bidding platforms (each campaign with a daily budget and a bid cap,
each line item with a stable typical bid and its noise), book placements on ad servers through
orders (each placement with booked impressions per hour and a typical CTR) and publish social
posts. Landing domains of a client with an allow-list in detection.toml come from that list.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from itertools import accumulate

from loopgate.detector.config import DetectionConfig

BID_NOISE = 0.03  # a line item's bid noise: standard deviation as a share of its level
DELIVERY_NOISE = 0.05  # a placement's hourly impressions noise, as a share of booked
MIN_EXPECTED_CLICKS = 20  # booked * CTR per hour at least this, so the CTR is not mostly noise

IAB_SIZES = ((300, 250), (728, 90), (160, 600), (320, 50), (300, 600), (970, 250), (336, 280))
AD_SERVERS = ("cm360", "gam", "xandr")
STRATEGIES = ("target_cpa", "target_roas", "maximize_conversions", "viewable_cpm", "max_clicks")
REGION = {"EUR": "eu", "USD": "us", "GBP": "uk"}
# Typical CPM range per bidding platform, in the client's currency.
CPM_RANGE = {
    "google_ads": (2.0, 12.0),
    "dv360": (3.0, 15.0),
    "meta": (3.0, 9.0),
    "ttd": (2.5, 14.0),
    "amazon_dsp": (4.0, 18.0),
}


@dataclass(frozen=True)
class ClientSpec:
    client_id: str
    name: str
    currency: str
    domains: tuple[str, ...]
    bid_platforms: tuple[str, ...]
    social_platforms: tuple[str, ...]
    products: tuple[str, ...]
    claims: tuple[str, ...]


CLIENT_SPECS: tuple[ClientSpec, ...] = (
    ClientSpec(
        "northwind",
        "Northwind",
        "EUR",
        ("northwind.example", "shop.northwind.example"),
        ("ttd", "dv360", "meta"),
        ("instagram", "facebook", "tiktok"),
        ("Trail Parka", "Summit Boots", "Fleece Hoodie"),
        ("30% lighter", "waterproof to 10,000 mm", "made from 80% recycled fibres"),
    ),
    ClientSpec(
        "contoso",
        "Contoso",
        "USD",
        ("contoso.example",),
        ("meta", "google_ads", "amazon_dsp"),
        ("x", "linkedin", "instagram"),
        ("Contoso Parka", "Contoso Laptop 14", "Contoso Earbuds"),
        ("30% lighter", "20-hour battery life", "#1 rated by reviewers"),
    ),
    ClientSpec(
        "fabrikam",
        "Fabrikam",
        "USD",
        ("fabrikam.example", "store.fabrikam.example"),
        ("google_ads", "meta"),
        ("instagram", "facebook"),
        ("Oslo Sofa", "Linen Bedding Set", "Oak Desk"),
        ("free delivery in 48 hours", "lifetime warranty"),
    ),
    ClientSpec(
        "globex",
        "Globex",
        "GBP",
        ("globex.example",),
        ("dv360", "google_ads"),
        ("linkedin", "x"),
        ("Globex Home Energy", "Smart Meter Plus"),
        ("save up to 25% on your bill", "100% renewable electricity"),
    ),
    ClientSpec(
        "initech",
        "Initech",
        "USD",
        ("initech.example",),
        ("google_ads", "ttd"),
        ("linkedin", "x"),
        ("TPS Cloud", "Initech CRM"),
        ("99.99% uptime", "set up in 5 minutes"),
    ),
    ClientSpec(
        "umbrella",
        "Umbrella",
        "EUR",
        ("umbrella.example",),
        ("meta", "amazon_dsp"),
        ("facebook", "instagram", "tiktok"),
        ("VitaBoost", "Umbrella SPF 50"),
        ("clinically proven", "dermatologist tested"),
    ),
    ClientSpec(
        "tailspin",
        "Tailspin Toys",
        "USD",
        ("tailspintoys.example",),
        ("amazon_dsp", "meta"),
        ("tiktok", "instagram", "facebook"),
        ("Sky Glider", "Robo Pup"),
        ("ages 3 and up", "award-winning design"),
    ),
    ClientSpec(
        "wingtip",
        "Wingtip Travel",
        "GBP",
        ("wingtip.example", "book.wingtip.example"),
        ("ttd", "google_ads"),
        ("instagram", "x", "facebook"),
        ("City Breaks", "Alpine Ski Week"),
        ("lowest price guaranteed", "free cancellation"),
    ),
)


@dataclass(frozen=True)
class Client:
    spec: ClientSpec
    landing_domains: tuple[str, ...]  # clean landing domains (the allow-list when there is one)
    allow_listed: bool  # domain_not_allowed is checked for this client

    @property
    def client_id(self) -> str:
        return self.spec.client_id


@dataclass(frozen=True)
class LineItem:
    line_item_id: str
    campaign_index: int
    level: float  # the typical bid CPM
    noise: float  # standard deviation of the bid around its level
    strategy: str


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    client: Client
    platform: str
    daily_budget: float
    max_bid_cpm: float  # at least 1.5x the highest line item level: room for bid anomalies
    source: str
    line_items: tuple[int, ...]  # indexes into World.line_items


@dataclass(frozen=True)
class Placement:
    placement_id: str
    order_id: str
    client: Client
    ad_server: str
    slot: tuple[int, int]
    booked_per_hour: int
    ctr: float
    landing_path: str
    creative_ids: tuple[str, ...]


@dataclass(frozen=True)
class World:
    clients: tuple[Client, ...]
    campaigns: tuple[Campaign, ...]
    line_items: tuple[LineItem, ...]
    placements: tuple[Placement, ...]
    # Cumulative activity weights (for bisect): some line items and placements are busier.
    line_item_cum_weights: tuple[float, ...] = field(repr=False)
    placement_cum_weights: tuple[float, ...] = field(repr=False)

    @property
    def orders(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.order_id for p in self.placements))


def _slug(text: str) -> str:
    return "-".join(text.lower().replace("%", "").replace(",", "").split())


def build_world(seed: int, rules: DetectionConfig) -> World:
    rng = random.Random(f"loopgate-world-{seed}")
    clients = tuple(
        Client(
            spec,
            tuple(rules.allowed_domains.get(spec.client_id) or spec.domains),
            spec.client_id in rules.allowed_domains,
        )
        for spec in CLIENT_SPECS
    )
    campaigns: list[Campaign] = []
    line_items: list[LineItem] = []
    li_weights: list[float] = []
    placements: list[Placement] = []
    p_weights: list[float] = []
    order_no, placement_no, creative_no = 300, 9001, 40
    for client in clients:
        spec = client.spec
        for _ in range(rng.randint(2, 3)):
            platform = rng.choice(spec.bid_platforms)
            lo, hi = CPM_RANGE[platform]
            indexes = []
            for _ in range(rng.randint(2, 4)):
                level = round(rng.uniform(lo, hi), 2)
                indexes.append(len(line_items))
                line_items.append(
                    LineItem(
                        f"li-{88000 + len(line_items)}",
                        len(campaigns),
                        level,
                        level * BID_NOISE,
                        rng.choice(STRATEGIES),
                    )
                )
                li_weights.append(rng.lognormvariate(0.0, 0.8))
            top = max(line_items[i].level for i in indexes)
            campaigns.append(
                Campaign(
                    campaign_id=f"cmp-{1001 + len(campaigns)}",
                    client=client,
                    platform=platform,
                    daily_budget=float(rng.randrange(500, 20000, 50)),
                    max_bid_cpm=round(top * rng.uniform(1.6, 2.0), 2),
                    source=f"bidder/{platform}-{REGION[spec.currency]}-{rng.randint(1, 3)}",
                    line_items=tuple(indexes),
                )
            )
        for _ in range(rng.randint(1, 2)):
            order_id = f"ord-{order_no}"
            order_no += 1
            product = rng.choice(spec.products)
            for _ in range(rng.randint(2, 4)):
                ctr = round(rng.uniform(0.001, 0.005), 4)
                booked = rng.randrange(10_000, 60_000, 500)
                booked = max(booked, int(MIN_EXPECTED_CLICKS / ctr) // 500 * 500 + 500)
                creatives = tuple(f"cr-{creative_no + k}" for k in range(rng.randint(1, 3)))
                creative_no += len(creatives)
                placements.append(
                    Placement(
                        placement_id=f"plc-{placement_no}",
                        order_id=order_id,
                        client=client,
                        ad_server=rng.choice(AD_SERVERS),
                        slot=rng.choice(IAB_SIZES),
                        booked_per_hour=booked,
                        ctr=ctr,
                        landing_path=_slug(product),
                        creative_ids=creatives,
                    )
                )
                placement_no += 1
                p_weights.append(rng.lognormvariate(0.0, 0.4))
    return World(
        clients=clients,
        campaigns=tuple(campaigns),
        line_items=tuple(line_items),
        placements=tuple(placements),
        line_item_cum_weights=tuple(accumulate(li_weights)),
        placement_cum_weights=tuple(accumulate(p_weights)),
    )
