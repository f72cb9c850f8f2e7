"""Which extraction made an article, recorded on every document (`parser_version`), so that
`newsflow reparse --outdated` can find what an older parser extracted.

Bump EXTRACTION_REVISION with any change that alters what `extract()` returns; a new trafilatura
changes the version by itself.
"""

from __future__ import annotations

from importlib.metadata import version

EXTRACTION_REVISION = 2  # 2: the fallback ladder, evidence-based titles, caption filters (issue 16)

PARSER_VERSION = f"{version('newsflow-extract')}+r{EXTRACTION_REVISION}.trafilatura.{version('trafilatura')}"
