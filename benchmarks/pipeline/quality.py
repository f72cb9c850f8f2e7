"""Extraction speed and quality on scrapinghub, one core: plain trafilatura, Newsflow's parser, news-please.

news-please runs in a throwaway environment of its own (see newsplease_worker.py); when that cannot be
made (no network to the package index, no uv), its row says so instead of holding figures.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from benchmarks.pipeline.pages import ROOT, BasePage

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_extraction import prf, tp_fp_fn

NEWSPLEASE = "news-please==1.6.16"


@dataclass
class Quality:
    name: str
    pages: int
    seconds: float | None  # CPU seconds of extraction, one page at a time (None: not measured)
    p: float = 0.0
    r: float = 0.0
    f1: float = 0.0
    note: str = ""

    @property
    def rate(self) -> float | None:
        return self.pages / self.seconds if self.seconds else None


def _score(name: str, truth: list[str], texts: list[str], seconds: float | None, timed: int) -> Quality:
    p, r, f1 = prf([tp_fp_fn(t, x) for t, x in zip(truth, texts, strict=True)])
    return Quality(name, timed, seconds, p, r, f1)


def measure(pages: list[BasePage], eval_dir: Path, limit: int = 0, with_newsplease: bool = True) -> list[Quality]:
    import trafilatura

    from newsflow_extract.errors import ExtractionError
    from newsflow_extract.extract import extract

    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    sh = [p for p in pages if p.source == "scrapinghub"]
    if limit:
        sh = sh[:limit]
    truth = [p.truth for p in sh]
    out: list[Quality] = []

    def ours(p: BasePage) -> str:
        try:
            return extract(p.html.decode("utf-8"), p.url or "https://example.org/").text
        except ExtractionError:
            return ""

    for name, fn in (
        ("trafilatura.extract (plain)", lambda p: trafilatura.extract(p.html.decode("utf-8"), url=p.url) or ""),
        ("Newsflow parser (extract)", ours),
    ):
        fn(sh[0])
        t0 = time.process_time()  # CPU time: fair to every extractor on a machine busy with other work
        texts = [fn(p) for p in sh]
        out.append(_score(name, truth, texts, time.process_time() - t0, len(sh)))

    if with_newsplease:
        out.append(newsplease(sh, truth, eval_dir, limit))
    return out


def newsplease(sh: list[BasePage], truth: list[str], eval_dir: Path, limit: int) -> Quality:
    uv = shutil.which("uv")
    if uv is None:
        return Quality("news-please", 0, None, note="not measured: uv not found")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "np.jsonl"
        cmd = [
            uv,
            "run",
            "--isolated",
            "--no-project",
            "--python",
            "3.11",
            "--with",
            NEWSPLEASE,
            "python",
            str(ROOT / "benchmarks" / "pipeline" / "newsplease_worker.py"),
            str(eval_dir / "scrapinghub"),
            str(out),
            str(limit or 0),
        ]
        r = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
        if r.returncode != 0 or not out.exists():
            return Quality("news-please", 0, None, note=f"not measured: {r.stderr.strip()[-300:]}")
        rows = {d["id"]: d for d in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    texts = [rows.get(p.id, {}).get("text", "") for p in sh]
    timed = [d["seconds"] for d in rows.values() if d["seconds"] is not None]
    q = _score(f"news-please {NEWSPLEASE.split('==')[1]} (NewsPlease.from_html)", truth, texts, sum(timed), len(timed))
    return q
