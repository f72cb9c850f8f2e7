"""The demo corpus: the bundled hand-written articles, then as many generated ones as asked for.

Article `i` is the same whatever the corpus size, so a 300-article corpus is a prefix of a 2,000-article
one and a test can reason about "the first N". Generation is seeded per article, not per corpus.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from importlib import resources
from typing import Literal

import yaml

ALERT_PHRASE = "rocket attack"
# Both words of the alert phrase, in any inflection: only the one seed-like article may contain them,
# whatever analyzer (exact, stemmed, OR-of-terms) a rule is evaluated with.
ALERT_WORDS_RE = re.compile(r"\b(rocket|attack)\w*", re.IGNORECASE)

# Four feeds, one per format the fetcher must read; article i goes to FEEDS[i % 4].
FeedKind = Literal["rss", "atom", "json"]


@dataclass(frozen=True)
class DemoFeed:
    key: str
    path: str
    kind: FeedKind
    title: str
    description: str


FEEDS: tuple[DemoFeed, ...] = (
    DemoFeed("latest", "/feeds/latest.rss", "rss", "The Demo Courier: latest", "Latest stories, as they happen"),
    DemoFeed("world", "/feeds/world.atom", "atom", "The Demo Courier: world", "News from around the world"),
    DemoFeed("business", "/feeds/business.json", "json", "The Demo Courier: business", "Markets and companies"),
    DemoFeed("culture", "/feeds/culture.xml", "rss", "The Demo Courier: culture", "Arts, science and sport"),
)


@dataclass(frozen=True)
class Figure:
    img: str
    caption: str
    credit: str | None = None


@dataclass(frozen=True)
class Block:
    kind: Literal["p", "h", "q", "fig"]
    text: str = ""
    figure: Figure | None = None


@dataclass(frozen=True)
class DemoArticle:
    index: int
    slug: str
    section: str
    title: str
    description: str
    author: str
    published: datetime
    updated: datetime | None
    lang: str
    tags: tuple[str, ...]
    blocks: tuple[Block, ...]
    generated: bool = False
    feed: DemoFeed = field(default=FEEDS[0])

    @property
    def path(self) -> str:
        d = self.published
        return f"/news/{slugify(self.section)}/{d:%Y/%m/%d}/{self.slug}.html"

    @property
    def figures(self) -> list[Figure]:
        return [b.figure for b in self.blocks if b.figure is not None]

    @property
    def body_text(self) -> str:
        """The text an extractor should find: paragraphs, sub-headings and quotes, no captions."""
        return "\n\n".join(b.text for b in self.blocks if b.kind != "fig")

    @property
    def last_modified(self) -> datetime:
        return self.updated or self.published

    def all_text(self) -> str:
        """Everything a search could match: title, standfirst, body, captions, tags."""
        parts = [self.title, self.description, self.body_text, *self.tags]
        parts += [f.caption for f in self.figures]
        return "\n".join(parts)


def slugify(text: str) -> str:
    norm = unicodedata.normalize("NFKD", text)
    ascii_ = norm.encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_).strip("-")
    return slug or "section"


def default_base_time() -> datetime:
    # Whole hours: two servers started in the same hour publish the same dates, and so the same feeds.
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@lru_cache(maxsize=1)
def _bundled() -> tuple[dict, ...]:
    text = resources.files("newsflow_devtools.demo").joinpath("data/articles.yaml").read_text(encoding="utf-8")
    return tuple(yaml.safe_load(text))


def bundled_count() -> int:
    return len(_bundled())


def _blocks(raw: list[dict]) -> tuple[Block, ...]:
    out: list[Block] = []
    for b in raw:
        if "fig" in b:
            f = b["fig"]
            out.append(Block("fig", figure=Figure(f["img"], f["caption"].strip(), f.get("credit"))))
        else:
            ((kind, text),) = b.items()
            out.append(Block(kind, text=" ".join(str(text).split())))
    return tuple(out)


def _from_bundled(i: int, raw: dict, base_time: datetime) -> DemoArticle:
    upd = raw.get("updated_hours_ago")
    return DemoArticle(
        index=i,
        slug=raw["slug"],
        section=raw["section"],
        title=raw["title"].strip(),
        description=" ".join(raw["description"].split()),
        author=raw["author"],
        published=base_time - timedelta(hours=raw["hours_ago"]),
        updated=None if upd is None else base_time - timedelta(hours=upd),
        lang=raw.get("lang", "en"),
        tags=tuple(raw.get("tags", ())),
        blocks=_blocks(raw["body"]),
        feed=FEEDS[i % len(FEEDS)],
    )


def article(i: int, seed: int = 0, base_time: datetime | None = None) -> DemoArticle:
    """Article number `i` (0-based) of the corpus for `seed`."""
    from newsflow_devtools.demo.generator import generate

    base = base_time or default_base_time()
    bundled = _bundled()
    if i < len(bundled):
        return _from_bundled(i, bundled[i], base)
    return generate(i, seed, base, FEEDS[i % len(FEEDS)])


def build_corpus(n: int, seed: int = 0, base_time: datetime | None = None) -> list[DemoArticle]:
    """`n` distinct articles: the bundled ones first (all of them when n >= 30), then generated ones."""
    if n < 1:
        raise ValueError("a demo corpus needs at least one article")
    base = base_time or default_base_time()
    return [article(i, seed, base) for i in range(n)]


def alert_articles(corpus: list[DemoArticle]) -> list[DemoArticle]:
    """The articles the demo rule must match (one whenever the seed-like article is in the corpus)."""
    return [a for a in corpus if ALERT_PHRASE in a.all_text().lower()]
