#!/usr/bin/env bash
# Re-vendor the page's JavaScript from npm (no build step: the published minified files, with their licences):
# htmx and its server-sent-events extension for the web app, axe-core for the accessibility tests.
# Bump a version here, run this, commit the files and VENDORED.json together.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HTMX=2.0.11
HTMX_SSE=2.2.4
AXE=4.14.1
STATIC="services/web/src/newsflow_web/static/vendor"
TESTS="tests/web/vendor"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "htmx.org@$HTMX" "htmx-ext-sse@$HTMX_SSE" "axe-core@$AXE" >/dev/null
for f in *.tgz; do mkdir "${f%.tgz}"; tar xzf "$f" -C "${f%.tgz}"; done
cd "$ROOT"
cp "$work/htmx.org-$HTMX/package/dist/htmx.min.js" "$STATIC/htmx.min.js"
cp "$work/htmx.org-$HTMX/package/LICENSE" "$STATIC/htmx.LICENSE"
cp "$work/htmx-ext-sse-$HTMX_SSE/package/dist/sse.min.js" "$STATIC/htmx-ext-sse.min.js"
cp "$work/htmx-ext-sse-$HTMX_SSE/package/LICENSE" "$STATIC/htmx-ext-sse.LICENSE"
cp "$work/axe-core-$AXE/package/axe.min.js" "$TESTS/axe.min.js"
cp "$work/axe-core-$AXE/package/LICENSE" "$TESTS/axe-core.LICENSE"
python3 - "$STATIC/VENDORED.json" <<PY
import hashlib, json, sys
entries = [
    ("htmx.org", "$HTMX", "$STATIC/htmx.min.js", "$STATIC/htmx.LICENSE", "0BSD"),
    ("htmx-ext-sse", "$HTMX_SSE", "$STATIC/htmx-ext-sse.min.js", "$STATIC/htmx-ext-sse.LICENSE", "0BSD"),
    ("axe-core", "$AXE", "$TESTS/axe.min.js", "$TESTS/axe-core.LICENSE", "MPL-2.0"),
]
files = [
    {"package": p, "version": v, "path": path, "licence": lic, "licence_id": spdx,
     "sha256": hashlib.sha256(open(path, "rb").read()).hexdigest()}
    for p, v, path, lic, spdx in entries
]
json.dump({"source": "npm registry (npm pack), files copied unmodified", "files": files}, open(sys.argv[1], "w"), indent=2)
open(sys.argv[1], "a").write("\n")
PY
echo "vendored: htmx $HTMX, htmx-ext-sse $HTMX_SSE, axe-core $AXE"
