#!/bin/sh
# Starts one member of Newsflow's Redis with Sentinel in a container (docker-compose.ha.yml):
#
#   newsflow-redis.sh server [ARG...]     a Redis server: the primary or a replica of it, as the Sentinels say
#   newsflow-redis.sh sentinel [ARG...]   a Sentinel watching the primary
# ARGs go to redis-server as they are (for example --requirepass, or --bind for a run outside a container).
#
# Why a script: a container's command is fixed, but a server's role is not. After a failover the
# Sentinels name another primary; a server that restarted with the role written in its command would
# come back as a second primary, or as a replica of a replica. So each start asks the Sentinels first,
# and falls back to the initial layout only when no Sentinel answers at all (the very first start).
#
# Environment (docker-compose.ha.yml sets them):
#   NEWSFLOW_REDIS_SELF             the name others reach this container by (its service name)
#   NEWSFLOW_REDIS_SENTINELS        host:port of every Sentinel, comma-separated (the services' variable)
#   NEWSFLOW_REDIS_SENTINEL_MASTER  the master name (default newsflow)
#   NEWSFLOW_REDIS_INITIAL_PRIMARY  the server that is primary on the first start, host[:port] (default redis-1)
#   NEWSFLOW_REDIS_PORT / NEWSFLOW_SENTINEL_PORT     6379 / 26379
#   NEWSFLOW_REDIS_DATA             /data
#   NEWSFLOW_REDIS_MAXMEMORY        1gb
#   NEWSFLOW_SENTINEL_DOWN_AFTER_MS / NEWSFLOW_SENTINEL_FAILOVER_TIMEOUT_MS   5000 / 30000
#   NEWSFLOW_REDIS_SENTINEL_WAIT_S  how long a server waits for a Sentinel to answer (default 60)
#   NEWSFLOW_REDIS_DRY_RUN=1        print the redis-server command instead of running it (tests)
set -eu

ROLE="${1:-}"
[ $# -eq 0 ] || shift
SELF="${NEWSFLOW_REDIS_SELF:?NEWSFLOW_REDIS_SELF: the name other containers reach this one by}"
SENTINELS="${NEWSFLOW_REDIS_SENTINELS:?NEWSFLOW_REDIS_SENTINELS: host:port of every Sentinel, comma-separated}"
MASTER="${NEWSFLOW_REDIS_SENTINEL_MASTER:-newsflow}"
REDIS_PORT="${NEWSFLOW_REDIS_PORT:-6379}"
INITIAL_PRIMARY="${NEWSFLOW_REDIS_INITIAL_PRIMARY:-redis-1}"
case "$INITIAL_PRIMARY" in
  *:*) INITIAL_PRIMARY="${INITIAL_PRIMARY%:*} ${INITIAL_PRIMARY##*:}" ;;
  *) INITIAL_PRIMARY="$INITIAL_PRIMARY $REDIS_PORT" ;;
esac
SENTINEL_PORT="${NEWSFLOW_SENTINEL_PORT:-26379}"
DATA="${NEWSFLOW_REDIS_DATA:-/data}"
MAXMEMORY="${NEWSFLOW_REDIS_MAXMEMORY:-1gb}"
# Across machines a PING can go unanswered for reasons other than death (a busy network, a stalled
# host): 5 s before a server counts as down, and a failover that stalls is retried after 2 x 30 s.
DOWN_AFTER_MS="${NEWSFLOW_SENTINEL_DOWN_AFTER_MS:-5000}"
FAILOVER_TIMEOUT_MS="${NEWSFLOW_SENTINEL_FAILOVER_TIMEOUT_MS:-30000}"
WAIT_S="${NEWSFLOW_REDIS_SENTINEL_WAIT_S:-60}"

log() { echo "newsflow-redis: $*" >&2; }

# The primary as the first answering Sentinel names it: "host port". A Sentinel keeps answering from its
# saved state while the primary itself is down, which is what a restarting server needs to hear.
ask_sentinels() {
  for addr in $(echo "$SENTINELS" | tr ',' ' '); do
    reply=$(timeout 3 redis-cli -h "${addr%:*}" -p "${addr##*:}" --raw \
      sentinel get-master-addr-by-name "$MASTER" 2>/dev/null | tr '\n' ' ') || continue
    # shellcheck disable=SC2086  # two words: host and port
    set -- $reply
    if [ $# -eq 2 ] && [ -n "$2" ] && [ "$2" -eq "$2" ] 2>/dev/null; then
      echo "$1 $2"
      return 0
    fi
  done
  return 1
}

run() {
  if [ "${NEWSFLOW_REDIS_DRY_RUN:-0}" = 1 ]; then
    echo "$*"
    exit 0
  fi
  # The official image's entry point hands /data to the redis user and drops root before starting.
  if command -v docker-entrypoint.sh >/dev/null 2>&1; then
    exec docker-entrypoint.sh "$@"
  fi
  exec "$@"
}

server() {
  deadline=$(( $(date +%s) + WAIT_S ))
  while ! primary=$(ask_sentinels); do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      primary=""
      break
    fi
    sleep 1
  done
  if [ -z "$primary" ]; then
    log "no Sentinel answered within ${WAIT_S} s: starting in the initial layout (primary $INITIAL_PRIMARY)"
    primary="$INITIAL_PRIMARY"
  fi
  host=${primary% *} port=${primary#* }
  if [ "$host" = "$SELF" ] && [ "$port" = "$REDIS_PORT" ]; then
    log "starting as the primary"
    set -- "$@" --replicaof no one
  else
    log "starting as a replica of $host:$port"
    set -- "$@" --replicaof "$host" "$port"
  fi
  # Same durability as the single server (docker-compose.yml): AOF fsynced every second, noeviction.
  # replica-announce-ip: the Sentinels and clients learn replicas by name, which survives a container's
  # new address after a restart.
  run redis-server --port "$REDIS_PORT" --dir "$DATA" \
    --appendonly yes --appendfsync everysec \
    --maxmemory "$MAXMEMORY" --maxmemory-policy noeviction \
    --replica-announce-ip "$SELF" --replica-announce-port "$REDIS_PORT" "$@"
}

sentinel() {
  conf="$DATA/sentinel.conf"
  if [ ! -f "$conf" ]; then
    # A first start, or a Sentinel rescheduled with an empty volume: the others know the current primary.
    primary=$(ask_sentinels) || primary="$INITIAL_PRIMARY"
    mkdir -p "$DATA"
    # Written once: from then on the Sentinel keeps its own state (epochs, the current primary) in it.
    cat > "$conf" <<EOF
port $SENTINEL_PORT
dir $DATA
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $SELF
sentinel announce-port $SENTINEL_PORT
sentinel monitor $MASTER ${primary% *} ${primary#* } 2
sentinel down-after-milliseconds $MASTER $DOWN_AFTER_MS
sentinel failover-timeout $MASTER $FAILOVER_TIMEOUT_MS
sentinel parallel-syncs $MASTER 1
EOF
    log "monitoring $MASTER at ${primary% *}:${primary#* } (quorum 2)"
  fi
  # The Sentinel refuses to start on a host name it cannot resolve yet (the primary's container may
  # not be scheduled): wait for it instead of restarting in a loop.
  host=$(awk -v m="$MASTER" '$1 == "sentinel" && $2 == "monitor" && $3 == m {print $4}' "$conf")
  deadline=$(( $(date +%s) + WAIT_S ))
  until getent hosts "$host" >/dev/null 2>&1 || [ "$(date +%s)" -ge "$deadline" ]; do sleep 1; done
  run redis-server "$conf" --sentinel "$@"
}

case "$ROLE" in
  server) server "$@" ;;
  sentinel) sentinel "$@" ;;
  *) echo "usage: newsflow-redis.sh server|sentinel" >&2; exit 2 ;;
esac
