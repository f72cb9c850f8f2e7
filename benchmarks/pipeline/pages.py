"""The benchmark's pages: labelled news pages from ../shared/eval (read in place, never copied into the
project), made into any number of distinct articles.

Article number i is base page `i % len(pages)` with a small marker paragraph naming the copy, served at a
path of its own: so every article has a distinct URL and distinct bytes, and any range of numbers can be
served without storing the copies.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_EVAL = ROOT.parent / "shared" / "eval"
SOURCES = ("scrapinghub", "fundus-parser")
_BODY = re.compile(rb"<body[^>]*>", re.IGNORECASE)


class EvalDataMissing(Exception):
    pass


@dataclass(frozen=True)
class BasePage:
    id: str
    source: str
    html: bytes  # UTF-8
    truth: str  # ground-truth body text
    url: str  # where the page was crawled from (for the extractors' URL-based heuristics)

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.id.lower())[:40].strip("-") or "page"


def load_pages(eval_dir: Path = DEFAULT_EVAL, sources: tuple[str, ...] = SOURCES) -> list[BasePage]:
    """The labelled pages of `sources` (scrapinghub `.html`, fundus `.html.gz`, decompressed)."""
    pages: list[BasePage] = []
    missing = [s for s in sources if not (eval_dir / s / "truth.jsonl").is_file()]
    if missing:
        raise EvalDataMissing(
            f"evaluation pages not found: {', '.join(str(eval_dir / s) for s in missing)} "
            "(the benchmark reads ../shared/eval/, see its README; pass --eval-dir DIR)"
        )
    for source in sources:
        folder = eval_dir / source
        for line in (folder / "truth.jsonl").read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            plain, packed = folder / f"{row['id']}.html", folder / f"{row['id']}.html.gz"
            raw = plain.read_bytes() if plain.exists() else gzip.decompress(packed.read_bytes())
            # A few pages declare another charset or carry stray bytes: the site serves UTF-8 only.
            html = raw.decode("utf-8", errors="replace").encode("utf-8")
            pages.append(BasePage(row["id"], source, html, row.get("text") or "", row.get("url") or ""))
    return pages


def marker(i: int, page: BasePage) -> bytes:
    return f'<p class="bench-copy">Benchmark copy {i} of {page.id}.</p>'.encode()


def variant(page: BasePage, i: int) -> bytes:
    """Copy number i of `page`: the marker paragraph right after <body>, or first when there is none."""
    m = _BODY.search(page.html)
    at = m.end() if m else 0
    return page.html[:at] + marker(i, page) + page.html[at:]
