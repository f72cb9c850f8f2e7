#!/usr/bin/env bash
# Everything a fresh Debian machine needs for `make run` and `make test`; quick when already done.
#   - Debian packages: redis-server, redis-sentinel, the hunspell dictionaries, Java 17, Maven and Chromium when missing
#   - uv (pinned), then the Python environment .venv from uv.lock (--frozen: the lock is the truth)
#   - the Elasticsearch launcher and its Maven artifacts (cached in ~/.m2)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
UV_VERSION="0.13.9"

need_pkgs=()
command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || need_pkgs+=(redis-server)
# Sentinel for `scripts/redis.sh start --ha` (automatic failover) and the tests of it in tests/ha.
command -v redis-sentinel >/dev/null || [ -x /usr/bin/redis-sentinel ] || need_pkgs+=(redis-sentinel)
command -v java >/dev/null || need_pkgs+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_pkgs+=(maven)
command -v curl >/dev/null || need_pkgs+=(curl)
# The web page's browser tests drive Debian's Chromium through Playwright (its own browser download is not used).
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
for pair in en_US:hunspell-en-us ar:hunspell-ar fr:hunspell-fr-classical de_DE:hunspell-de-de es_ES:hunspell-es ru_RU:hunspell-ru; do
  [ -f "/usr/share/hunspell/${pair%%:*}.aff" ] || need_pkgs+=("${pair#*:}")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${need_pkgs[*]} — run: sudo apt-get install -y ${need_pkgs[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${need_pkgs[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

if ! command -v uv >/dev/null || [ "$(uv --version | awk '{print $2}')" != "$UV_VERSION" ]; then
  echo "setup: installing uv $UV_VERSION" >&2
  python3 -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
fi
uv sync --frozen --all-packages -q
scripts/elasticsearch.sh build
