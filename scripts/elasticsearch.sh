#!/usr/bin/env bash
# A real Elasticsearch 8 node, or a cluster of them, without Docker, from Elastic's own artifacts on Maven Central.
#
#   scripts/elasticsearch.sh start [--port N] [--home DIR]   one node; prints its URL on its last line
#   scripts/elasticsearch.sh start --nodes 3 [--port N] [--home DIR]
#                                    a cluster of 3 nodes (HTTP ports N, N+1, N+2 when --port is given);
#                                    prints every node's URL, comma-separated, on its last line
#   scripts/elasticsearch.sh stop [--home DIR]                every node of the home
#   scripts/elasticsearch.sh status [--home DIR]              exit 0 all up, 3 all stopped, 4 degraded (cluster)
#   scripts/elasticsearch.sh build                            resolve artifacts and compile the launcher only
# Cluster homes only (I is the node's number, 1..N):
#   scripts/elasticsearch.sh stop-node I [--home DIR]         SIGTERM: the node leaves cleanly
#   scripts/elasticsearch.sh kill-node I [--home DIR]         SIGKILL: the node dies as a crashed server does
#   scripts/elasticsearch.sh start-node I [--home DIR]        (re)starts it; it rejoins; prints its URL
#   scripts/elasticsearch.sh master [--home DIR]              "I URL" of the elected master
#
# The node is the server core plus the Netty4 HTTP transport, started by scripts/es-node (see
# docs/decisions.md for what that node does and does not offer). It binds 127.0.0.1 only and runs
# without security for that reason. Artifacts are cached in ~/.m2, so a second start downloads nothing.
#
# A cluster home holds node-1/ ... node-N/, each a node's own home (config/, data/, logs/, its pid and
# ports), and cluster.nodes with N. Every node is master-eligible and holds data, so any one of three can
# die without losing the quorum of masters or, with one replica per shard, any data. Ports are chosen
# once and kept, so a restarted node is found where the others look for it (discovery.seed_hosts).
# Readiness is _cluster/health (GET / is not served by the core node): green when every node of the
# cluster runs, since replicas then have somewhere to go; yellow otherwise.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LAUNCHER="$ROOT/scripts/es-node"
HOME_DIR="${NEWSFLOW_ES_HOME:-$ROOT/.state/elasticsearch}"
PORT=""
NODES=""
HEAP="${NEWSFLOW_ES_HEAP:-512m}"
HUNSPELL_LOCALES="en_US ar fr de_DE es_ES ru_RU"
START_TIMEOUT_S=180

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

cmd="${1:-}"; shift || true
NODE_ARG=""
case "$cmd" in
  stop-node|kill-node|start-node)
    NODE_ARG="${1:-}"; shift || true
    [[ "$NODE_ARG" =~ ^[1-9][0-9]*$ ]] || die "$cmd needs a node number (1..N)" ;;
esac
while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT="$2"; shift 2 ;;
    --home) HOME_DIR="$2"; shift 2 ;;
    --nodes) NODES="$2"; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
[ -z "$NODES" ] || [[ "$NODES" =~ ^[1-9][0-9]?$ ]] || die "--nodes must be a number from 1 to 99"
[ -z "$PORT" ] || [[ "$PORT" =~ ^[0-9]+$ ]] || die "--port must be a number"

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
  local home="$1" locale src dest
  for locale in $HUNSPELL_LOCALES; do
    src="/usr/share/hunspell/$locale"
    dest="$home/config/hunspell/$locale"
    [ -f "$src.aff" ] || die "hunspell dictionary $locale missing: apt-get install hunspell-en-us hunspell-ar hunspell-fr-classical hunspell-de-de hunspell-es hunspell-ru"
    mkdir -p "$dest"
    if [ ! -f "$dest/$locale.dic" ]; then
      { grep -m1 '^SET' "$src.aff" || true; grep -v '^SET' "$src.aff"; } > "$dest/$locale.aff"
      cp "$src.dic" "$dest/$locale.dic"
    fi
  done
}

# --- one node, given its home ----------------------------------------------------------------------

node_pid_alive() { [ -f "$1/node.pid" ] && proc_alive "$(cat "$1/node.pid")"; }

node_url() { echo "http://127.0.0.1:$(cat "$1/node.port")"; }

# health HOME QUERY: the node answers _cluster/health with QUERY satisfied (curl -f fails on the 408 of a
# wait_for_* that timed out, and on the 503 of a node that knows no elected master yet).
health() {
  curl -fsS --max-time 3 "$(node_url "$1")/_cluster/health?$2&timeout=1s" 2>/dev/null | grep -q '"timed_out":false'
}

node_rss_mb() { awk '/^VmRSS/ {printf "%d", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }

# launch HOME NAME [-Ekey=value ...]: the JVM in the background, its pid in HOME/node.pid.
launch() {
  local home="$1"; shift
  mkdir -p "$home/logs"
  # -Xmx bounds the heap; the JVM's other flags follow Elastic's jvm.options for small nodes.
  nohup java -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -Djava.awt.headless=true -Dfile.encoding=UTF-8 \
    -Dlog4j2.disable.jmx=true -Des.networkaddress.cache.ttl=60 \
    -cp "$LAUNCHER/target/es-node-1.jar:$(cat "$LAUNCHER/target/classpath.txt")" \
    dev.newsflow.esnode.Main "$home" "$(cat "$home/node.port")" "$@" >> "$home/logs/console.log" 2>&1 &
  echo $! > "$home/node.pid"
}

# signal_node HOME SIGNAL: stop one node and wait for its process to end (SIGTERM flushes shards).
signal_node() {
  local home="$1" sig="$2" pid
  node_pid_alive "$home" || { rm -f "$home/node.pid"; return 0; }
  pid=$(cat "$home/node.pid")
  kill -"$sig" "$pid" 2>/dev/null || true
  await_exit elasticsearch "$pid" 30
  rm -f "$home/node.pid"
}

# --- a single node (the default, as before the cluster mode existed) -------------------------------

start_single() {
  if node_pid_alive "$HOME_DIR"; then
    health "$HOME_DIR" "wait_for_status=yellow" || die "a node is running (pid $(cat "$HOME_DIR/node.pid")) but not healthy"
    node_url "$HOME_DIR"; return 0
  fi
  build
  install_hunspell "$HOME_DIR"
  mkdir -p "$HOME_DIR/logs"
  [ -n "$PORT" ] || PORT="$(free_ports 1)"
  echo "$PORT" > "$HOME_DIR/node.port"
  local started; started=$(date +%s%N)
  launch "$HOME_DIR"
  for _ in $(seq 1 240); do
    if health "$HOME_DIR" "wait_for_status=yellow"; then
      printf "elasticsearch: healthy after %d ms (pid %s, home %s)\n" "$(elapsed_ms "$started")" "$(cat "$HOME_DIR/node.pid")" "$HOME_DIR" >&2
      node_url "$HOME_DIR"; return 0
    fi
    node_pid_alive "$HOME_DIR" || { tail -40 "$HOME_DIR/logs/console.log" >&2; die "the node exited during start-up (log above)"; }
    sleep 0.5
  done
  tail -40 "$HOME_DIR/logs/console.log" >&2
  stop_single; die "the node did not become healthy within 120 s"
}

stop_single() {
  if ! node_pid_alive "$HOME_DIR"; then rm -f "$HOME_DIR/node.pid"; echo "elasticsearch: not running" >&2; return 0; fi
  signal_node "$HOME_DIR" TERM
  echo "elasticsearch: stopped" >&2
}

status_single() {
  if node_pid_alive "$HOME_DIR" && health "$HOME_DIR" "wait_for_status=yellow"; then
    echo "running $(node_url "$HOME_DIR") pid $(cat "$HOME_DIR/node.pid")"
  else
    echo "stopped"; return 3
  fi
}

# --- a cluster -------------------------------------------------------------------------------------

is_cluster() { [ -f "$HOME_DIR/cluster.nodes" ]; }
cluster_size() { cat "$HOME_DIR/cluster.nodes"; }
node_home() { echo "$HOME_DIR/node-$1"; }
node_name() { echo "newsflow-$1"; }

need_cluster() {
  is_cluster || die "$HOME_DIR is not a cluster home (start one with: $0 start --nodes 3 --home $HOME_DIR)"
  [ "$1" -le "$(cluster_size)" ] || die "node $1 does not exist: the cluster has $(cluster_size) nodes"
}

running_count() {
  local n=0 i
  for i in $(seq 1 "$(cluster_size)"); do node_pid_alive "$(node_home "$i")" && n=$((n + 1)); done
  echo "$n"
}

# What readiness waits for: green once every node runs (each replica has a node to live on), yellow
# while one is down (its shards' replicas cannot be placed until it is back).
wanted_status() { if [ "$(running_count)" -eq "$(cluster_size)" ]; then echo green; else echo yellow; fi; }

all_urls() {
  local i urls=()
  for i in $(seq 1 "$(cluster_size)"); do urls+=("$(node_url "$(node_home "$i")")"); done
  (IFS=,; echo "${urls[*]}")
}

# start_cluster_node I: launches node I with the settings that make it part of the cluster.
start_cluster_node() {
  local i="$1" n seeds=() names=() j home
  n=$(cluster_size)
  home=$(node_home "$i")
  for j in $(seq 1 "$n"); do
    seeds+=("127.0.0.1:$(cat "$(node_home "$j")/node.transport")")
    names+=("$(node_name "$j")")
  done
  local args=(
    "-Ediscovery.type=multi-node"
    "-Enode.name=$(node_name "$i")"
    "-Etransport.port=$(cat "$home/node.transport")"
    "-Ediscovery.seed_hosts=$(IFS=,; echo "${seeds[*]}")"
  )
  # Only a cluster that has never formed is bootstrapped: once its state is on disk, the nodes know their
  # cluster, and a node given initial_master_nodes again could in the wrong circumstances found a second one.
  [ -f "$HOME_DIR/cluster.bootstrapped" ] || args+=("-Ecluster.initial_master_nodes=$(IFS=,; echo "${names[*]}")")
  launch "$home" "${args[@]}"
}

# wait_ready I...: every listed node answers for a cluster holding all running nodes, at the wanted status.
wait_ready() {
  local started="$1"; shift
  local deadline=$(( $(date +%s) + START_TIMEOUT_S )) i ok status
  while [ "$(date +%s)" -lt "$deadline" ]; do
    status=$(wanted_status)
    ok=1
    for i in "$@"; do
      if ! node_pid_alive "$(node_home "$i")"; then
        tail -40 "$(node_home "$i")/logs/console.log" >&2
        die "node $i exited during start-up (log above)"
      fi
      health "$(node_home "$i")" "wait_for_nodes=$(running_count)&wait_for_status=$status" || { ok=0; break; }
    done
    if [ "$ok" -eq 1 ]; then
      printf "elasticsearch: %s with %d of %d nodes after %d ms (home %s)\n" \
        "$status" "$(running_count)" "$(cluster_size)" "$(elapsed_ms "$started")" "$HOME_DIR" >&2
      return 0
    fi
    sleep 0.5
  done
  for i in "$@"; do echo "--- node $i" >&2; tail -20 "$(node_home "$i")/logs/console.log" >&2; done
  return 1
}

start_cluster() {
  local n="$1" i home ports started to_start=()
  if is_cluster; then
    [ "$(cluster_size)" -eq "$n" ] || die "$HOME_DIR holds a cluster of $(cluster_size) nodes, not $n"
  else
    [ ! -e "$HOME_DIR/node.port" ] || die "$HOME_DIR holds a single node; give the cluster another --home"
    mkdir -p "$HOME_DIR"
    # HTTP and transport ports for every node, chosen once: a restarted node must be where the seeds say.
    read -r -a ports <<< "$(free_ports $((2 * n)))"
    for i in $(seq 1 "$n"); do
      home=$(node_home "$i")
      mkdir -p "$home"
      if [ -n "$PORT" ]; then echo $((PORT + i - 1)) > "$home/node.port"; else echo "${ports[$((i - 1))]}" > "$home/node.port"; fi
      echo "${ports[$((n + i - 1))]}" > "$home/node.transport"
    done
    echo "$n" > "$HOME_DIR/cluster.nodes"
  fi
  build
  for i in $(seq 1 "$n"); do
    home=$(node_home "$i")
    install_hunspell "$home"
    node_pid_alive "$home" || to_start+=("$i")
  done
  started=$(date +%s%N)
  for i in "${to_start[@]}"; do start_cluster_node "$i"; done
  if ! wait_ready "$started" $(seq 1 "$n"); then
    stop_cluster
    die "the cluster did not become $(wanted_status) within $START_TIMEOUT_S s"
  fi
  touch "$HOME_DIR/cluster.bootstrapped"
  all_urls
}

stop_cluster() {
  local i pids=()
  # All at once: stopping masters one by one would make the last ones wait for a quorum that is leaving.
  for i in $(seq 1 "$(cluster_size)"); do
    signal_node "$(node_home "$i")" TERM &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i"; done
  echo "elasticsearch: stopped $(cluster_size) nodes" >&2
}

start_node() {
  local i="$1" home started
  need_cluster "$i"
  [ -f "$HOME_DIR/cluster.bootstrapped" ] || die "the cluster never formed: start it whole first ($0 start --home $HOME_DIR)"
  home=$(node_home "$i")
  if ! node_pid_alive "$home"; then
    build
    started=$(date +%s%N)
    start_cluster_node "$i"
    wait_ready "$started" "$i" || { signal_node "$home" TERM; die "node $i did not rejoin within $START_TIMEOUT_S s"; }
  fi
  node_url "$home"
}

stop_node() {
  local i="$1" sig="$2"
  need_cluster "$i"
  signal_node "$(node_home "$i")" "$sig"
  echo "elasticsearch: node $i $([ "$sig" = KILL ] && echo killed || echo stopped)" >&2
}

# The elected master as seen by any running node: its number and URL.
master() {
  local i name
  for i in $(seq 1 "$(cluster_size)"); do
    node_pid_alive "$(node_home "$i")" || continue
    name=$(curl -fsS --max-time 3 "$(node_url "$(node_home "$i")")/_cat/master?h=node" 2>/dev/null | tr -d '[:space:]') || continue
    if [[ "$name" =~ ^newsflow-([0-9]+)$ ]]; then
      echo "${BASH_REMATCH[1]} $(node_url "$(node_home "${BASH_REMATCH[1]}")")"; return 0
    fi
  done
  die "no running node knows an elected master"
}

status_cluster() {
  local i home n up=0 pid health_json="" st
  n=$(cluster_size)
  for i in $(seq 1 "$n"); do
    home=$(node_home "$i")
    if node_pid_alive "$home"; then
      pid=$(cat "$home/node.pid"); up=$((up + 1))
      echo "node $i running $(node_url "$home") pid $pid rss $(node_rss_mb "$pid") MB"
      [ -n "$health_json" ] || health_json=$(curl -fsS --max-time 3 "$(node_url "$home")/_cluster/health" 2>/dev/null || true)
    else
      echo "node $i stopped $(node_url "$home")"
    fi
  done
  [ "$up" -gt 0 ] || { echo "cluster stopped"; return 3; }
  st=$(sed -n 's/.*"status":"\([a-z]*\)".*/\1/p' <<< "$health_json")
  echo "cluster ${st:-unreachable} with $up of $n nodes running"
  if [ "$up" -ne "$n" ] || ! [[ "$st" =~ ^(green|yellow)$ ]]; then return 4; fi
}

case "$cmd" in
  start)
    if [ "${NODES:-1}" -gt 1 ] || { [ -z "$NODES" ] && is_cluster; }; then
      start_cluster "${NODES:-$(cluster_size)}"
    else
      is_cluster && die "$HOME_DIR holds a cluster of $(cluster_size) nodes; start it with --nodes $(cluster_size)"
      start_single
    fi ;;
  stop) if is_cluster; then stop_cluster; else stop_single; fi ;;
  status) if is_cluster; then status_cluster; else status_single; fi ;;
  stop-node) stop_node "$NODE_ARG" TERM ;;
  kill-node) stop_node "$NODE_ARG" KILL ;;
  start-node) start_node "$NODE_ARG" ;;
  master) is_cluster || die "$HOME_DIR is not a cluster home"; master ;;
  build) build ;;
  *) echo "usage: $0 start [--nodes N] [--port N] [--home DIR] | stop | status | stop-node I | kill-node I | start-node I | master [--home DIR] | build" >&2; exit 2 ;;
esac
