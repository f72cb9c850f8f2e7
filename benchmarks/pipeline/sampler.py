"""Resource sampling of the pipeline's processes (with their worker children) and of Redis, over time."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil
import redis


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and all its descendants, the exited ones included: an exited worker's time
    is in its reaping parent's children_* counters (pebble's forkserver reaps the parser's workers)."""
    total = 0.0
    for p in _tree(pid):
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


SELF = ".self"


def own_cpu_seconds(pid: int) -> float:
    try:
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


@dataclass
class Series:
    t: list[float] = field(default_factory=list)
    rss_total_mb: list[float] = field(default_factory=list)  # the whole tree
    rss_max_mb: list[float] = field(default_factory=list)  # its largest single process


@dataclass
class Sampler:
    """Samples every `every` seconds, in a thread, until stopped: per named group of root pids, the RSS of
    each process of their trees; Redis's used_memory; and CPU seconds at the start and at the end."""

    groups: Callable[[], dict[str, list[int]]]  # name -> root pids (called each time: replicas may change)
    redis_url: str | None = None
    every: float = 0.5
    series: dict[str, Series] = field(default_factory=dict)
    redis_t: list[float] = field(default_factory=list)
    redis_used_mb: list[float] = field(default_factory=list)
    cpu_start: dict[str, float] = field(default_factory=dict)
    cpu_end: dict[str, float] = field(default_factory=dict)
    t0: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __getstate__(self) -> dict[str, object]:
        # Saved with the results (run_all.py --report-only): the figures, not the thread.
        return {k: v for k, v in self.__dict__.items() if k not in ("_stop", "_thread", "groups")}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._stop = threading.Event()
        self._thread = None
        self.groups = dict

    def cpu_now(self) -> dict[str, float]:
        out = {}
        for name, pids in self.groups().items():
            out[name] = sum(tree_cpu_seconds(p) for p in pids)
            # The service process alone (the parser's, without its extraction workers): `<name>.self`.
            out[f"{name}{SELF}"] = sum(own_cpu_seconds(p) for p in pids)
        return out

    def start(self) -> Sampler:
        self.t0 = time.time()
        self.cpu_start = self.cpu_now()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Sampler:
        self.cpu_end = self.cpu_now()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._sample(None)
        return self

    def _run(self) -> None:
        client = redis.Redis.from_url(self.redis_url) if self.redis_url else None
        try:
            while not self._stop.is_set():
                self._sample(client)
                self._stop.wait(self.every)
        finally:
            if client is not None:
                client.close()

    def _sample(self, client: redis.Redis | None) -> None:
        now = time.time() - self.t0
        for name, pids in self.groups().items():
            rss = []
            for pid in pids:
                for p in _tree(pid):
                    with contextlib.suppress(psutil.Error):
                        rss.append(p.memory_info().rss / 2**20)
            if rss:
                s = self.series.setdefault(name, Series())
                s.t.append(now)
                s.rss_total_mb.append(sum(rss))
                s.rss_max_mb.append(max(rss))
        if client is not None:
            try:
                info = client.info("memory")
                self.redis_t.append(now)
                self.redis_used_mb.append(int(info["used_memory"]) / 2**20)
            except redis.RedisError:
                pass

    # -- summaries ---------------------------------------------------------------------------------
    def cpu_seconds(self) -> dict[str, float]:
        return {k: self.cpu_end.get(k, 0.0) - self.cpu_start.get(k, 0.0) for k in self.cpu_end}

    def peak_process_mb(self) -> dict[str, float]:
        return {k: max(s.rss_max_mb, default=0.0) for k, s in self.series.items()}

    def peak_tree_mb(self) -> dict[str, float]:
        return {k: max(s.rss_total_mb, default=0.0) for k, s in self.series.items()}

    def redis_peak_mb(self) -> float:
        return max(self.redis_used_mb, default=0.0)
