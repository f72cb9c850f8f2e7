"""Reading pages back: one record by its ArchiveRef (reparse), or every response of a WARC file from an
offset on (backfill, CC-NEWS layout included: response records with HTTP headers), with warcio.

A broken record (bad gzip, a truncated member, headers that do not parse) is reported with its offset
and skipped: the reader looks for the next gzip member that starts a WARC record and goes on from there,
so one bad record never costs the rest of a file.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from newsflow_archive.writer import OPEN_SUFFIX
from newsflow_shared.models import ArchiveRef

log = logging.getLogger("newsflow.archive")

_GZIP_MEMBER = b"\x1f\x8b\x08"
RESYNC_WINDOW = 1 << 20


class ArchiveError(Exception):
    """The archived page cannot be read: a missing file, a record that is no response, a broken member."""


@dataclass
class ArchivedPage:
    url: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    fetched_at: datetime
    ref: ArchiveRef
    metadata: dict[str, Any] = field(default_factory=dict)  # the feed entry the fetcher archived with it

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").split(";", 1)[0].strip().lower()


@dataclass
class BrokenRecord:
    offset: int
    error: str


def _date(value: str | None) -> datetime:
    if value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            pass
    return datetime.now(UTC)


def resolve(ref_file: str, archive_dir: Path | None) -> Path:
    path = Path(ref_file)
    if not path.is_absolute():
        if archive_dir is None:
            raise ArchiveError(f"{ref_file} is in the archive, and no archive directory is set (NEWSFLOW_ARCHIVE_DIR)")
        path = archive_dir / path
    if path.exists():
        return path
    still_open = path.with_name(path.name + OPEN_SUFFIX)  # the file its replica is still writing
    if still_open.exists():
        return still_open
    raise ArchiveError(f"archived file {path} is gone (retention, or another volume)")


def _page(record: Any, ref: ArchiveRef, body: bytes | None = None) -> ArchivedPage:
    http = record.http_headers
    status = int(http.get_statuscode() or 0) if http is not None else 0
    headers = list(http.headers) if http is not None else []
    return ArchivedPage(
        url=record.rec_headers.get_header("WARC-Target-URI") or "",
        status=status,
        headers=headers,
        body=record.content_stream().read() if body is None else body,
        fetched_at=_date(record.rec_headers.get_header("WARC-Date")),
        ref=ref,
    )


def read_page(ref: ArchiveRef, archive_dir: Path | None = None) -> ArchivedPage:
    """The response record `ref` points at, with the metadata record written right after it."""
    path = resolve(ref.file, archive_dir)
    try:
        with path.open("rb") as f:
            f.seek(ref.offset)
            it = iter(ArchiveIterator(f))
            record = next(it, None)
            if record is None or record.rec_type != "response":
                raise ArchiveError(f"no response record at {ref.file}:{ref.offset}")
            page = _page(record, ref)
            nxt = next(it, None)
            rid = record.rec_headers.get_header("WARC-Record-ID")
            if (
                nxt is not None
                and nxt.rec_type == "metadata"
                and nxt.rec_headers.get_header("WARC-Concurrent-To") == rid
            ):
                page.metadata = _json(nxt.content_stream().read())
            return page
    except (ArchiveLoadFailed, zlib.error, ValueError, EOFError) as e:
        raise ArchiveError(f"broken record at {ref.file}:{ref.offset}: {e}") from e


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _resync(f: IO[bytes], after: int) -> int | None:
    """The offset of the next gzip member after `after` that starts a WARC record, or None at the end."""
    pos = after + 1
    while True:
        f.seek(pos)
        chunk = f.read(RESYNC_WINDOW)
        if len(chunk) < len(_GZIP_MEMBER):
            return None
        i = chunk.find(_GZIP_MEMBER)
        while i >= 0:
            try:
                head = zlib.decompressobj(wbits=31).decompress(chunk[i : i + 4096], 16)
            except zlib.error:
                head = b""
            if head.startswith(b"WARC/"):
                return pos + i
            i = chunk.find(_GZIP_MEMBER, i + 1)
        pos += len(chunk) - len(_GZIP_MEMBER)


def iter_responses(path: Path, start: int = 0) -> Iterator[ArchivedPage | BrokenRecord]:
    """Every response record of a WARC file (gzipped per record, or not), from offset `start` on.

    Yields pages with their ArchiveRef (absolute path, offset, length), and BrokenRecord for a record that
    cannot be read; the caller may save `page.ref.offset + page.ref.length` to resume after a stop."""
    path = path.resolve()
    with path.open("rb") as f:
        offset: int | None = start
        while offset is not None:
            f.seek(offset)
            it = ArchiveIterator(f)
            try:
                for record in it:
                    if record.rec_type != "response":
                        continue
                    body = record.content_stream().read()
                    it.read_to_end(record)
                    ref = ArchiveRef(
                        file=str(path),
                        offset=it.get_record_offset(),
                        length=max(1, it.get_record_length()),
                        record_id=record.rec_headers.get_header("WARC-Record-ID"),
                    )
                    yield _page(record, ref, body)
                return
            except (ArchiveLoadFailed, zlib.error, ValueError, EOFError) as e:
                bad = it.offset if isinstance(getattr(it, "offset", None), int) else offset
                yield BrokenRecord(bad, f"{type(e).__name__}: {e}"[:300])
                offset = _resync(f, max(bad, offset))
