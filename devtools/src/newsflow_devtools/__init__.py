"""Newsflow's development tools: the demo news site, the local process supervisor and `make run`.

Nothing here runs in production; the operator CLI offers `newsflow demo` through an entry point
(`newsflow.commands`) without importing this package.
"""

from __future__ import annotations

from pathlib import Path


def repo_root() -> Path:
    """The checkout these tools run from (they start scripts/redis.sh and scripts/elasticsearch.sh)."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "scripts" / "redis.sh").is_file():
            return parent
    return Path.cwd()
