"""Handles on the HA servers that scripts/elasticsearch.sh and scripts/redis.sh start, for tests/ha.

Everything goes through the scripts' own commands (start, kill-node, kill-primary, start-server ...), so
the tests prove the scripts as operators and the lead's fault tests will use them. Nothing is mocked.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_script(args: list[str], timeout: float = 300) -> str:
    """Run a script; its last stdout line (a URL, a master) is the answer. Its stderr goes into the failure."""
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {out.returncode}:\n{out.stderr}")
    lines = out.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def run_status(args: list[str]) -> tuple[int, list[str]]:
    """`status` of a script: its exit code (0 all up, 3 stopped, 4 degraded) and its lines."""
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    return out.returncode, out.stdout.strip().splitlines()


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for init to reap it (as the scripts count it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return not any(line.startswith("State:") and "Z" in line.split()[1] for line in status.splitlines())


def running_pid(pidfile: Path) -> int | None:
    """The pid a script wrote to `pidfile`, if that process still runs."""
    if not pidfile.exists():
        return None
    pid = int(pidfile.read_text())
    return pid if alive(pid) else None


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for pid {pid}")


@dataclass
class Figures:
    """Measured times and sizes, printed at the end of the run (tests/ha/conftest.py)."""

    rows: list[tuple[str, str]] = field(default_factory=list)

    def add(self, what: str, value: float, unit: str = "s") -> None:
        text = f"{value:.2f} {unit}" if unit == "s" else f"{value:.0f} {unit}"
        self.rows.append((what, text))
        print(f"{what}: {text}")


@dataclass
class EsCluster:
    home: Path
    urls: list[str]
    start_s: float = 0.0

    def script(self, *args: str, timeout: float = 300) -> str:
        return run_script(["scripts/elasticsearch.sh", *args, "--home", str(self.home)], timeout)

    @property
    def size(self) -> int:
        return len(self.urls)

    def url(self, i: int) -> str:
        return self.urls[i - 1]

    def pid(self, i: int) -> int | None:
        return running_pid(self.home / f"node-{i}" / "node.pid")

    def running(self) -> list[int]:
        return [i for i in range(1, self.size + 1) if self.pid(i) is not None]

    def status(self) -> tuple[int, list[str]]:
        return run_status(["scripts/elasticsearch.sh", "status", "--home", str(self.home)])

    def master(self) -> int:
        """The elected master's node number, as the script reports it."""
        return int(self.script("master").split()[0])

    def kill(self, i: int) -> None:
        self.script("kill-node", str(i))

    def start(self, i: int) -> str:
        return self.script("start-node", str(i))

    def heal(self) -> None:
        """Every node running again (a test that killed one may have failed before restarting it)."""
        for i in range(1, self.size + 1):
            if self.pid(i) is None:
                self.start(i)


@dataclass
class RedisHA:
    dir: Path
    sentinels: list[tuple[str, int]]
    master_name: str
    start_s: float = 0.0

    @staticmethod
    def parse(address: str) -> tuple[list[tuple[str, int]], str]:
        """`sentinel://h1:p1,h2:p2,h3:p3/name` (the last line of `redis.sh start --ha`)."""
        assert address.startswith("sentinel://"), address
        hosts, name = address.removeprefix("sentinel://").split("/", 1)
        pairs = [(h, int(p)) for h, p in (hp.rsplit(":", 1) for hp in hosts.split(","))]
        return pairs, name

    def script(self, *args: str, timeout: float = 120) -> str:
        return run_script(["scripts/redis.sh", *args, "--dir", str(self.dir)], timeout)

    def port(self, i: int) -> int:
        return int((self.dir / f"server-{i}" / "redis.port").read_text())

    def pid(self, i: int) -> int | None:
        return running_pid(self.dir / f"server-{i}" / "redis.pid")

    def status(self) -> tuple[int, list[str]]:
        return run_status(["scripts/redis.sh", "status", "--dir", str(self.dir)])

    def master(self) -> int:
        return int(self.script("master").split()[0])

    def kill_primary(self) -> int:
        return int(self.script("kill-primary").split()[0])

    def start_server(self, i: int) -> str:
        return self.script("start-server", str(i))

    def heal(self) -> None:
        for i in (1, 2):
            if self.pid(i) is None:
                self.start_server(i)
