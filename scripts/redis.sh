#!/usr/bin/env bash
# Redis 7 from Debian's redis-server on loopback, for tests and the local run.
#
#   scripts/redis.sh start [--port N] [--dir DIR]   prints redis://127.0.0.1:PORT/0 on its last line
#   scripts/redis.sh stop [--dir DIR]
#   scripts/redis.sh status [--dir DIR]
#
# AOF on with fsync every second, so a restart keeps streams and groups; noeviction, so memory
# pressure is an error a producer sees instead of silently evicted messages.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${NEWSFLOW_REDIS_DIR:-$ROOT/.state/redis}"
PORT=""

die() { echo "redis.sh: $*" >&2; exit 1; }

cmd="${1:-}"; shift || true
while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT="$2"; shift 2 ;;
    --dir) DIR="$2"; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done

server_bin() {
  command -v redis-server 2>/dev/null || { [ -x /usr/bin/redis-server ] && echo /usr/bin/redis-server; } \
    || die "redis-server is not installed: apt-get install redis-server"
}

pid_alive() { [ -f "$DIR/redis.pid" ] && kill -0 "$(cat "$DIR/redis.pid")" 2>/dev/null; }

start() {
  mkdir -p "$DIR"
  if pid_alive; then echo "redis://127.0.0.1:$(cat "$DIR/redis.port")/0"; return 0; fi
  [ -n "$PORT" ] || PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo "$PORT" > "$DIR/redis.port"
  "$(server_bin)" --bind 127.0.0.1 --port "$PORT" --dir "$DIR" --daemonize yes \
    --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" \
    --appendonly yes --appendfsync everysec --maxmemory-policy noeviction \
    --save "" --protected-mode yes >/dev/null
  for _ in $(seq 1 100); do
    if redis-cli -p "$PORT" ping 2>/dev/null | grep -q PONG; then
      echo "redis: ready on 127.0.0.1:$PORT (dir $DIR)" >&2
      echo "redis://127.0.0.1:$PORT/0"; return 0
    fi
    sleep 0.1
  done
  tail -20 "$DIR/redis.log" >&2; die "redis did not answer PING within 10 s"
}

stop() {
  if ! pid_alive; then echo "redis: not running" >&2; return 0; fi
  local pid; pid=$(cat "$DIR/redis.pid")
  # SHUTDOWN lets Redis fsync the AOF; the signal is the fallback for a wedged server.
  redis-cli -p "$(cat "$DIR/redis.port")" shutdown >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$DIR/redis.pid"
  echo "redis: stopped" >&2
}

status() {
  if pid_alive; then echo "running redis://127.0.0.1:$(cat "$DIR/redis.port")/0 pid $(cat "$DIR/redis.pid")"; else echo "stopped"; return 3; fi
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start [--port N] [--dir DIR] | stop [--dir DIR] | status [--dir DIR]" >&2; exit 2 ;;
esac
