#!/bin/bash
# hearth's adapter for ../shared/bench (interface: shared/bench/README.md, "Adapter interface").
# From the project root: ../shared/bench/compare.sh prosody ejabberd tests/bench/hearth.sh
# Builds the release binary if it is missing (set HEARTH_BIN to use another one).
set -euo pipefail
here=${BENCH_HOME:?run through shared/bench/compare.sh}
project=$(cd "$(dirname "$0")/../.." && pwd)
. "$here/lib/adapter-lib.sh"
: "${BENCH_DIR:?}" "${BENCH_IP:?}" "${BENCH_PORT:?}" "${BENCH_DOMAIN:?}"
HEARTH=${HEARTH_BIN:-$project/target/release/hearth}
CFG=$BENCH_DIR/hearth.toml

# The [s2s] section: off for the main instance (it listens on nothing outside BENCH_IP), and
# for the s2s scenario's instances federation on BENCH_IP:BENCH_S2S_PORT with certificates.
s2s_section() {
  if [ "${BENCH_S2S:-}" != 1 ]; then
    printf '[s2s]\nenabled = false\n'
    return
  fi
  # No rate limiting on s2s, as the bench asks.
  printf '[s2s]\nlisten = ["%s:%s"]\nca_file = "%s"\nmax_stanzas_per_second = 0\n' "$BENCH_IP" "${BENCH_S2S_PORT:-5269}" "${BENCH_CA:-$BENCH_CERT}"
  local peer
  for peer in ${BENCH_S2S_PEERS:-}; do
    printf '[s2s.peers."%s"]\naddress = "%s"\n' "${peer%%=*}" "${peer#*=}"
  done
}

case ${1:?usage: hearth.sh start|stop|provision COUNT|info} in
  start)
    [ -x "$HEARTH" ] || (cd "$project" && cargo build --release --quiet)
    mkdir -p "$BENCH_DIR/data"
    # Same ground as the anchors: SQLite, STARTTLS, SCRAM-SHA-1 offered, no login throttling
    # (all bench clients come from one address), log level warn.
    cat >"$CFG" <<CONF
domain = "$BENCH_DOMAIN"
data_dir = "$BENCH_DIR/data"
[log]
level = "warn"
[tls]
certificate = "$BENCH_CERT"
key = "$BENCH_KEY"
$(s2s_section)
[c2s]
listen = ["$BENCH_IP:$BENCH_PORT"]
direct_tls_listen = []
max_connections = 30000
[http]
listen = []
internal_listen = []
[auth]
max_failures_per_ip = 0
max_failures_per_account = 0
# Like the anchors' defaults: no bytestream proxy (and nothing listening outside BENCH_IP).
[modules.proxy65]
enabled = false
[components]
listen = []
CONF
    ulimit -n "$(ulimit -Hn)"
    setsid "$HEARTH" --config "$CFG" serve >>"$BENCH_DIR/stdout.log" 2>&1 </dev/null &
    echo $! >"$BENCH_DIR/server.pids"
    wait_port "$BENCH_IP" "$BENCH_PORT" 30 "$!"
    [ "${BENCH_S2S:-}" != 1 ] || wait_port "$BENCH_IP" "${BENCH_S2S_PORT:-5269}" 30 "$!"
    ;;
  stop) stop_pids ;;
  provision)
    for i in $(seq 1 "${2:?count}"); do echo "${BENCH_PREFIX:-user}$i ${BENCH_PASSWORD:-benchpass}"; done |
      "$HEARTH" --config "$CFG" user add --stdin >/dev/null
    ;;
  info)
    echo "version=$("$HEARTH" --version 2>/dev/null || echo unknown)"
    echo "storage=SQLite (WAL)"
    echo "auth=SCRAM-SHA-1/-256 (+PLUS), 10000 iterations"
    echo "provisioning=hearth user add --stdin (PBKDF2 on all cores)"
    echo "archiving=MAM (XEP-0313) of every 1:1 message by default, in SQLite with an FTS5 body index"
    [ "${BENCH_S2S:-}" != 1 ] ||
      echo "s2s=STARTTLS required; certificate authentication (SASL EXTERNAL, peer certificate verified against BENCH_CA), dialback allowed as fallback but not used; one link per domain pair, bidirectional streams (XEP-0288) offered and requested (when both sides connect at once each keeps its own); acks (XEP-0198) on the links; peer address from BENCH_S2S_PEERS (s2s.peers)"
    ;;
  *) echo "unknown command $1" >&2; exit 2 ;;
esac
