"""Writing the archive: every page the fetcher downloads, as WARC records (warcio builds them).

Per page three records, each its own gzip member (so any record can be read with one seek): the
`response` (HTTP status line, headers and the body bytes as received, charset untouched), the `request`
that fetched it, and a `metadata` record with the feed entry as JSON, so a reparse knows what the feed
said about the page. The ArchiveRef points at the response record, as a CDX index would.

Files: `<dir>/<YYYY-MM-DD>/newsflow-<UTC time>-<serial>-<replica>.warc.gz`, written as `.open` and
renamed when rotated (by size or age), the IIPC naming with the replica's name in it, so replicas that
share a volume never write one file. httpx hands over bodies without their Content-Encoding; the record
keeps the original header as `X-Archive-Orig-Content-Encoding` (pywb's convention) so that it stays
consistent for any WARC reader.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from newsflow_shared.models import ArchiveRef

log = logging.getLogger("newsflow.archive")

OPEN_SUFFIX = ".open"
# Headers that describe the bytes on the wire, not the body the record holds (it is decoded).
_WIRE_HEADERS = {"content-encoding", "transfer-encoding", "content-length"}
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass
class Fetched:
    """One fetched page, as the archive needs it."""

    url: str  # the URL finally fetched (after redirects)
    status: int
    reason: str
    http_version: str
    request_headers: Iterable[tuple[str, str]]
    response_headers: Iterable[tuple[str, str]]
    body: bytes
    fetched_at: datetime
    metadata: dict[str, Any] | None = None


def warc_date(d: datetime) -> str:
    return d.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def response_headers(headers: Iterable[tuple[str, str]], body_len: int) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, value in headers:
        if name.lower() in _WIRE_HEADERS:
            out.append((f"X-Archive-Orig-{name}", value))
        else:
            out.append((name, value))
    out.append(("Content-Length", str(body_len)))
    return out


class WarcArchive:
    """The archive of one fetcher replica. Thread-safe; `write` blocks (the fetcher calls it in a thread)."""

    def __init__(
        self,
        directory: Path,
        replica: str,
        *,
        max_file_bytes: int = 1024**3,
        max_file_age_s: float = 3600.0,
        retention_days: float = 30.0,
        max_total_bytes: int = 0,
        compress_level: int = 1,
    ) -> None:
        self.directory = Path(directory)
        self.replica = _SAFE.sub("-", replica).strip("-")[:80] or "fetcher"
        self.max_file_bytes = max_file_bytes
        self.max_file_age_s = max_file_age_s
        self.retention_s = retention_days * 86400
        self.max_total_bytes = max_total_bytes
        self.level = compress_level
        self._lock = threading.Lock()
        self._file: io.BufferedWriter | None = None
        self._name = ""  # relative path of the current file, without the .open suffix
        self._opened = 0.0
        self._serial = 0
        self._size = 0
        self.directory.mkdir(parents=True, exist_ok=True)

    # --- records ---------------------------------------------------------------------------------------

    def _member(self, writer: WARCWriter, record: Any) -> bytes:
        buf = io.BytesIO()
        writer.out = buf
        writer.write_record(record)
        z = zlib.compressobj(self.level, zlib.DEFLATED, 31)  # one gzip member per record
        return z.compress(buf.getvalue()) + z.flush()

    def _records(self, page: Fetched) -> tuple[bytes, bytes, bytes, str]:
        """(request, response, metadata) gzip members and the response's record id."""
        w = WARCWriter(io.BytesIO(), gzip=False)
        date = warc_date(page.fetched_at)
        http = StatusAndHeaders(
            f"{page.status} {page.reason}".strip(),
            response_headers(page.response_headers, len(page.body)),
            protocol=page.http_version or "HTTP/1.1",
        )
        response = w.create_warc_record(
            page.url,
            "response",
            payload=io.BytesIO(page.body),
            length=len(page.body),
            http_headers=http,
            warc_headers_dict={"WARC-Date": date},
        )
        rid = response.rec_headers.get_header("WARC-Record-ID")
        parts = urlsplit(page.url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        request = w.create_warc_record(
            page.url,
            "request",
            payload=io.BytesIO(b""),
            length=0,
            http_headers=StatusAndHeaders(
                f"GET {target} {page.http_version or 'HTTP/1.1'}",
                [("Host", parts.netloc), *page.request_headers],
                is_http_request=True,
            ),
            warc_headers_dict={"WARC-Date": date, "WARC-Concurrent-To": rid},
        )
        meta = json.dumps(page.metadata or {}, ensure_ascii=False, default=str).encode("utf-8")
        metadata = w.create_warc_record(
            page.url,
            "metadata",
            payload=io.BytesIO(meta),
            length=len(meta),
            warc_content_type="application/json",
            warc_headers_dict={"WARC-Date": date, "WARC-Concurrent-To": rid},
        )
        return self._member(w, request), self._member(w, response), self._member(w, metadata), rid

    def write(self, page: Fetched) -> ArchiveRef:
        """Append the page's records; returns where its response record is. Raises OSError."""
        request, response, metadata, rid = self._records(page)  # compression outside the lock
        with self._lock:
            f = self._current(len(request) + len(response) + len(metadata))
            f.write(request)
            offset = self._size + len(request)
            f.write(response)
            f.write(metadata)
            f.flush()  # a crash of the process loses nothing written; the OS holds it
            self._size += len(request) + len(response) + len(metadata)
            return ArchiveRef(file=self._name, offset=offset, length=len(response), record_id=rid)

    # --- files -------------------------------------------------------------------------------------------

    def _current(self, incoming: int) -> io.BufferedWriter:
        now = time.time()
        if self._file is not None and (
            (self._size + incoming > self.max_file_bytes and self._size > 0) or now - self._opened > self.max_file_age_s
        ):
            self._close_current()
        if self._file is None:
            self._open(now)
        assert self._file is not None
        return self._file

    def _open(self, now: float) -> None:
        stamp = datetime.fromtimestamp(now, UTC)
        day = stamp.strftime("%Y-%m-%d")
        (self.directory / day).mkdir(parents=True, exist_ok=True)
        while True:
            self._serial += 1
            name = f"{day}/newsflow-{stamp.strftime('%Y%m%d%H%M%S%f')[:17]}-{self._serial:05d}-{self.replica}.warc.gz"
            try:
                # Exclusive: never append to a file another process has (a replica with the same name).
                self._file = open(self.directory / (name + OPEN_SUFFIX), "xb")  # noqa: SIM115
                break
            except FileExistsError:
                continue
        self._name, self._opened, self._size = name, now, 0
        info = WARCWriter(io.BytesIO(), gzip=False)
        record = info.create_warcinfo_record(
            Path(name).name, {"software": "Newsflow fetcher (warcio)", "format": "WARC File Format 1.0"}
        )
        member = self._member(info, record)
        self._file.write(member)
        self._size = len(member)
        log.info("archive: writing %s", name)

    def _close_current(self) -> None:
        if self._file is None:
            return
        f, name = self._file, self._name
        self._file = None
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.replace(self.directory / (name + OPEN_SUFFIX), self.directory / name)
        self.prune()

    def rotate(self) -> None:
        with self._lock:
            self._close_current()

    def close(self) -> None:
        self.rotate()

    # --- retention ---------------------------------------------------------------------------------------

    def prune(self, now: float | None = None) -> int:
        """Delete closed files past the retention (and the oldest ones over the size cap); finish `.open`
        files left by a replica that died (not written to for two rotation periods). Returns files deleted."""
        now = now or time.time()
        closed: list[tuple[float, int, Path]] = []
        for path in self.directory.glob("*/*.warc.gz*"):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue  # another replica pruned it meanwhile
            if path.name.endswith(OPEN_SUFFIX):
                if now - st.st_mtime > 2 * self.max_file_age_s and path != self._open_path():
                    with _quiet():
                        os.replace(path, path.with_name(path.name[: -len(OPEN_SUFFIX)]))
                continue
            closed.append((st.st_mtime, st.st_size, path))
        closed.sort()
        total = sum(size for _, size, _ in closed)
        deleted = 0
        for mtime, size, path in closed:
            too_old = self.retention_s > 0 and now - mtime > self.retention_s
            too_big = self.max_total_bytes > 0 and total > self.max_total_bytes
            if not (too_old or too_big):
                break
            with _quiet():
                path.unlink()
                deleted += 1
                total -= size
        for day in self.directory.iterdir():
            if day.is_dir():
                with _quiet():
                    day.rmdir()  # only succeeds when empty
        if deleted:
            log.info("archive retention: %d file(s) deleted", deleted)
        return deleted

    def _open_path(self) -> Path | None:
        return self.directory / (self._name + OPEN_SUFFIX) if self._file is not None else None


class _quiet:
    """Suppress what concurrent pruning by another replica causes (file gone, directory not empty)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> bool:
        return exc_type is not None and issubclass(exc_type, OSError)
