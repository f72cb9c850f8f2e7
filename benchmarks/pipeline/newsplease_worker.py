"""news-please's extraction over the scrapinghub pages, timed page by page.

Runs in its own throwaway environment (`uv run --isolated --no-project --with news-please==...`), because
news-please's dependencies (botocore's python-dateutil < 3 among them) must not bend the workspace's lock;
so it imports nothing from the project. Writes one JSON line per page: id, CPU seconds, text.

    python newsplease_worker.py SCRAPINGHUB_DIR OUT.jsonl [LIMIT]
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from pathlib import Path


def main() -> int:
    folder, out = Path(sys.argv[1]), Path(sys.argv[2])
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    from newsplease import NewsPlease

    rows = [json.loads(line) for line in (folder / "truth.jsonl").read_text(encoding="utf-8").splitlines() if line]
    if limit:
        rows = rows[:limit]
    with out.open("w", encoding="utf-8") as f:
        for i, row in enumerate(rows):
            html = (folder / f"{row['id']}.html").read_text(encoding="utf-8", errors="replace")
            t0 = time.process_time()
            try:
                art = NewsPlease.from_html(html, url=row.get("url") or None, fetch_images=False)
                text = (art.maintext or "") if art is not None else ""
            except Exception as e:
                text = ""
                print(f"news-please failed on {row['id']}: {type(e).__name__}: {e}", file=sys.stderr)
            took = time.process_time() - t0
            if i == 0:
                took = None  # first call pays imports and model loading: left out of the speed
            f.write(json.dumps({"id": row["id"], "seconds": took, "text": text}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
