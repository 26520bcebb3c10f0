"""The review-load figures as a printed table, docs/review-load.md, its plot and the README's headline.

Everything here is a pure function of a ReviewLoad: the same measurement renders the same text,
and the plot the same PNG bytes (matplotlib's Agg canvas, no date or version in its metadata).
"""

from __future__ import annotations

import io
from pathlib import Path

from loopgate_tools.review_load import (
    CASE_REDESIGNED_MINUTES,
    CASE_REVIEW_EVERYTHING_MINUTES,
    DOC_NAME,
    MISSES_LISTED,
    PLOT_NAME,
    Comparison,
    EditorCase,
    ReviewLoad,
    Row,
)
from loopgate_tools.simulator import editorial

DOC_LINK = "docs/review-load.md"
SERIES_COLOURS = {"everything": "#999999", "gate": "#4c72b0", "random_sample": "#55a868"}
PRINTED_MISSES = 10


def _ratio(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _share(x: float | None) -> str:
    return "—" if x is None else f"{x:.2%}"


def _minutes(x: float) -> str:
    return f"{x:,.0f}"


def _per_week(x: float) -> str:
    return f"{x:,.1f}"


# --- the editor case -------------------------------------------------------------------------


def editor_rows(case: EditorCase) -> list[tuple[str, float | None, float | None, float | None, Row | None]]:
    """(label, editor min/week, client reviewers min/week, together min/week, row) per line of the case's table."""
    c = case.comparison
    w = case.per_week
    return [
        ("review everything (the editor reads every post)", w(c.everything.minutes), 0.0, w(c.everything.minutes),
         c.everything),
        ("Loopgate's gates (style to the editor, claims to the client)", w(case.editor_minutes),
         w(case.client_minutes), w(c.gate.minutes), c.gate),
        ("random sample of as many posts (the editor)", w(c.random_sample.minutes), 0.0, w(c.random_sample.minutes),
         c.random_sample),
        ("the case: review everything (reported)", CASE_REVIEW_EVERYTHING_MINUTES, None,
         CASE_REVIEW_EVERYTHING_MINUTES, None),
        ("the case: its redesigned workflow (reported)", None, None, CASE_REDESIGNED_MINUTES, None),
    ]  # fmt: skip


def _editor_markdown(case: EditorCase) -> list[str]:
    weeks, per = case.weeks, case.posts_per_week
    lines = [
        f"| {case.client}, {per} posts a week | agency editor, min/week | client reviewers, min/week | together, "
        "min/week | posts seen | recall of real problems | precision |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, editor, client, together, row in editor_rows(case):
        cells = [
            label,
            "—" if editor is None else _per_week(editor),
            "—" if client is None else _per_week(client),
            "—" if together is None else _per_week(together),
            "—" if row is None else f"{row.seen / weeks:.1f} a week ({_share(row.share)})",
            "—" if row is None else _ratio(row.recall),
            "—" if row is None else _ratio(row.precision),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Per queue under the gates (every week together, then a week):",
        "",
        "| queue | who | posts | minutes | minutes a week |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for queue, minutes in case.minutes_by_queue.items():
        who = "the client's reviewers" if queue == case.client_queue else "the agency's editor"
        items = case.items_by_queue[queue]
        lines.append(f"| `{queue}` | {who} | {items:,} | {_minutes(minutes)} | {_per_week(case.per_week(minutes))} |")
    lines += ["", "Per rule (a post each rule put in front of a person, over every week):", ""]
    lines += _rule_table(case.comparison.rules)
    return lines


def _misses_markdown(case: EditorCase) -> list[str]:
    c = case.comparison
    gate = c.gate
    missed = gate.problems - gate.hits
    if not case.missed_by_rule:
        return ["Every real problem's own rule fired on it: the gates miss nothing in this world."]
    lines = [
        f"Recall of real problems is {_ratio(gate.recall)}: of the {gate.problems:,} posts with a real problem, "
        f"{missed:,} reach no person. A problem is missed when its own rule does not fire and nothing else (another "
        "rule, an audit sample) puts the post in front of someone. The detector is not at fault: each rule fires on "
        "exactly the values it is given (the evaluator holds it to that on the hidden streams); the misses are the "
        "content pipeline's classifiers scoring a post wrong, at the rates the simulation assumes:",
        "",
    ]
    why = {
        "brand_voice": f"off-voice posts the voice classifier scored at or above brand_voice_min "
        f"(it misses {editorial.VOICE_MISS:.0%} of them)",
        "brand_safety": f"unsafe posts the safety classifier scored at or above brand_safety_min "
        f"(it misses {editorial.SAFETY_MISS:.0%})",
        "claim_verification": f"unsubstantiated claims the claim detector did not find (it misses "
        f"{editorial.CLAIM_DETECTOR_MISS:.0%} of stated claims), so claim_verification never routed them to the "
        "client",
    }
    for problem, n in case.missed_by_rule.items():
        anyway = case.seen_anyway(problem)
        lines.append(
            f"- `{problem}`: {n} {why.get(problem, 'real problems its rule did not fire on')}; {anyway} of them "
            f"reached a person anyway (an audit sample or another rule's flag), {n - anyway} did not."
        )
    first = f" (the first {MISSES_LISTED})" if len(case.misses) > MISSES_LISTED else ""
    lines += [
        "",
        f"The posts no person saw{first}:",
        "",
    ]
    lines += ["| event | problem | what was wrong | why no gate caught it |", "| --- | --- | --- | --- |"]
    for m in case.misses[:MISSES_LISTED]:
        lines.append(f"| `{m.event_id}` | `{m.problem}` | {m.detail} | {m.why} |")
    return lines


# --- the agency's streams --------------------------------------------------------------------


def _rule_table(rules: list[Row]) -> list[str]:
    lines = [
        "| rule | items | share of events | real problems of its kind | caught by it | recall | precision | minutes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rules:
        lines.append(
            f"| `{r.label}` | {r.seen:,} | {_share(r.share)} | {r.problems:,} | {r.hits:,} | {_ratio(r.recall)} | "
            f"{_ratio(r.precision)} | {_minutes(r.minutes)} |"
        )
    return lines


def _comparison_table(comparisons: list[Comparison], weeks: float) -> list[str]:
    weeks = weeks or 1.0
    lines = [
        "| source | who looks | events | seen | share | real problems | caught | recall | precision | minutes | "
        "hours a week |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in comparisons:
        for row in (c.gate, c.everything, c.random_sample):
            lines.append(
                f"| {c.label} | {row.label} | {row.events:,} | {row.seen:,} | {_share(row.share)} | {row.problems:,} | "
                f"{row.hits:,} | {_ratio(row.recall)} | {_ratio(row.precision)} | {_minutes(row.minutes)} | "
                f"{_per_week(row.minutes / 60 / weeks)} |"
            )
    return lines


def _assumptions(result: ReviewLoad) -> list[str]:
    o = result.options
    lines = [
        "Minutes a person spends on one review item, by kind of item (`MINUTES_PER_ITEM` in "
        "`tools/loopgate_tools/review_load.py`; `--minutes-per-post` sets the post's):",
        "",
        "| kind of item (event type) | minutes |",
        "| --- | ---: |",
    ]
    lines += [f"| `{kind}` | {minutes:g} |" for kind, minutes in result.minutes.items()]
    e = editorial
    lines += [
        "",
        "How items are counted: one review item is one event in one queue (a person looks at a post once however "
        "many of its rules fired in that queue; a post flagged for style and for a claim is two reviews, one by the "
        "editor, one by the client); a review takes its kind's minutes whoever does it; a person who looks at an "
        "event finds every real problem in it (so reviewing everything has recall 1, which flatters it: the case "
        "also reports better accuracy on claims once the client checks them, which this does not model); audit "
        "samples are review items like any other; repeated firings on one subject are not counted as grouped (no "
        "saving is claimed for grouping). The random sample reviews each of its events once, by one person.",
        "",
        f"The editor case's posts (`tools/loopgate_tools/simulator/editorial.py`), {o.posts_per_week} a week "
        f"round-robin over {o.client}'s platforms, for {o.weeks} weeks. What is really wrong with a post, drawn "
        f"independently: off-voice {e.OFF_VOICE_RATE:.0%}, not brand safe {e.UNSAFE_RATE:.0%}, over its platform's "
        f"caption limit {e.TOO_LONG_RATE:.0%} (on platforms with a limit under {e.LONG_CAPTION_LIMIT:,} characters), "
        f"a product claim {e.CLAIM_RATE:.0%}, of which {e.FALSE_CLAIM_RATE:.0%} cannot be substantiated (the real "
        "problem: a true claim checked by the client is review time without a problem). What the content "
        f"pipeline's classifiers make of it: the voice classifier misses {e.VOICE_MISS:.0%} of off-voice posts and "
        f"flags {e.VOICE_FALSE_FLAG:.0%} of on-voice ones, the safety classifier misses {e.SAFETY_MISS:.0%} of unsafe "
        f"posts and flags {e.SAFETY_FALSE_FLAG:.0%} of safe ones (a wrong score lands within {e.NEAR} of the "
        f"threshold), the claim detector misses {e.CLAIM_DETECTOR_MISS:.0%} of stated claims. Model confidence is "
        "drawn independently of the problems (the audit sampling's low-confidence boost gets no help from it).",
        "",
        "The agency's streams (`generate()` of `tools/loopgate_tools/simulator/generator.py`, as `loopgate-tools "
        "evaluate` uses them): every injected fault is a real problem and a clean event is not, so the rules' "
        "precision and recall there are the detector's own (exact today); what the table adds is the human time, and "
        "how little of it audit sampling buys compared with the rules.",
    ]
    return lines


def markdown(result: ReviewLoad, plot_name: str = PLOT_NAME) -> str:
    o, case = result.options, result.editor
    lines = [
        "# Review load: the human time Loopgate's gates take, and what they catch",
        "",
        f"Written by `loopgate-tools evaluate --review-load --count {o.count} --anomaly-share {o.anomaly_share:g} "
        f"--seed {o.seed} --weeks {o.weeks} --posts-per-week {o.posts_per_week} --minutes-per-post "
        f"{o.minutes_per_post:g} --client {o.client}` (deterministic: the same options write the same file and plot; "
        "`tests/unit/test_review_load_doc.py` regenerates this one and compares). The simulated world's ground truth "
        "knows which events were real problems; every event goes through the detector's own decision "
        "(`Detector.process`: rules, anomaly baselines and audit sampling, as the worker runs them) and every record "
        "through the API's routing (`route_of` over `routes.toml`), so a person sees here what Loopgate would show "
        "them. Two baselines: a person reviews every event, or a random sample (seeded) of as many events as the "
        "gates showed.",
        "",
        headline(result, link=None),
        "",
        f"![Minutes a week of the editor case, and person-hours per source]({plot_name})",
        "",
        "## The editor case",
        "",
        f"A content client publishing {o.posts_per_week} posts a week on {len(_platforms(o.client))} platforms "
        f"({', '.join(_platforms(o.client))}), whose agency editor reviewed every post at {o.minutes_per_post:g} "
        "minutes. Under Loopgate's gates, style flags (brand voice, caption length, brand safety) and audit samples "
        "go to the agency's editor (the default queue) and product claims to the client's reviewers "
        f"(`reviewers-{o.client}`, as `services/loopgate/resolution_api/api.toml` routes claim_verification). "
        f"Over {o.weeks} weeks ({o.weeks * o.posts_per_week:,} posts), a week on average:",
        "",
    ]
    lines += _editor_markdown(case)
    lines += _reading(case)
    lines += ["", "### What the gates miss, and why", ""]
    lines += _misses_markdown(case)
    lines += [
        "",
        "## The agency's streams, per source",
        "",
        f"{o.count:,} simulated events (anomaly share {o.anomaly_share:g}, seed {o.seed}) over "
        f"{result.stream_hours:.0f} simulated hours ({result.stream_weeks:.2f} weeks): bids, trafficking and content "
        "of the world's eight clients. Minutes are over the whole stream, hours a week over its simulated time.",
        "",
    ]
    lines += _comparison_table([*result.sources, result.agency], result.stream_weeks)
    for c in result.sources:
        lines += ["", f"Per rule on `{c.label}`:", ""]
        lines += _rule_table(c.rules)
    lines += ["", "## Assumptions", ""]
    lines += _assumptions(result)
    lines += [
        "",
        "Definitions: a row's *share* is the events a person sees over the events in scope; *recall* the real "
        "problems a person sees over all of them; *precision* the items seen that were real problems. For a rule, "
        "its real problems are those of its kind (the rule meant to catch them) and its items are its firings; for "
        "`audit_sample` any real problem counts.",
        "",
    ]
    return "\n".join(lines)


def _platforms(client: str) -> tuple[str, ...]:
    return editorial.known_clients()[client].social_platforms


def headline(result: ReviewLoad, *, link: str | None = DOC_LINK) -> str:
    """The README's opening figure: one sentence with the measured numbers (and the link to the doc)."""
    case, agency = result.editor, result.agency
    w = case.per_week
    c = case.comparison
    rest = " (the others: posts the pipeline's classifiers scored wrong)" if case.misses else ""
    faults = "every injected fault" if agency.gate.recall == 1.0 else f"{_pct(agency.gate.recall)} of injected faults"
    return (
        f"On the simulated world, Loopgate's gates take a content client's weekly review of {case.posts_per_week} "
        f"posts from {w(c.everything.minutes):.0f} minutes (an editor reading every post, {case.minutes_per_post:g} "
        f"minutes each) to {w(case.editor_minutes):.0f} minutes for the agency's editor and "
        f"{w(case.client_minutes):.0f} for the client's reviewers ({w(c.gate.minutes) / 60:.1f} hours together, "
        f"where the case's redesigned workflow reached {CASE_REDESIGNED_MINUTES / 60:.1f}), and a person still sees "
        f"{_pct(c.gate.recall)} of the real problems{rest}, against {_pct(c.random_sample.recall)} for a random "
        f"sample of as many posts; across the agency's bid, trafficking and content streams a person sees "
        f"{_pct(agency.gate.share)} of events, {faults} among them" + (f" ([{link}]({link}))." if link else ".")
    )


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def _reading(case: EditorCase) -> list[str]:
    """What the case's figures say against the reported 1.5 hours (numbers from the measurement)."""
    w = case.per_week
    claims = next((r for r in case.comparison.rules if r.label == "claim_verification"), None)
    if claims is None:
        return []
    return [
        "",
        f"Against the case's {CASE_REDESIGNED_MINUTES / 60:.1f} hours: the editor's {w(case.editor_minutes):.0f} "
        f"minutes a week are under it; the client's {w(case.client_minutes):.0f} minutes of claim checks take the "
        f"total above. Every post whose claim the claim detector finds goes to the client ({_pct(claims.share)} of "
        f"posts), and most of those claims are sound: claim_verification's precision is {_ratio(claims.precision)} "
        "(the assumed share of claims that cannot be substantiated). That time buys the claims' accuracy, which the "
        "case reports improving; a claim check shorter than a full post review would bring the total down "
        "(`--minutes-per-post` sets both here).",
    ]


# --- the printed table -----------------------------------------------------------------------


def render_table(result: ReviewLoad) -> str:
    case = result.editor
    lines = [f"Editor case: {case.client}, {case.posts_per_week} posts a week for {case.weeks} weeks (min/week)"]
    lines.append(f"{'':<62} {'editor':>8} {'client':>8} {'total':>8} {'recall':>7} {'prec.':>6}")
    for label, editor, client, together, row in editor_rows(case):
        cells = [f"{x:>8.1f}" if x is not None else f"{'—':>8}" for x in (editor, client, together)]
        recall = _ratio(row.recall) if row else "—"
        precision = _ratio(row.precision) if row else "—"
        lines.append(f"{label:<62} {' '.join(cells)} {recall:>7} {precision:>6}")
    lines += ["", f"{'rule':<20} {'items':>6} {'share':>8} {'problems':>9} {'caught':>7} {'recall':>7} {'prec.':>6}"]
    for r in case.comparison.rules:
        lines.append(
            f"{r.label:<20} {r.seen:>6} {_share(r.share):>8} {r.problems:>9} {r.hits:>7} {_ratio(r.recall):>7} "
            f"{_ratio(r.precision):>6}"
        )
    for m in case.misses[:PRINTED_MISSES]:
        lines.append(f"  missed {m.event_id} {m.problem}: {m.why}")
    if len(case.misses) > PRINTED_MISSES:
        lines.append(f"  ... {len(case.misses) - PRINTED_MISSES} more missed posts in {DOC_NAME}")
    lines += [
        "",
        f"Agency streams: {result.options.count} events over {result.stream_hours:.0f} simulated hours",
        f"{'source':<26} {'who looks':<26} {'seen':>7} {'share':>8} {'recall':>7} {'prec.':>6} {'minutes':>9} "
        f"{'h/week':>7}",
    ]
    weeks = result.stream_weeks or 1.0
    for c in [*result.sources, result.agency]:
        for row in (c.gate, c.everything, c.random_sample):
            lines.append(
                f"{c.label:<26} {row.label:<26} {row.seen:>7} {_share(row.share):>8} {_ratio(row.recall):>7} "
                f"{_ratio(row.precision):>6} {row.minutes:>9,.0f} {row.minutes / 60 / weeks:>7.1f}"
            )
    return "\n".join(lines)


# --- the plot --------------------------------------------------------------------------------


def plot_png(result: ReviewLoad) -> bytes:
    """Two panels: the editor case's minutes a week (stacked by who), and person-hours per source."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    case = result.editor
    w = case.per_week
    c = case.comparison
    fig = Figure(figsize=(9.0, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1.0]})

    labels = ["review\neverything", "Loopgate's\ngates", "random sample,\nsame size", "the case's\nredesign"]
    editor = [w(c.everything.minutes), w(case.editor_minutes), w(c.random_sample.minutes), 0.0]
    client = [0.0, w(case.client_minutes), 0.0, 0.0]
    reported = [0.0, 0.0, 0.0, CASE_REDESIGNED_MINUTES]
    xs = range(len(labels))
    left.bar(xs, editor, color="#4c72b0", label="agency editor")
    left.bar(xs, client, bottom=editor, color="#dd8452", label="client reviewers")
    left.bar(xs, reported, color="#cccccc", hatch="//", edgecolor="#888888", label="reported, not simulated")
    recalls = [c.everything.recall, c.gate.recall, c.random_sample.recall, None]
    for x, e, k, r, rec in zip(xs, editor, client, reported, recalls, strict=True):
        top = e + k + r
        text = f"{top:.0f} min" + (f"\nrecall {rec:.2f}" if rec is not None else "")
        left.text(x, top + 4, text, ha="center", va="bottom", fontsize=8)
    left.set_xticks(list(xs), labels, fontsize=8)
    left.set_ylabel("person-minutes a week")
    left.set_ylim(0, max(CASE_REVIEW_EVERYTHING_MINUTES, *(e + k for e, k in zip(editor, client, strict=True))) * 1.3)
    left.set_title(f"{case.client}: {case.posts_per_week} posts a week", fontsize=10)
    left.legend(fontsize=7, loc="upper right", frameon=False)

    names = [s.label.split(".")[0] for s in result.sources]
    weeks = result.stream_weeks or 1.0
    width = 0.27
    for k, what in enumerate(("everything", "gate", "random_sample")):
        rows: list[Row] = [getattr(s, what) for s in result.sources]
        hours = [max(r.minutes / 60 / weeks, 0.01) for r in rows]
        positions = [i + (k - 1) * width for i in range(len(rows))]
        right.bar(positions, hours, width, color=SERIES_COLOURS[what], label=rows[0].label if rows else what)
        for at, row, height in zip(positions, rows, hours, strict=True):
            if row.recall is not None:
                right.text(at, height * 1.15, f"{row.recall:.2f}", ha="center", va="bottom", fontsize=7)
    right.set_yscale("log")
    right.set_xticks(range(len(names)), names, fontsize=8)
    right.set_ylabel("person-hours a week (log)")
    highest = max((s.everything.minutes / 60 / weeks for s in result.sources), default=1.0)
    right.set_ylim(top=max(highest, 1.0) * 100)
    right.set_title("agency streams (recall above the bars)", fontsize=10)
    right.legend(fontsize=7, loc="upper right", frameon=False)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


def write_report(result: ReviewLoad, docs: Path) -> tuple[Path, Path]:
    """docs/review-load.md and its PNG; returns both paths."""
    docs.mkdir(parents=True, exist_ok=True)
    doc, plot = docs / DOC_NAME, docs / PLOT_NAME
    plot.write_bytes(plot_png(result))
    doc.write_text(markdown(result, PLOT_NAME))
    return doc, plot
