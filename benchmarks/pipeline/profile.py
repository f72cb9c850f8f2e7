"""Reading py-spy's raw (collapsed) stacks: where the on-CPU samples of a service go."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _package(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    m = re.search(r"/(newsflow_\w+)/(\w+)\.py", path)
    if m:
        return f"{m.group(1)}.{m.group(2)}"
    m = re.search(r"/python3\.\d+/(\w+)", path)
    if m:
        return m.group(1).removesuffix(".py")
    return path.rsplit("/", 1)[-1] or "?"


@dataclass
class Profile:
    service: str
    samples: int = 0
    by_package: Counter[str] = field(default_factory=Counter)  # leaf frame's package: self time
    by_leaf: Counter[str] = field(default_factory=Counter)  # leaf function: self time
    project_inclusive: Counter[str] = field(default_factory=Counter)  # project functions on the stack
    by_process: Counter[str] = field(default_factory=Counter)

    def share(self, counter: Counter[str], n: int = 6) -> list[tuple[str, float]]:
        return [(k, v / self.samples) for k, v in counter.most_common(n)] if self.samples else []


def read(service: str, path: Path) -> Profile:
    prof = Profile(service)
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        # --subprocesses prefixes each stack with its process chain: parent, forkserver, worker.
        nested = sum(1 for f in frames if f.startswith("process "))
        prof.by_process["extraction workers" if nested > 1 else "service process"] += n
        parsed = [m for f in frames if (m := _FRAME.match(f))]
        if not parsed:
            continue
        prof.samples += n
        leaf = parsed[-1]
        prof.by_package[_package(leaf["file"])] += n
        prof.by_leaf[f"{leaf['fn']} ({_package(leaf['file'])})"] += n
        on_stack = {f"{m['fn']} ({_package(m['file'])})" for m in parsed if "newsflow_" in m["file"]}
        for k in on_stack:
            prof.project_inclusive[k] += n
    return prof
