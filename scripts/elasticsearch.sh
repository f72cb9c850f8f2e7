#!/usr/bin/env bash
# A real Elasticsearch 8 node without Docker, from Elastic's own artifacts on Maven Central.
#
#   scripts/elasticsearch.sh start [--port N] [--home DIR]   prints the node's URL on its last line
#   scripts/elasticsearch.sh stop [--home DIR]
#   scripts/elasticsearch.sh status [--home DIR]
#   scripts/elasticsearch.sh build                            resolve artifacts and compile the launcher only
#
# The node is the server core plus the Netty4 HTTP transport, started by scripts/es-node (see
# docs/decisions.md for what that node does and does not offer). It binds 127.0.0.1 only and runs
# without security for that reason. Artifacts are cached in ~/.m2, so a second start downloads nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LAUNCHER="$ROOT/scripts/es-node"
HOME_DIR="${NEWSFLOW_ES_HOME:-$ROOT/.state/elasticsearch}"
PORT=""
HEAP="${NEWSFLOW_ES_HEAP:-512m}"
HUNSPELL_LOCALES="en_US ar fr de_DE es_ES ru_RU"

die() { echo "elasticsearch.sh: $*" >&2; exit 1; }

cmd="${1:-}"; shift || true
while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT="$2"; shift 2 ;;
    --home) HOME_DIR="$2"; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done

need_java() {
  command -v java >/dev/null || die "Java 17 is required: install it (Debian: apt-get install openjdk-17-jre-headless)."
  command -v mvn >/dev/null || die "Maven is required to fetch Elasticsearch: install it (Debian: apt-get install maven)."
}

build() {
  need_java
  local jar="$LAUNCHER/target/es-node-1.jar" cp="$LAUNCHER/target/classpath.txt"
  # Rebuild only when the launcher's sources or pom changed: a warm start costs no Maven run.
  if [ -f "$jar" ] && [ -f "$cp" ] && [ -z "$(find "$LAUNCHER/pom.xml" "$LAUNCHER/src" -newer "$jar" -type f 2>/dev/null)" ]; then
    return 0
  fi
  (cd "$LAUNCHER" && mvn -B -q package dependency:build-classpath -Dmdep.outputFile=target/classpath.txt) >&2 \
    || die "could not resolve Elasticsearch from Maven Central (see the Maven output above)"
}

install_hunspell() {
  # The node reads dictionaries from config/hunspell/<locale>/. Debian's Arabic .aff declares its
  # charset (SET) after 24,000 lines, beyond the 30 KB Lucene scans for it, so SET is moved first.
  local dest="$HOME_DIR/config/hunspell" locale src
  for locale in $HUNSPELL_LOCALES; do
    src="/usr/share/hunspell/$locale"
    [ -f "$src.aff" ] || die "hunspell dictionary $locale missing: apt-get install hunspell-en-us hunspell-ar hunspell-fr-classical hunspell-de-de hunspell-es hunspell-ru"
    mkdir -p "$dest/$locale"
    if [ ! -f "$dest/$locale/$locale.dic" ]; then
      { grep -m1 '^SET' "$src.aff" || true; grep -v '^SET' "$src.aff"; } > "$dest/$locale/$locale.aff"
      cp "$src.dic" "$dest/$locale/$locale.dic"
    fi
  done
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pid_alive() { [ -f "$HOME_DIR/node.pid" ] && kill -0 "$(cat "$HOME_DIR/node.pid")" 2>/dev/null; }

url() { echo "http://127.0.0.1:$(cat "$HOME_DIR/node.port")"; }

healthy() {
  curl -fsS --max-time 2 "$(url)/_cluster/health?wait_for_status=yellow&timeout=1s" 2>/dev/null | grep -q '"status":"\(yellow\|green\)"'
}

start() {
  if pid_alive; then
    healthy || die "a node is running (pid $(cat "$HOME_DIR/node.pid")) but not healthy"
    url; return 0
  fi
  build
  install_hunspell
  mkdir -p "$HOME_DIR/logs"
  [ -n "$PORT" ] || PORT="$(free_port)"
  echo "$PORT" > "$HOME_DIR/node.port"
  local started; started=$(date +%s%N)
  # -Xmx bounds the heap; the JVM's other flags follow Elastic's jvm.options for small nodes.
  nohup java -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -Djava.awt.headless=true -Dfile.encoding=UTF-8 \
    -Dlog4j2.disable.jmx=true -Des.networkaddress.cache.ttl=60 \
    -cp "$LAUNCHER/target/es-node-1.jar:$(cat "$LAUNCHER/target/classpath.txt")" \
    dev.newsflow.esnode.Main "$HOME_DIR" "$PORT" > "$HOME_DIR/logs/console.log" 2>&1 &
  echo $! > "$HOME_DIR/node.pid"
  for _ in $(seq 1 240); do
    if healthy; then
      printf "elasticsearch: healthy after %d ms (pid %s, home %s)\n" "$(( ($(date +%s%N) - started) / 1000000 ))" "$(cat "$HOME_DIR/node.pid")" "$HOME_DIR" >&2
      url; return 0
    fi
    pid_alive || { tail -40 "$HOME_DIR/logs/console.log" >&2; die "the node exited during start-up (log above)"; }
    sleep 0.5
  done
  tail -40 "$HOME_DIR/logs/console.log" >&2
  stop; die "the node did not become healthy within 120 s"
}

stop() {
  if ! pid_alive; then rm -f "$HOME_DIR/node.pid"; echo "elasticsearch: not running" >&2; return 0; fi
  local pid; pid=$(cat "$HOME_DIR/node.pid")
  kill -TERM "$pid"
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -0 "$pid" 2>/dev/null && { echo "elasticsearch: still running after 30 s, killing" >&2; kill -KILL "$pid"; }
  rm -f "$HOME_DIR/node.pid"
  echo "elasticsearch: stopped" >&2
}

status() {
  if pid_alive && healthy; then echo "running $(url) pid $(cat "$HOME_DIR/node.pid")"; else echo "stopped"; return 3; fi
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  build) build ;;
  *) echo "usage: $0 start [--port N] [--home DIR] | stop [--home DIR] | status [--home DIR] | build" >&2; exit 2 ;;
esac
