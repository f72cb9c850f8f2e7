# Sourced by scripts/redis.sh and scripts/elasticsearch.sh: what both need to run local servers.

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

# N distinct free loopback ports: every socket stays bound until all are chosen, so none repeats.
free_ports() {
  python3 -c 'import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

elapsed_ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# A process counts as running until it exits, not until it is reaped: a killed server is a zombie until
# init collects it, which can take seconds, and the fault tests time what follows the kill.
proc_alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

# await_exit NAME PID SECONDS: after a request to stop, SECONDS for PID to exit; then SIGKILL, for a
# wedged server, and its end.
await_exit() {
  local name="$1" pid="$2" seconds="$3"
  for _ in $(seq 1 $((seconds * 10))); do proc_alive "$pid" || break; sleep 0.1; done
  proc_alive "$pid" || return 0
  echo "$name: pid $pid still running after $seconds s, killing" >&2
  kill -KILL "$pid" 2>/dev/null || true
  while proc_alive "$pid"; do sleep 0.1; done
}
