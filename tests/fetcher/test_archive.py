"""The WARC archive: written by the real fetcher service for every page it downloads, read back by
warcio's own reader and its `check`/`index` commands; rotation, replicas and retention on their own."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from fetcher_helpers import WebServer, fetcher_settings, rss, wait_for
from warcio.archiveiterator import ArchiveIterator

from newsflow_archive.reader import BrokenRecord, iter_responses, read_page
from newsflow_archive.writer import Fetched, WarcArchive
from newsflow_fetcher.main import service as fetcher
from newsflow_shared import streams
from newsflow_shared.models import RawPage
from newsflow_shared.runtime import DATA_FIELD

WARCIO = str(Path(sys.executable).with_name("warcio"))


def warcio(*args: str) -> subprocess.CompletedProcess[str]:
    """warcio's own command line (check, index): an independent reader of what the archive wrote."""
    return subprocess.run([WARCIO, *args], capture_output=True, text=True, timeout=60)


def page(i: int, body: bytes = b"<html><body>page</body></html>") -> Fetched:
    return Fetched(
        url=f"https://n.test/a/{i}",
        status=200,
        reason="OK",
        http_version="HTTP/1.1",
        request_headers=[("User-Agent", "NewsflowBot")],
        response_headers=[("Content-Type", "text/html"), ("Content-Encoding", "gzip")],
        body=body,
        fetched_at=datetime.now(UTC),
        metadata={"entry": {"url": f"https://n.test/a/{i}"}},
    )


@pytest.mark.unit
def test_rotation_by_size_replicas_and_retention(tmp_path: Path) -> None:
    a = WarcArchive(tmp_path, "fetcher-a", max_file_bytes=4000)
    b = WarcArchive(tmp_path, "fetcher b/2")  # a name that is no safe file name is made one
    refs = [a.write(page(i, os.urandom(1500))) for i in range(6)] + [b.write(page(99))]
    a.close()
    b.close()
    files = sorted(tmp_path.glob("*/*.warc.gz"))
    # Rotated by size: several files for replica a, one for b, never a shared file.
    assert len({r.file for r in refs[:6]}) >= 3 and all("fetcher-a" in r.file for r in refs[:6])
    assert "fetcher-b-2" in refs[6].file and len(files) == len({r.file for r in refs})
    for ref in refs:
        assert read_page(ref, tmp_path).metadata["entry"]["url"] == read_page(ref, tmp_path).url
    # Retention: files older than the limit go, newer ones stay, empty day directories vanish.
    old = time.time() - 40 * 86400
    for f in files[:2]:
        os.utime(f, (old, old))
    assert WarcArchive(tmp_path, "pruner", retention_days=30).prune() == 2
    assert sorted(tmp_path.glob("*/*.warc.gz")) == files[2:]


@pytest.mark.unit
def test_a_broken_record_costs_only_itself(tmp_path: Path) -> None:
    a = WarcArchive(tmp_path, "r")
    refs = [a.write(page(i)) for i in range(3)]
    a.close()
    path = tmp_path / refs[0].file
    data = bytearray(path.read_bytes())
    # Corrupt the middle response's compressed bytes.
    mid = refs[1].offset + refs[1].length // 2
    data[mid : mid + 20] = b"\x00" * 20
    path.write_bytes(bytes(data))
    got = list(iter_responses(path))
    pages = [g for g in got if not isinstance(g, BrokenRecord)]
    assert [p.url for p in pages] == ["https://n.test/a/0", "https://n.test/a/2"]
    assert any(isinstance(g, BrokenRecord) and g.error for g in got)


@pytest.mark.integration
async def test_fetcher_archives_every_page_for_any_warc_reader(
    site: WebServer, redis: Any, redis_url: str, tmp_path: Path
) -> None:
    bodies = {}
    for i in range(3):
        site.article(f"/news/{i}", f"Story {i}")
        bodies[site.url(f"/news/{i}")] = None
    site.static("/feed.xml", rss([(u, f"Story {n}") for n, u in enumerate(bodies)]), "application/rss+xml")
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(yaml.safe_dump([{"url": site.url("/feed.xml")}]))
    archive = tmp_path / "archive"
    settings = fetcher_settings(redis_url, feeds_file=feeds, archive_dir=archive, respect_robots=False)
    stop = asyncio.Event()
    task = asyncio.create_task(fetcher.instance(settings).serve(stop))
    try:

        async def three() -> bool:
            return int(await redis.xlen(streams.RAW)) >= 3

        assert await wait_for(three, 20)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    pages = [RawPage.model_validate_json(f[DATA_FIELD]) for _, f in await redis.xrange(streams.RAW)]
    assert all(p.archive is not None for p in pages)
    files = sorted(archive.glob("*/*.warc.gz"))
    assert len(files) == 1 and not list(archive.glob("*/*.open"))  # closed and renamed at shutdown

    # warcio's own reader: warcinfo, then request, response and metadata per page.
    with files[0].open("rb") as f:
        records = [
            (r.rec_type, r.rec_headers.get_header("WARC-Target-URI"), r.content_stream().read())
            for r in ArchiveIterator(f)
        ]
    assert [t for t, _, _ in records] == ["warcinfo"] + ["request", "response", "metadata"] * 3
    for p in pages:
        (body,) = [b for t, u, b in records if t == "response" and u == p.final_url]
        assert body.decode() == p.html() and b"Body of Story" in body
    check = warcio("check", "-v", str(files[0]))
    assert check.returncode == 0 and check.stdout.count("digest pass") == 10, check.stdout
    index = [json.loads(line) for line in warcio("index", str(files[0])).stdout.splitlines()]
    responses = {int(r["offset"]): r["warc-target-uri"] for r in index if r["warc-type"] == "response"}
    assert {p.archive.offset: p.final_url for p in pages if p.archive} == responses
    # Each ref reads back the page and the feed entry it came with.
    for p in pages:
        assert p.archive is not None
        back = read_page(p.archive, archive)
        assert back.status == 200 and back.metadata["entry"]["article_id"] == p.entry.article_id
