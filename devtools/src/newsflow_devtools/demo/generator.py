"""Generated demo articles: plausible, distinct news pages from templates, for load and end-to-end runs.

Each article draws from its own `random.Random(f"{seed}:{index}")`, so article i never depends on how
many articles were asked for. Every article carries a unique reference number in its text, and picks
its sentences, their order and their fillers at random, so no two are exact or near duplicates.
The vocabulary never uses the words of the demo alert phrase (checked by the corpus tests).
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

from newsflow_devtools.demo.corpus import Block, DemoArticle, DemoFeed, Figure, slugify

# The words the generator draws from (towns, names, and per topic: titles, sentences, quotes, captions)
# are data, kept beside this module.
_VOCABULARY = json.loads(resources.files(__package__).joinpath("vocabulary.json").read_text(encoding="utf-8"))
TOWNS: list[str] = _VOCABULARY["towns"]
FIRST: list[str] = _VOCABULARY["first_names"]
LAST: list[str] = _VOCABULARY["last_names"]
ROLES: list[str] = _VOCABULARY["roles"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
TOPICS: dict[str, dict[str, Any]] = _VOCABULARY["topics"]
TOPIC_NAMES = sorted(TOPICS)


def _fill(template: str, ctx: dict[str, str]) -> str:
    return template.format(**ctx)


def generate(index: int, seed: int, base_time: datetime, feed: DemoFeed) -> DemoArticle:
    # One generator per article, drawn from in a fixed order: the same (seed, index) is the same article.
    rng = random.Random(f"{seed}:{index}")
    topic_name = TOPIC_NAMES[rng.randrange(len(TOPIC_NAMES))]
    topic = TOPICS[topic_name]
    ctx = _context(rng, seed, index, base_time, topic)
    title = _fill(rng.choice(topic["titles"]), ctx)
    title = title[0].upper() + title[1:]
    sentences = _sentences(rng, topic, ctx)
    blocks = _blocks(rng, topic, ctx, sentences, index)
    hours_ago = rng.uniform(0.5, 240)
    published = (base_time - timedelta(hours=hours_ago)).replace(microsecond=0)
    updated = published + timedelta(minutes=rng.randint(10, 180)) if rng.random() < 0.3 else None
    if updated is not None and updated > base_time:
        updated = None
    return DemoArticle(
        index=index,
        slug=f"{slugify(title)[:70].rstrip('-')}-{index}",
        section=topic["section"],
        title=title,
        description=sentences[0],
        author=f"{rng.choice(FIRST)} {rng.choice(LAST)}",
        published=published,
        updated=updated,
        lang="en",
        tags=(topic_name, ctx["town"]),
        blocks=tuple(blocks),
        generated=True,
        feed=feed,
    )


def _context(rng: random.Random, seed: int, index: int, base_time: datetime, topic: dict[str, Any]) -> dict[str, str]:
    town, town2 = rng.sample(TOWNS, 2)
    return {
        "town": town,
        "town2": town2,
        **fillers(rng, base_time.year),
        # The unique reference: makes every text differ even if two draws pick the same sentences.
        "ref": f"{seed % 1000:03d}-{index:05d}",
        "thing": rng.choice(topic["things"]),
    }


def fillers(rng: random.Random, year: int) -> dict[str, str]:
    """The people, numbers and dates a template's sentences name, drawn in a fixed order."""
    return {
        "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
        "name2": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
        "role": rng.choice(ROLES),
        "n": str(rng.randint(2, 9)),
        "m": str(rng.randint(2, 9)),
        "pct": str(rng.randint(3, 48)),
        "year": str(year + rng.randint(1, 4)),
        "day": rng.choice(WEEKDAYS),
    }


def _sentences(rng: random.Random, topic: dict[str, Any], ctx: dict[str, str]) -> list[str]:
    sentences = [_fill(s, ctx) for s in rng.sample(topic["sentences"], k=rng.randint(8, 11))]
    # Sentence 0 opens the story; the ref-bearing sentence must survive the sampling, so force it in.
    ref_sentence = next(_fill(s, ctx) for s in topic["sentences"] if "{ref}" in s)
    if ref_sentence not in sentences:
        sentences[rng.randrange(len(sentences))] = ref_sentence
    return sentences


def _blocks(
    rng: random.Random, topic: dict[str, Any], ctx: dict[str, str], sentences: list[str], index: int
) -> list[Block]:
    blocks: list[Block] = []
    if rng.random() < 0.8:
        blocks.append(
            Block(
                "fig",
                figure=Figure(
                    f"gen-{index}.png",
                    _fill(rng.choice(topic["captions"]), ctx),
                    rng.choice(["Newsflow Demo Photo", None]),
                ),
            )
        )
    subheads = rng.sample(topic["subheads"], k=2)
    i = 0
    paragraph_no = 0
    while i < len(sentences):
        take = rng.randint(1, 3)
        blocks.append(Block("p", text=" ".join(sentences[i : i + take])))
        i += take
        paragraph_no += 1
        if paragraph_no in (2, 4) and subheads and i < len(sentences):
            blocks.append(Block("h", text=subheads.pop(0)))
        if paragraph_no == 3 and i < len(sentences):
            quote = rng.choice(topic["quotes"])
            spoken = quote[:-1] + "," if quote.endswith(".") else quote
            blocks.append(Block("p", text=f"\u201c{spoken}\u201d said {ctx['name2']}, {ctx['role']}."))
    return blocks
