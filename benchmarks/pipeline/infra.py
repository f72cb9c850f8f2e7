"""Redis and Elasticsearch for the benchmark: the project's own start scripts, or URLs from the environment."""

from __future__ import annotations

import atexit
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.pipeline.pages import ROOT


@dataclass
class Servers:
    redis_url: str
    es_url: str
    redis_pid: int | None = None
    es_pid: int | None = None
    _stops: list[list[str]] = field(default_factory=list)

    def stop(self) -> None:
        for cmd in reversed(self._stops):
            subprocess.run(cmd, cwd=ROOT, capture_output=True, check=False)
        self._stops.clear()


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _start(cmd: list[str]) -> str:
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if r.returncode != 0 or not r.stdout.strip():
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return r.stdout.strip().splitlines()[-1].strip()


def start_servers(state_dir: Path) -> Servers:
    """NEWSFLOW_REDIS_URL / NEWSFLOW_ELASTICSEARCH_URL when set (their pids are then unknown: not
    sampled), otherwise a Redis and a node of our own under `state_dir`, stopped by `Servers.stop()`."""
    redis_url = os.environ.get("NEWSFLOW_REDIS_URL")
    es_url = os.environ.get("NEWSFLOW_ELASTICSEARCH_URL")
    s = Servers(redis_url or "", es_url or "")
    try:
        if not redis_url:
            d = state_dir / "redis"
            s.redis_url = _start(["scripts/redis.sh", "start", "--dir", str(d)])
            s._stops.append(["scripts/redis.sh", "stop", "--dir", str(d)])
            s.redis_pid = _pid(d / "redis.pid")
        if not es_url:
            d = state_dir / "elasticsearch"
            s.es_url = _start(["scripts/elasticsearch.sh", "start", "--home", str(d)])
            s._stops.append(["scripts/elasticsearch.sh", "stop", "--home", str(d)])
            s.es_pid = _pid(d / "node.pid")
    except BaseException:
        s.stop()
        raise
    atexit.register(s.stop)  # a safety net: stop() is idempotent, and a crash must not leave servers behind
    return s
