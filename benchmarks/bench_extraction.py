"""Extraction quality and speed: Newsflow's parser against plain trafilatura, same pages, same run.

Reads the labelled pages in ../shared/eval (see its README; nothing is copied into the project), per set:
- scrapinghub: body text truth -> token-level P / R / F1 (4-token shingles over `\\w+`, per-page TP/FP/FN
  normalised, F1 of the averages: the benchmark's official metric);
- fundus-parser: the same text metric; title, authors, publishing day; image captions found separately and
  leaked into the text;
- trafilatura-eval: snippets that must / must not be in the text (whitespace-normalised substrings, summed
  over the set: trafilatura's own metric); title, author, date where labelled.
Every set also counts the pages each extractor returns empty, and the CPU time per page of this process (one
page at a time, one core). Newsflow gets the page as the fetcher gives it (`decode_html` of the bytes);
trafilatura gets the bytes and decodes them itself. "plain" is `trafilatura.extract` with default settings;
its metadata columns come from `bare_extraction(with_metadata=True)`, whose time is not counted.

`--baseline-src DIR` also runs another checkout's parser (DIR holds `services/parser/src` and `shared/src`,
e.g. from `git archive main`) in a child process, page by page between the two others, and compares CPU per
page on the pages the current own extraction accepts.

    .venv/bin/python benchmarks/bench_extraction.py [--sets a,b] [--limit N] [--worst K] [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from dateutil import parser as dateparser

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EVAL = ROOT.parent / "shared" / "eval"
SETS = ("scrapinghub", "fundus-parser", "trafilatura-eval")
TOKEN = re.compile(r"\w+")
WORD = re.compile(r"\w+")
SPACE = re.compile(r"\s+")
SHINGLE = 4
NO_URL = "https://unknown.invalid/"  # trafilatura-eval items whose "url" is a label such as hard::name
LABELS = Path(__file__).resolve().parent / "caption_labels.jsonl"  # see caption_labels.md


# --- metrics ------------------------------------------------------------------------------------


def shingles(text: str) -> Counter[tuple[str, ...]]:
    toks = TOKEN.findall(text or "")
    return Counter(tuple(toks[i : i + SHINGLE]) for i in range(len(toks) - SHINGLE + 1))


def tp_fp_fn(truth: str, pred: str) -> tuple[float, float, float]:
    t, p = shingles(truth), shingles(pred)
    tp = fp = fn = 0.0
    for k in t.keys() | p.keys():
        a, b = t.get(k, 0), p.get(k, 0)
        tp += min(a, b)
        fp += max(0, b - a)
        fn += max(0, a - b)
    s = tp + fp + fn
    return (tp / s, fp / s, fn / s) if s else (0.0, 0.0, 0.0)


def page_f1(row: tuple[float, float, float]) -> float:
    tp, fp, fn = row
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def prf(rows: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    tp = sum(r[0] for r in rows)
    fp = sum(r[1] for r in rows)
    fn = sum(r[2] for r in rows)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def snippet_counts(item: dict[str, Any], text: str) -> tuple[float, float, float]:
    """trafilatura-eval: (TP, FP, FN) of its must / must-not snippets, whitespace-normalised substrings."""
    t = SPACE.sub(" ", text or "").strip()
    tp = sum(1 for w in item["with"] if SPACE.sub(" ", w).strip() in t)
    fp = sum(1 for w in item["without"] if SPACE.sub(" ", w).strip() in t)
    return float(tp), float(fp), float(len(item["with"]) - tp)


def key(text: str | None) -> str:
    """Case, spacing and punctuation ignored."""
    return " ".join(WORD.findall((text or "").casefold()))


# --- the extractors -----------------------------------------------------------------------------


@dataclass
class Out:
    text: str = ""
    title: str | None = None
    authors: list[str] = field(default_factory=list)
    date: datetime | date | None = None
    local_date: date | None = None  # the page's own day, when the extractor knows its offset
    captions: list[str] = field(default_factory=list)
    method: str = ""
    error: str | None = None


def newsflow(html: bytes, url: str) -> Out:
    from newsflow_extract.errors import ExtractionError
    from newsflow_extract.extract import extract
    from newsflow_fetcher.charset import decode_html

    text, _, _ = decode_html(html, None)
    try:
        a = extract(text, url)
    except ExtractionError as e:
        return Out(error=e.reason)
    return Out(
        text=a.text,
        title=a.title,
        authors=a.authors,
        date=a.published_at,
        captions=[c.text for c in a.captions],
        method=getattr(a, "extraction_method", None) or "own",
    )


def plain(html: bytes, url: str) -> Out:
    import trafilatura

    text = trafilatura.extract(html, url=None if url == NO_URL else url) or ""
    return Out(text=text, method="plain", error=None if text else "empty")


def plain_meta(html: bytes, url: str) -> Out:
    import trafilatura

    doc = trafilatura.bare_extraction(html, url=None if url == NO_URL else url, with_metadata=True)
    if doc is None:
        return Out()
    d = doc.as_dict()
    authors = [a.strip() for a in (d.get("author") or "").split(";") if a.strip()]
    day = date.fromisoformat(d["date"][:10]) if d.get("date") else None
    return Out(text=d.get("text") or "", title=d.get("title"), authors=authors, date=day)


# --- per-set scoring ----------------------------------------------------------------------------


@dataclass
class Score:
    name: str
    pages: int = 0
    cpu: list[float] = field(default_factory=list)
    text: list[tuple[float, float, float]] = field(default_factory=list)
    per_page: dict[str, float] = field(default_factory=dict)
    empty: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    methods: Counter[str] = field(default_factory=Counter)
    meta_ok: Counter[str] = field(default_factory=Counter)
    meta_n: Counter[str] = field(default_factory=Counter)
    caps_truth: int = 0
    caps_found: int = 0
    caps_leaked: int = 0
    caps_returned: int = 0
    labelled: Counter[str] = field(default_factory=Counter)  # labelled caption items returned, by label

    def text_prf(self, summed: bool) -> tuple[float, float, float]:
        if not summed:
            return prf(self.text)
        tp, fp, fn = (sum(r[i] for r in self.text) for i in range(3))
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def truth_date(value: str | None) -> datetime | None:
    try:
        return dateparser.parse(value) if value else None
    except (ValueError, OverflowError):
        return None  # a label such as 2022-29-11: nobody can match it, so it is not counted


def _same_day(td: datetime, out: Out) -> bool:
    if out.date is None:
        return False
    if isinstance(out.date, datetime):
        tdu = td.astimezone(UTC) if td.tzinfo else td.replace(tzinfo=UTC)
        days = {out.date.date(), out.local_date} if out.local_date else {out.date.date()}
        return bool(days & {tdu.date(), td.date()})
    return out.date == td.date()


# Bylines in the truth are sometimes printed whole ("Von A und B"): names are compared as their words.
CONNECTORS = frozenset(["by", "von", "und", "and", "et", "y", "por", "par"])


def name_words(names: list[str]) -> set[str]:
    return {w for n in names for w in key(n).split()} - CONNECTORS


def score_meta(s: Score, truth: dict[str, Any], out: Out) -> None:
    """Title exact, authors as the same names, publishing day; only where the truth has a value."""
    authors = truth.get("authors") or truth.get("author")
    if isinstance(authors, str):
        authors = [a for a in authors.split(";") if a.strip()]
    checks = {
        "title": (truth.get("title"), lambda v: bool(out.title) and key(out.title) == key(v)),
        "author": (authors, lambda v: name_words(out.authors) == name_words(v)),
        "date": (truth_date(truth.get("date")), lambda v: _same_day(v, out)),
    }
    for name, (value, ok) in checks.items():
        if value:
            s.meta_n[name] += 1
            s.meta_ok[name] += int(ok(value))


def score_captions(s: Score, truth: dict[str, Any], out: Out) -> None:
    tk = key(out.text)
    body = key(truth.get("text"))
    found = [key(c) for c in out.captions]
    s.caps_returned += len(found)
    for cap in truth.get("captions") or []:
        ck = key(cap)
        if len(ck.split()) < 4:
            continue
        s.caps_truth += 1
        # a caption whose sentence the article body also prints (truth text) is not a leak
        s.caps_leaked += int(ck in tk and ck not in body)
        s.caps_found += int(any(ck == f or (ck in f) or (f in ck and len(f) > 0.6 * len(ck)) for f in found))


def caption_hash(text: str) -> str:
    from newsflow_extract.textutil import key as parser_key

    return hashlib.sha1(parser_key(text).encode()).hexdigest()[:16]


def load_labels() -> dict[tuple[str, str], dict[str, str]]:
    """(set, page) -> {caption hash: label} from the hand-labelled sample (caption_labels.md)."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    if LABELS.exists():
        for line in LABELS.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            out.setdefault((r["set"], r["page"]), {})[r["caption_sha1"]] = r["label"]
    return out


def score_labels(s: Score, labels: dict[str, str], out: Out) -> None:
    for h in {caption_hash(c) for c in out.captions}:
        if h in labels:
            s.labelled[labels[h]] += 1


def record(s: Score, set_name: str, row: dict[str, Any], out: Out, cpu: float) -> None:
    s.pages += 1
    s.cpu.append(cpu)
    s.methods[out.method or "-"] += 1
    if out.error:
        s.failures[out.error] += 1
    if not out.text.strip():
        s.empty += 1
    if set_name == "trafilatura-eval":
        counts = snippet_counts(row, out.text)
        s.per_page[row["id"]] = counts[0] / max(1.0, sum(counts))
    else:
        counts = tp_fp_fn(row["text"], out.text)
        s.per_page[row["id"]] = page_f1(counts)
    s.text.append(counts)


# --- running ------------------------------------------------------------------------------------


def load(folder: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (folder / "truth.jsonl").read_text(encoding="utf-8").splitlines() if line]
    for r in rows:
        f = folder / f"{r['id']}.html"
        r["html"] = f.read_bytes() if f.exists() else gzip.decompress((folder / f"{r['id']}.html.gz").read_bytes())
        url = r.get("url") or ""
        r["url"] = url if url.startswith(("http://", "https://")) else NO_URL
    return rows


def timed(fn: Callable[[bytes, str], Out], html: bytes, url: str) -> tuple[Out, float]:
    # CPU time of this process: per page and per core, fair to both extractors on a busy machine
    t0 = time.process_time()
    out = fn(html, url)
    return out, time.process_time() - t0


class Worker:
    """The parser of a checkout (`src`, or this one) in a child process: a page in, (CPU seconds, accepted) out.

    Both the current and the baseline parser run in such a child, so that neither pays for the other's
    caches or for this process's heap of pages and trafilatura state.
    """

    def __init__(self, src: Path | None = None) -> None:
        env = dict(os.environ)
        if src is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(src / "services/parser/src"), str(src / "shared/src")])
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )

    def run(self, html: bytes, url: str) -> tuple[float, bool]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"url": url, "html": html.decode("latin-1")}).encode() + b"\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        return reply["cpu"], reply["ok"]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def worker() -> int:
    quiet()
    for line in sys.stdin:
        job = json.loads(line)
        out, cpu = timed(newsflow, job["html"].encode("latin-1"), job["url"])
        print(json.dumps({"cpu": cpu, "ok": not out.error}), flush=True)
    return 0


@dataclass
class SetRun:
    name: str
    ours: Score
    plain: Score
    meta: Score
    base_cpu: list[tuple[float, float]] = field(default_factory=list)  # (this, baseline) on own-accepted pages
    outputs: list[tuple[str, Out, Out, Out]] = field(default_factory=list)  # id, newsflow, plain, plain metadata


def dump(sr: SetRun, path: Path) -> None:
    """Every page's outputs as JSON lines, for looking at what each extractor did."""
    with path.open("a", encoding="utf-8") as f:
        for pid, ours, got, meta in sr.outputs:
            row = {"set": sr.name, "id": pid, "newsflow": ours.__dict__, "plain": got.text, "plain_meta": meta.__dict__}
            row["score"] = {"newsflow": sr.ours.per_page[pid], "plain": sr.plain.per_page[pid]}
            f.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")


def run_set(name: str, rows: list[dict[str, Any]], pair: tuple[Worker, Worker] | None) -> SetRun:
    sr = SetRun(name, Score("newsflow"), Score("trafilatura"), Score("trafilatura metadata"))
    labels = load_labels()
    for row in rows:
        html, url = row["html"], row["url"]
        ours, cpu = timed(newsflow, html, url)
        record(sr.ours, name, row, ours, cpu)
        got, pcpu = timed(plain, html, url)
        record(sr.plain, name, row, got, pcpu)
        meta, _ = timed(plain_meta, html, url)
        if pair is not None and ours.method == "own":
            # alternate which parser goes first, so neither always meets the other's leftovers in the CPU caches
            first, second = pair if len(sr.base_cpu) % 2 == 0 else pair[::-1]
            a, b = first.run(html, url)[0], second.run(html, url)[0]
            sr.base_cpu.append((a, b) if first is pair[0] else (b, a))
        if name != "scrapinghub":
            score_meta(sr.ours, row, ours)
            score_meta(sr.meta, row, meta)
        if name == "fundus-parser":
            score_captions(sr.ours, row, ours)
            score_captions(sr.plain, row, got)
        if (name, row["id"]) in labels:
            score_labels(sr.ours, labels[(name, row["id"])], ours)
        sr.outputs.append((row["id"], ours, got, meta))
    return sr


# --- report -------------------------------------------------------------------------------------


def _pct(ok: int, n: int) -> str:
    return f"{ok / n:.1%} ({ok}/{n})" if n else "-"


def report(sr: SetRun, n: int) -> None:
    summed = sr.name == "trafilatura-eval"
    metric = "must / must-not snippets, summed" if summed else "token 4-shingles, per-page averages"
    print(f"\n### {sr.name} ({n} pages): text ({metric})\n")
    labelled = sr.name != "scrapinghub"
    head = "| extractor | P | R | F1 | empty | CPU ms/page |"
    head += " title | authors | date (day) |" if labelled else ""
    head += " captions separated | captions leaked |" if sr.name == "fundus-parser" else ""
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for s, m in ((sr.ours, sr.ours), (sr.plain, sr.meta)):
        p, r, f = s.text_prf(summed)
        ms = 1000 * sum(s.cpu) / max(1, len(s.cpu))
        line = f"| {s.name} | {p:.3f} | {r:.3f} | {f:.3f} | {s.empty} | {ms:.1f} |"
        if labelled:
            line += "".join(f" {_pct(m.meta_ok[k], m.meta_n[k])} |" for k in ("title", "author", "date"))
        if sr.name == "fundus-parser":
            line += f" {_pct(s.caps_found, s.caps_truth)} | {_pct(s.caps_leaked, s.caps_truth)} |"
        print(line)
    print(f"\nnewsflow paths: {dict(sr.ours.methods)}; refusals: {dict(sr.ours.failures) or '-'}")
    if n_labelled := sum(sr.ours.labelled.values()):
        ok = sr.ours.labelled["caption"]
        print(f"captions field, hand-labelled sample: {ok}/{n_labelled} returned items are captions")
    if sr.name == "fundus-parser":
        print(f"newsflow returned {sr.ours.caps_returned} captions in all")
    if sr.base_cpu:
        now, before = (sum(x[i] for x in sr.base_cpu) * 1000 / len(sr.base_cpu) for i in range(2))
        print(
            f"CPU on the {len(sr.base_cpu)} pages the own extraction accepts, each parser in a child process:"
            f" {now:.1f} ms/page this checkout, {before:.1f} ms/page baseline ({now / before - 1:+.1%})"
        )


def worst(sr: SetRun, k: int) -> None:
    diffs = sorted((v - sr.plain.per_page[pid], pid) for pid, v in sr.ours.per_page.items())[:k]
    print(f"\nworst {sr.name} pages (our page score minus plain's):", *(f"{d:+.3f} {p}" for d, p in diffs), sep="\n  ")


def quiet() -> None:
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)  # trafilatura logs every discarded page
    # models and lazy imports load once here, not inside the first page's time
    page = "<html><body><article>" + "<p>A sentence of warm-up text for both extractors.</p>" * 8
    for fn in (newsflow, plain, plain_meta):
        fn((page + "</article></body></html>").encode(), "https://warm-up.invalid/2024/01/02/a")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL)
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--worst", type=int, default=0, help="list the K pages where our score trails plain's most")
    ap.add_argument("--baseline-src", type=Path, help="another checkout's root: compare CPU per page with it")
    ap.add_argument("--dump", type=Path, help="write every page's outputs to this JSON-lines file")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker()
    quiet()
    if not args.eval_dir.is_dir():
        print(f"evaluation data not found at {args.eval_dir} (see ../shared/eval/README.md); nothing measured")
        return 1
    pair = (Worker(), Worker(args.baseline_src)) if args.baseline_src else None
    started = time.monotonic()
    labelled: Counter[str] = Counter()
    try:
        for name in args.sets.split(","):
            rows = load(args.eval_dir / name)[: args.limit or None]
            sr = run_set(name, rows, pair)
            report(sr, len(rows))
            labelled.update(sr.ours.labelled)
            if args.dump:
                dump(sr, args.dump)
            if args.worst:
                worst(sr, args.worst)
    finally:
        for w in pair or ():
            w.close()
    if n := sum(labelled.values()):
        print(
            f"\ncaptions precision on the hand-labelled sample, all sets: {labelled['caption'] / n:.1%}"
            f" ({labelled['caption']} of the {n} labelled items returned in this run are captions)"
        )
    print(f"\n({time.monotonic() - started:.0f} s, load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
