"""A labelled set for story grouping, from the demo generator's templates: which reports are one event?

- the same event in different words: one event (town, people, numbers, day, the thing it is about) told by
  several outlets, each with its own headline template, its own choice and order of sentences, its own
  quote and reference number;
- different events in the same words: events of the same topic and about the same thing, told with the
  same headline template and the same sentences, only the facts differ (another town, other people,
  other numbers) - the hard negatives, since a word-overlap measure sees them as near-identical.

`python -m newsflow_devtools.demo.storyset` prints a sample. `benchmarks/eval_story_grouping.py` measures
the notifier's grouping on it; tests/notifier uses a small one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from newsflow_devtools.demo.generator import FIRST, LAST, ROLES, TOPIC_NAMES, TOPICS, TOWNS, WEEKDAYS

OUTLETS = ("courier.example", "ledger.example", "herald.example", "gazette.example", "wire.example")


@dataclass(frozen=True)
class Report:
    event: str  # the label: reports with the same event are one story
    outlet: str
    url: str
    title: str
    description: str
    text: str
    published_at: datetime


def _event_ctx(rng: random.Random, topic: dict, thing: str, year: int, town: str) -> dict[str, str]:
    town2 = rng.choice([t for t in TOWNS if t != town])
    return {
        "town": town,
        "town2": town2,
        "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
        "name2": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
        "role": rng.choice(ROLES),
        "n": str(rng.randint(2, 9)),
        "m": str(rng.randint(2, 9)),
        "pct": str(rng.randint(3, 48)),
        "year": str(year + rng.randint(1, 4)),
        "day": rng.choice(WEEKDAYS),
        "thing": thing,
    }


def _tell(
    rng: random.Random, topic: dict, ctx: dict[str, str], title_t: str, sentences_t: list[str]
) -> tuple[str, str, str]:
    title = title_t.format(**ctx)
    sentences = [s.format(**ctx) for s in sentences_t]
    quote = rng.choice(topic["quotes"])
    body = [" ".join(sentences[i : i + 2]) for i in range(0, len(sentences), 2)]
    body.insert(min(2, len(body)), f"\u201c{quote}\u201d said {ctx['name2']}, {ctx['role']}.")
    return title[0].upper() + title[1:], sentences[0], "\n\n".join(body)


def labelled_reports(events: int = 24, outlets: int = 3, seed: int = 0, twins: int = 2) -> list[Report]:
    """`events` events of `outlets` reports each, in groups of `twins` events that share every word but
    their facts; time-ordered as they would arrive (within a few hours)."""
    rng = random.Random(f"storyset:{seed}")
    base = datetime(2026, 11, 20, 6, tzinfo=UTC)
    reports: list[Report] = []
    for g in range(events // twins):
        topic = TOPICS[TOPIC_NAMES[g % len(TOPIC_NAMES)]]
        thing = rng.choice(topic["things"])
        # The twins' shared wording, told once per outlet slot: outlet k of every twin says the same words.
        wordings = [
            (rng.choice(topic["titles"]), rng.sample(topic["sentences"], k=rng.randint(6, 8))) for _ in range(outlets)
        ]
        towns = rng.sample(TOWNS, twins)  # twins differ in their facts, the place included
        for t in range(twins):
            event = f"e{g:03d}-{t}"
            ctx = _event_ctx(rng, topic, thing, base.year, towns[t])
            start = base + timedelta(minutes=rng.randint(0, 600))
            for k in range(outlets):
                ctx_k = {**ctx, "ref": f"{rng.randint(100, 999)}-{rng.randint(10000, 99999)}"}
                title, description, text = _tell(rng, topic, ctx_k, *wordings[k])
                outlet = OUTLETS[k % len(OUTLETS)]
                reports.append(
                    Report(
                        event=event,
                        outlet=outlet,
                        url=f"https://{outlet}/{event}/{k}",
                        title=title,
                        description=description,
                        text=text,
                        published_at=start + timedelta(minutes=10 * k + rng.randint(0, 9)),
                    )
                )
    reports.sort(key=lambda r: r.published_at)
    return reports


def pair_scores(labels: dict[str, str], predicted: dict[str, str]) -> tuple[float, float, int, int, int]:
    """Pairwise precision and recall of a grouping (`predicted`: id -> story) against `labels` (id -> event):
    (precision, recall, true pairs found, pairs wrongly joined, true pairs missed)."""
    ids = sorted(labels)
    tp = fp = fn = 0
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            same, joined = labels[a] == labels[b], predicted[a] == predicted[b]
            tp += same and joined
            fp += joined and not same
            fn += same and not joined
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, tp, fp, fn


if __name__ == "__main__":
    for r in labelled_reports(events=4, outlets=2)[:8]:
        print(f"{r.event} {r.outlet}: {r.title}\n    {r.description}\n")
