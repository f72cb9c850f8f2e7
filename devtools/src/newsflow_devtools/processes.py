"""Run Newsflow's services as separate processes, as compose runs them: for the local run, the
end-to-end and fault tests, and the benchmarks.

Each replica gets its own consumer name and metrics port; logs go to a file per replica. Stopping
sends SIGTERM and waits for the graceful exit; `kill()` is the crash (SIGKILL) the fault tests need.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

SERVICES = ("fetcher", "parser", "indexer")
# With the notifier, as compose and `make run` run them. The end-to-end fault tests count alerts on
# news.alerts, which the notifier trims once it has delivered them, so they run the three above.
ALL_SERVICES = (*SERVICES, "notifier")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def venv_bin(name: str) -> str:
    """The console script `name` installed beside the running interpreter (the project's .venv)."""
    return str(Path(sys.executable).parent / name)


@dataclass
class ServiceProcess:
    service: str
    replica: int
    env: dict[str, str]
    log_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def name(self) -> str:
        return f"{self.service}-{self.replica}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        env = {
            **self.env,
            "NEWSFLOW_METRICS_HOST": "127.0.0.1",
            "NEWSFLOW_METRICS_PORT": str(self.port),
            # A new name per start, as a new container would have: a restarted replica must not
            # silently inherit its dead predecessor's pending entries; the claimers take them.
            "NEWSFLOW_CONSUMER_NAME": f"{self.name}-{self.starts}-{os.getpid()}",
        }
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self.proc = subprocess.Popen(
            [venv_bin(f"newsflow-{self.service}")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, timeout: float = 3.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode if self.proc else '?'}: {self.tail()}"
                )
            try:
                if self.get("/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not healthy after {timeout:.0f} s: {self.tail()}")

    def stop(self, timeout: float = 40.0) -> int | None:
        """SIGTERM and wait: the graceful path. Returns the exit code."""
        if not self.running:
            return self.proc.returncode if self.proc else None
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def kill(self) -> None:
        """SIGKILL: a crash, with whatever it held left pending."""
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Pipeline:
    """The services (the three pipeline stages by default), with replicas, sharing one environment."""

    def __init__(
        self,
        env: Mapping[str, str],
        log_dir: Path,
        replicas: Mapping[str, int] | None = None,
        services: tuple[str, ...] = SERVICES,
    ) -> None:
        self.env = {**os.environ, **env}
        self.log_dir = log_dir
        self.services = services
        counts = {s: 1 for s in services} | dict(replicas or {})
        self.procs: dict[str, list[ServiceProcess]] = {
            s: [ServiceProcess(s, i + 1, self.env, log_dir) for i in range(counts[s])] for s in services
        }

    def __iter__(self) -> Iterator[ServiceProcess]:
        for s in self.services:
            yield from self.procs[s]

    def __getitem__(self, service: str) -> list[ServiceProcess]:
        return self.procs[service]

    def start(self, wait: bool = True) -> None:
        for p in self:
            p.start()
        if wait:
            for p in self:
                p.wait_ready()

    def stop(self) -> dict[str, int | None]:
        # Upstream first, so that downstream can drain what was published before it stops.
        return {p.name: p.stop() for p in self}

    def __enter__(self) -> Pipeline:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
