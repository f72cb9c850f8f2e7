#!/usr/bin/env bash
# Redis 7 from Debian's redis-server on loopback, for tests and the local run: one server, or a primary
# with a replica and three Sentinels for automatic failover (--ha).
#
#   scripts/redis.sh start [--port N] [--dir DIR]        prints redis://127.0.0.1:PORT/0 on its last line
#   scripts/redis.sh start --ha [--port N] [--dir DIR]   primary + replica + 3 Sentinels; prints
#                                    sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/newsflow on its last line
#                                    (Sentinel addresses, then the master name; database 0). With --port N the
#                                    servers listen on N and N+1, the Sentinels on N+20000..N+20002.
#   scripts/redis.sh stop [--dir DIR]                    everything the directory runs
#   scripts/redis.sh status [--dir DIR]                  exit 0 all up, 3 all stopped, 4 degraded (--ha)
# --ha directories only (I is 1 or 2, the server's number; both hold a full copy of the data):
#   scripts/redis.sh master [--dir DIR]                  "I redis://127.0.0.1:PORT/0" of the primary, per Sentinel
#   scripts/redis.sh kill-primary [--dir DIR]            SIGKILL to the current primary; prints what `master` printed
#   scripts/redis.sh kill-server I | stop-server I [--dir DIR]    SIGKILL, or SHUTDOWN (AOF flushed)
#   scripts/redis.sh start-server I [--dir DIR]          (re)starts it as a replica of the current primary
#                                                        (as the primary only if Sentinel still names it)
#
# AOF on with fsync every second, so a restart keeps streams and groups; noeviction, so memory
# pressure is an error a producer sees instead of silently evicted messages. The same on both servers:
# a promoted replica must keep the guarantees of the primary it replaces.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${NEWSFLOW_REDIS_DIR:-$ROOT/.state/redis}"
PORT=""
HA=0
MASTER_NAME="newsflow"
# Sentinel settings, chosen for loopback where a silent server is a dead one, not a slow network
# (docs/SCALING.md has the reasoning and the failover times they give):
# - a server that answers no PING for 2 s is subjectively down; two Sentinels agreeing (quorum 2 of 3)
#   make it objectively down and one of them, elected by a majority, fails over;
# - a failover that makes no progress for 10 s is abandoned, and another may start 20 s (twice that) after.
DOWN_AFTER_MS="${NEWSFLOW_SENTINEL_DOWN_AFTER_MS:-2000}"
FAILOVER_TIMEOUT_MS="${NEWSFLOW_SENTINEL_FAILOVER_TIMEOUT_MS:-10000}"
QUORUM=2
SERVERS=2
SENTINELS=3
READY_TIMEOUT_S=30

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

cmd="${1:-}"; shift || true
SERVER_ARG=""
case "$cmd" in
  kill-server|stop-server|start-server)
    SERVER_ARG="${1:-}"; shift || true
    if ! [[ "$SERVER_ARG" =~ ^[1-9]$ ]] || [ "$SERVER_ARG" -gt "$SERVERS" ]; then die "$cmd needs a server number (1..$SERVERS)"; fi ;;
esac
while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT="$2"; shift 2 ;;
    --dir) DIR="$2"; shift 2 ;;
    --ha) HA=1; shift ;;
    *) die "unknown option $1" ;;
  esac
done
[ -z "$PORT" ] || [[ "$PORT" =~ ^[0-9]+$ ]] || die "--port must be a number"

server_bin() {
  command -v redis-server 2>/dev/null || { [ -x /usr/bin/redis-server ] && echo /usr/bin/redis-server; } \
    || die "redis-server is not installed: apt-get install redis-server"
}

sentinel_bin() {
  command -v redis-sentinel 2>/dev/null || { [ -x /usr/bin/redis-sentinel ] && echo /usr/bin/redis-sentinel; } \
    || die "redis-sentinel is not installed: run make setup (or apt-get install redis-sentinel)"
}

pid_alive() { [ -f "$1/redis.pid" ] && proc_alive "$(cat "$1/redis.pid")"; }

cli() { local port="$1"; shift; redis-cli -h 127.0.0.1 -p "$port" "$@" 2>/dev/null; }

# --- one server (the default, as before --ha existed) --------------------------------------------

start_single() {
  mkdir -p "$DIR"
  if pid_alive "$DIR"; then echo "redis://127.0.0.1:$(cat "$DIR/redis.port")/0"; return 0; fi
  [ -n "$PORT" ] || PORT=$(free_ports 1)
  echo "$PORT" > "$DIR/redis.port"
  "$(server_bin)" --bind 127.0.0.1 --port "$PORT" --dir "$DIR" --daemonize yes \
    --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" \
    --appendonly yes --appendfsync everysec --maxmemory-policy noeviction \
    --save "" --protected-mode yes >/dev/null
  for _ in $(seq 1 100); do
    if cli "$PORT" ping | grep -q PONG; then
      echo "redis: ready on 127.0.0.1:$PORT (dir $DIR)" >&2
      echo "redis://127.0.0.1:$PORT/0"; return 0
    fi
    sleep 0.1
  done
  tail -20 "$DIR/redis.log" >&2; die "redis did not answer PING within 10 s"
}

# stop_at DIR: SHUTDOWN lets Redis fsync the AOF; the signal is the fallback for a wedged server.
stop_at() {
  local dir="$1" pid
  if ! pid_alive "$dir"; then rm -f "$dir/redis.pid"; return 1; fi
  pid=$(cat "$dir/redis.pid")
  cli "$(cat "$dir/redis.port")" shutdown >/dev/null || kill -TERM "$pid" 2>/dev/null || true
  await_exit redis "$pid" 15
  rm -f "$dir/redis.pid"
}

stop_single() {
  if stop_at "$DIR"; then echo "redis: stopped" >&2; else echo "redis: not running" >&2; fi
}

status_single() {
  if pid_alive "$DIR"; then echo "running redis://127.0.0.1:$(cat "$DIR/redis.port")/0 pid $(cat "$DIR/redis.pid")"; else echo "stopped"; return 3; fi
}

# --- primary, replica and Sentinels --------------------------------------------------------------

is_ha() { [ -f "$DIR/ha.master" ]; }
server_dir() { echo "$DIR/server-$1"; }
sentinel_dir() { echo "$DIR/sentinel-$1"; }
port_of() { cat "$1/redis.port"; }
server_url() { echo "redis://127.0.0.1:$(port_of "$(server_dir "$1")")/0"; }

need_ha() { is_ha || die "$DIR is not an --ha directory (start one with: $0 start --ha --dir $DIR)"; }

sentinel_addrs() {
  local i addrs=()
  for i in $(seq 1 "$SENTINELS"); do addrs+=("127.0.0.1:$(port_of "$(sentinel_dir "$i")")"); done
  (IFS=,; echo "${addrs[*]}")
}

server_by_port() {
  local i
  for i in $(seq 1 "$SERVERS"); do [ "$(port_of "$(server_dir "$i")")" = "$1" ] && { echo "$i"; return 0; }; done
  return 1
}

# The primary's port: what a running Sentinel says; else what the Sentinels last wrote to their config
# (they rewrite the monitor line on each failover; the highest config epoch is the newest); else server 1.
master_port() {
  local i addr best_epoch=-1 best_port="" conf epoch port
  for i in $(seq 1 "$SENTINELS"); do
    pid_alive "$(sentinel_dir "$i")" || continue
    addr=$(cli "$(port_of "$(sentinel_dir "$i")")" sentinel get-master-addr-by-name "$MASTER_NAME" | tr '\n' ' ') || continue
    read -r _ port <<< "$addr"
    [[ "${port:-}" =~ ^[0-9]+$ ]] && { echo "$port"; return 0; }
  done
  for i in $(seq 1 "$SENTINELS"); do
    conf="$(sentinel_dir "$i")/sentinel.conf"
    [ -f "$conf" ] || continue
    epoch=$(awk -v m="$MASTER_NAME" '$1 == "sentinel" && $2 == "config-epoch" && $3 == m {print $4}' "$conf")
    port=$(awk -v m="$MASTER_NAME" '$1 == "sentinel" && $2 == "monitor" && $3 == m {print $5}' "$conf")
    if [ -n "$port" ] && [ "${epoch:-0}" -gt "$best_epoch" ]; then best_epoch="${epoch:-0}"; best_port="$port"; fi
  done
  if [ -n "$best_port" ]; then echo "$best_port"; else port_of "$(server_dir 1)"; fi
}

# start_server I: as the primary when it is the one Sentinel names, else as a replica of that one, so a
# restarted old primary never serves writes: its unreplicated tail is dropped by the full resync.
start_server() {
  local i="$1" dir mport role
  dir=$(server_dir "$i")
  pid_alive "$dir" && return 0
  mport=$(master_port)
  if [ "$mport" = "$(port_of "$dir")" ]; then role=(--replicaof no one); else role=(--replicaof 127.0.0.1 "$mport"); fi
  # The config file is Sentinel's to rewrite (CONFIG REWRITE after a failover); the role given here wins
  # over whatever a server killed mid-way left in it.
  "$(server_bin)" "$dir/redis.conf" "${role[@]}" >/dev/null
}

write_server_conf() {
  local dir="$1" port="$2"
  cat > "$dir/redis.conf" <<EOF
bind 127.0.0.1
port $port
protected-mode yes
dir $dir
daemonize yes
pidfile $dir/redis.pid
logfile $dir/redis.log
appendonly yes
appendfsync everysec
maxmemory-policy noeviction
save ""
EOF
}

write_sentinel_conf() {
  local dir="$1" port="$2" mport="$3"
  cat > "$dir/sentinel.conf" <<EOF
bind 127.0.0.1
port $port
daemonize yes
pidfile $dir/redis.pid
logfile $dir/sentinel.log
dir $dir
sentinel monitor $MASTER_NAME 127.0.0.1 $mport $QUORUM
sentinel down-after-milliseconds $MASTER_NAME $DOWN_AFTER_MS
sentinel failover-timeout $MASTER_NAME $FAILOVER_TIMEOUT_MS
sentinel parallel-syncs $MASTER_NAME 1
EOF
}

# server_ready I: answers, and a replica has its link to the primary up.
server_ready() {
  local port info
  port=$(port_of "$(server_dir "$1")")
  info=$(cli "$port" info replication) || return 1
  grep -q '^role:master' <<< "$info" && return 0
  grep -q '^master_link_status:up' <<< "$info"
}

running_count() {
  local kind="$1" n="$2" i c=0
  for i in $(seq 1 "$n"); do pid_alive "$DIR/$kind-$i" && c=$((c + 1)); done
  echo "$c"
}

# sentinel_ready I: it can fail over (quorum and majority reachable) and sees every running replica healthy.
sentinel_ready() {
  local port flags
  port=$(port_of "$(sentinel_dir "$1")")
  cli "$port" sentinel ckquorum "$MASTER_NAME" | grep -q "^OK $(running_count sentinel "$SENTINELS") usable" || return 1
  # One line per replica: its flags must be exactly "slave" (not s_down, disconnected).
  flags=$(cli "$port" sentinel replicas "$MASTER_NAME" | awk 'prev == "flags" {print} {prev = $0}') || return 1
  [ "$(grep -c '^slave$' <<< "$flags")" -eq $(($(running_count server "$SERVERS") - 1)) ]
}

# wait_ha_ready STARTED: every running member ready, within READY_TIMEOUT_S.
wait_ha_ready() {
  local started="$1" deadline i ok
  deadline=$(( $(date +%s) + READY_TIMEOUT_S ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    ok=1
    for i in $(seq 1 "$SERVERS"); do
      pid_alive "$(server_dir "$i")" || continue
      server_ready "$i" || { ok=0; break; }
    done
    if [ "$ok" -eq 1 ]; then
      for i in $(seq 1 "$SENTINELS"); do
        pid_alive "$(sentinel_dir "$i")" || continue
        sentinel_ready "$i" || { ok=0; break; }
      done
    fi
    if [ "$ok" -eq 1 ]; then
      echo "redis: primary $(master_label), replica linked, $SENTINELS Sentinels agree, after $(elapsed_ms "$started") ms (dir $DIR)" >&2
      return 0
    fi
    sleep 0.2
  done
  return 1
}

master_label() {
  local mport i
  mport=$(master_port)
  i=$(server_by_port "$mport") || { echo "unknown 127.0.0.1:$mport"; return 0; }
  echo "$i redis://127.0.0.1:$mport/0"
}

start_ha() {
  local i dir ports started base
  [ ! -e "$DIR/redis.port" ] || die "$DIR holds a single Redis; give the --ha set another --dir"
  sentinel_bin >/dev/null
  if ! is_ha; then
    mkdir -p "$DIR"
    if [ -n "$PORT" ]; then
      base=$PORT
      [ $((base + 20000 + SENTINELS - 1)) -le 65535 ] || die "--port $PORT leaves no room for the Sentinels (port + 20000)"
      ports=("$base" $((base + 1)) $((base + 20000)) $((base + 20001)) $((base + 20002)))
    else
      read -r -a ports <<< "$(free_ports $((SERVERS + SENTINELS)))"
    fi
    for i in $(seq 1 "$SERVERS"); do
      dir=$(server_dir "$i"); mkdir -p "$dir"
      echo "${ports[$((i - 1))]}" > "$dir/redis.port"
      write_server_conf "$dir" "${ports[$((i - 1))]}"
    done
    for i in $(seq 1 "$SENTINELS"); do
      dir=$(sentinel_dir "$i"); mkdir -p "$dir"
      echo "${ports[$((SERVERS + i - 1))]}" > "$dir/redis.port"
      # Written once: from then on the Sentinel keeps its own state (epochs, the current primary) in it.
      write_sentinel_conf "$dir" "${ports[$((SERVERS + i - 1))]}" "${ports[0]}"
    done
    echo "$MASTER_NAME" > "$DIR/ha.master"
  fi
  started=$(date +%s%N)
  # The primary first, so the replica's first sync and the Sentinels' first look find it.
  local mport mi
  mport=$(master_port)
  mi=$(server_by_port "$mport") || die "the primary Sentinel names (port $mport) is not one of $DIR's servers"
  start_server "$mi"
  for i in $(seq 1 "$SERVERS"); do start_server "$i"; done
  for i in $(seq 1 "$SENTINELS"); do
    dir=$(sentinel_dir "$i")
    pid_alive "$dir" || "$(sentinel_bin)" "$dir/sentinel.conf" >/dev/null
  done
  if ! wait_ha_ready "$started"; then
    for i in $(seq 1 "$SERVERS"); do tail -5 "$(server_dir "$i")/redis.log" >&2; done
    for i in $(seq 1 "$SENTINELS"); do tail -5 "$(sentinel_dir "$i")/sentinel.log" >&2; done
    stop_ha
    die "the primary, replica and Sentinels were not ready within $READY_TIMEOUT_S s"
  fi
  echo "sentinel://$(sentinel_addrs)/$MASTER_NAME"
}

stop_ha() {
  local i
  # Sentinels first: with them gone, stopping the primary cannot set off a failover.
  for i in $(seq 1 "$SENTINELS"); do stop_at "$(sentinel_dir "$i")" || true; done
  for i in $(seq "$SERVERS" -1 1); do stop_at "$(server_dir "$i")" || true; done
  echo "redis: stopped the primary, replica and Sentinels" >&2
}

kill_server() {
  local dir pid
  dir=$(server_dir "$1")
  pid_alive "$dir" || { echo "redis: server $1 is not running" >&2; return 0; }
  pid=$(cat "$dir/redis.pid")
  kill -KILL "$pid"
  while proc_alive "$pid"; do sleep 0.05; done
  rm -f "$dir/redis.pid"
  echo "redis: server $1 killed" >&2
}

master() {
  local label
  label=$(master_label)
  [[ "$label" != unknown* ]] || die "the primary Sentinel names ($label) is not one of $DIR's servers"
  echo "$label"
}

kill_primary() {
  local label
  label=$(master)
  kill_server "${label%% *}"
  echo "$label"
}

start_one_server() {
  local i="$1" started
  started=$(date +%s%N)
  start_server "$i"
  wait_ha_ready "$started" || { tail -20 "$(server_dir "$i")/redis.log" >&2; die "server $i was not ready within $READY_TIMEOUT_S s"; }
  server_url "$i"
}

status_ha() {
  local i dir up=0 total=$((SERVERS + SENTINELS)) role info
  for i in $(seq 1 "$SERVERS"); do
    dir=$(server_dir "$i")
    if pid_alive "$dir"; then
      up=$((up + 1))
      info=$(cli "$(port_of "$dir")" info replication || true)
      role=$(sed -n 's/^role:\([a-z]*\).*/\1/p' <<< "$info")
      [ "$role" != slave ] || role="replica (link $(sed -n 's/^master_link_status:\([a-z]*\).*/\1/p' <<< "$info"))"
      echo "server $i running $(server_url "$i") pid $(cat "$dir/redis.pid") ${role:-unreachable}"
    else
      echo "server $i stopped $(server_url "$i")"
    fi
  done
  for i in $(seq 1 "$SENTINELS"); do
    dir=$(sentinel_dir "$i")
    if pid_alive "$dir"; then up=$((up + 1)); echo "sentinel $i running 127.0.0.1:$(port_of "$dir") pid $(cat "$dir/redis.pid")"
    else echo "sentinel $i stopped 127.0.0.1:$(port_of "$dir")"; fi
  done
  [ "$up" -gt 0 ] || { echo "stopped"; return 3; }
  echo "primary $(master_label); sentinel://$(sentinel_addrs)/$MASTER_NAME"
  [ "$up" -eq "$total" ] || return 4
}

case "$cmd" in
  start)
    if [ "$HA" -eq 1 ] || is_ha; then start_ha; else start_single; fi ;;
  stop) if is_ha; then stop_ha; else stop_single; fi ;;
  status) if is_ha; then status_ha; else status_single; fi ;;
  master) need_ha; master ;;
  kill-primary) need_ha; kill_primary ;;
  kill-server) need_ha; kill_server "$SERVER_ARG" ;;
  stop-server) need_ha; if stop_at "$(server_dir "$SERVER_ARG")"; then echo "redis: server $SERVER_ARG stopped" >&2; fi ;;
  start-server) need_ha; start_one_server "$SERVER_ARG" ;;
  *) echo "usage: $0 start [--ha] [--port N] [--dir DIR] | stop | status | master | kill-primary | kill-server I | stop-server I | start-server I [--dir DIR]" >&2; exit 2 ;;
esac
