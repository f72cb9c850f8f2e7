"""Extraction quality and speed: Newsflow's parser against plain `trafilatura.extract`, same pages, same run.

Reads the labelled pages in ../shared/eval (see its README; nothing is copied into the project):
- scrapinghub: body text truth -> token-level precision / recall / F1 (4-token shingles over `\\w+`,
  per-page TP/FP/FN normalised, macro averages, F1 of the averages: the benchmark's official metric);
- fundus-parser: body, title, authors, publishing date and image captions -> the same text metric,
  title / author / date accuracy and caption figures (found separately, leaked into the text).
Speed is pages per CPU-second of this process (one page at a time, one core), for both, and the ratio.

    .venv/bin/python benchmarks/bench_extraction.py [--eval-dir DIR] [--limit N] [--worst K]
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trafilatura
from dateutil import parser as dateparser

from newsflow_parser.errors import ExtractionError
from newsflow_parser.extract import extract
from newsflow_parser.textutil import key

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EVAL = ROOT.parent / "shared" / "eval"
TOKEN = re.compile(r"\w+")
SHINGLE = 4


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


@dataclass
class Run:
    name: str
    seconds: float = 0.0
    pages: int = 0
    text: list[tuple[float, float, float]] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    title_ok: int = 0
    author_ok: int = 0
    author_n: int = 0
    day_ok: int = 0
    instant_ok: int = 0
    date_n: int = 0
    caps_truth: int = 0
    caps_found: int = 0
    caps_leaked: int = 0
    caps_returned: int = 0
    per_page: list[tuple[float, str]] = field(default_factory=list)


def ours(html: str, url: str) -> dict[str, Any]:
    try:
        a = extract(html, url)
    except ExtractionError as e:
        return {"text": "", "error": e.reason}
    return {
        "text": a.text,
        "title": a.title,
        "authors": a.authors,
        "date": a.published_at,
        "date_has_time": True,
        "captions": [c.text for c in a.captions],
    }


def plain(html: str, url: str) -> dict[str, Any]:
    return {"text": trafilatura.extract(html, url=url) or ""}


def plain_meta(html: str, url: str) -> dict[str, Any]:
    doc = trafilatura.bare_extraction(html, url=url, with_metadata=True)
    if doc is None:
        return {"text": ""}
    d = doc.as_dict()
    authors = [a.strip() for a in re.split(r";", d.get("author") or "") if a.strip()]
    date = None
    if d.get("date"):
        date = datetime.fromisoformat(d["date"]).replace(tzinfo=UTC)
    return {
        "text": d.get("text") or "",
        "title": d.get("title"),
        "authors": authors,
        "date": date,
        "date_has_time": False,
        "captions": [],
    }


def timed(run: Run, fn: Callable[[str, str], dict[str, Any]], html: str, url: str) -> dict[str, Any]:
    # CPU time of this process: pages per second per core, and fair to both extractors on a busy machine
    t0 = time.process_time()
    out = fn(html, url)
    run.seconds += time.process_time() - t0
    run.pages += 1
    if out.get("error"):
        run.failures[out["error"]] += 1
    return out


def load(folder: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (folder / "truth.jsonl").read_text(encoding="utf-8").splitlines() if line]
    for r in rows:
        f = folder / f"{r['id']}.html"
        raw = f.read_bytes() if f.exists() else gzip.decompress((folder / f"{r['id']}.html.gz").read_bytes())
        r["html"] = raw.decode("utf-8", errors="replace")
    return rows


def fmt_prf(run: Run) -> str:
    p, r, f = prf(run.text)
    return f"{p:.3f} | {r:.3f} | {f:.3f}"


def bench_text(name: str, rows: list[dict[str, Any]], runs: list[tuple[Run, Callable[..., dict[str, Any]]]]) -> None:
    for r in rows:
        for run, fn in runs:
            out = timed(run, fn, r["html"], r.get("url") or "https://example.org/")
            row = tp_fp_fn(r["text"], out["text"])
            run.text.append(row)
            run.per_page.append((page_f1(row), r["id"]))


def norm_name(s: str) -> str:
    return key(s)


def score_meta(run: Run, truth: dict[str, Any], out: dict[str, Any], text: str) -> None:
    if truth.get("title"):
        run.title_ok += int(bool(out.get("title")) and key(out["title"]) == key(truth["title"]))
    if truth.get("authors"):
        run.author_n += 1
        got = {norm_name(a) for a in out.get("authors") or []}
        run.author_ok += int(got == {norm_name(a) for a in truth["authors"]})
    if truth.get("date"):
        run.date_n += 1
        td = dateparser.parse(truth["date"])
        d = out.get("date")
        if d is not None:
            if out.get("date_has_time"):
                tdu = td.astimezone(UTC) if td.tzinfo else td.replace(tzinfo=UTC)
                run.day_ok += int(d.date() == tdu.date() or d.date() == td.date())
                run.instant_ok += int(abs((d - tdu).total_seconds()) <= 60)
            else:
                run.day_ok += int(d.date() == td.date())
    tk = key(text)
    body = key(truth.get("text") or "")
    found = [key(c) for c in out.get("captions") or []]
    run.caps_returned += len(found)
    for cap in truth.get("captions") or []:
        ck = key(cap)
        if len(ck.split()) < 4:
            continue
        run.caps_truth += 1
        # a caption whose sentence the article body also prints (truth text) is not a leak
        run.caps_leaked += int(ck in tk and ck not in body)
        run.caps_found += int(any(ck == f or (ck in f) or (f in ck and len(f) > 0.6 * len(ck)) for f in found))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--worst", type=int, default=0, help="list the K pages where our F1 trails plain most")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import logging

    logging.disable(logging.CRITICAL)  # trafilatura logs every discarded page
    sh_dir, fu_dir = args.eval_dir / "scrapinghub", args.eval_dir / "fundus-parser"
    if not sh_dir.is_dir():
        print(f"evaluation data not found at {args.eval_dir} (see ../shared/eval/README.md); nothing measured")
        return 1
    sh = load(sh_dir)
    if args.limit:
        sh = sh[: args.limit]
    us, tr = Run("newsflow"), Run("trafilatura.extract")
    bench_text("scrapinghub", sh, [(us, ours), (tr, plain)])
    print(f"## scrapinghub ({len(sh)} pages): body text, token 4-shingles (P | R | F1)\n")
    print("| extractor | P | R | F1 | pages/s/core | failures |")
    print("|---|---|---|---|---|---|")
    for run in (us, tr):
        print(f"| {run.name} | {fmt_prf(run)} | {run.pages / run.seconds:.1f} | {dict(run.failures) or '-'} |")
    print(f"\nspeed ratio newsflow / plain trafilatura: {(us.pages / us.seconds) / (tr.pages / tr.seconds):.2f}")
    if args.worst:
        tr_by = {pid: v for v, pid in tr.per_page}
        diffs = sorted(((v - tr_by[pid], pid) for v, pid in us.per_page))[: args.worst]
        print("\nworst pages (our page F1 minus plain's):", *(f"{d:+.3f} {pid}" for d, pid in diffs), sep="\n  ")

    if fu_dir.is_dir():
        fu = load(fu_dir)
        if args.limit:
            fu = fu[: args.limit]
        us2, trm = Run("newsflow"), Run("trafilatura (with_metadata)")
        for r in fu:
            for run, fn in ((us2, ours), (trm, plain_meta)):
                out = timed(run, fn, r["html"], r["url"])
                run.text.append(tp_fp_fn(r["text"], out["text"]))
                run.per_page.append((page_f1(run.text[-1]), r["id"]))
                score_meta(run, r, out, out["text"])
        n = len(fu)
        print(f"\n## fundus-parser ({n} pages, many languages): body text, metadata, captions\n")
        print(
            "| extractor | text P | R | F1 | title exact | authors exact | date day | date ±60s"
            " | captions found | captions leaked into text | pages/s/core |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for run in (us2, trm):
            inst = f"{run.instant_ok / run.date_n:.0%}" if run.name == "newsflow" else "n/a (day only)"
            print(
                f"| {run.name} | {fmt_prf(run)} | {run.title_ok / n:.0%} | {run.author_ok / max(1, run.author_n):.0%}"
                f" | {run.day_ok / max(1, run.date_n):.0%} | {inst}"
                f" | {run.caps_found}/{run.caps_truth} ({run.caps_found / max(1, run.caps_truth):.0%})"
                f" | {run.caps_leaked}/{run.caps_truth} ({run.caps_leaked / max(1, run.caps_truth):.1%})"
                f" | {run.pages / run.seconds:.1f} |"
            )
        print(f"\nnewsflow returned {us2.caps_returned} captions in all; failures: {dict(us2.failures) or '-'}")
        if args.worst:
            tr_by = {pid: v for v, pid in trm.per_page}
            diffs = sorted(((v - tr_by[pid], pid) for v, pid in us2.per_page))[: args.worst]
            print("\nworst fundus pages:", *(f"{d:+.3f} {pid}" for d, pid in diffs), sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
