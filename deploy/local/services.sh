#!/usr/bin/env bash
# Throwaway local services for pgrollout development and tests:
#   - a PostgreSQL 15 cluster (initdb'd into the state dir, trust auth, superuser "pgrollout")
#   - a single-node Apache Kafka 3.9.1 broker in KRaft combined mode (broker+controller), with
#     a plaintext listener and a SASL_SSL listener (SCRAM-SHA-512 users "pgrollout",
#     "pgrollout-agent-1" and "pgrollout-coordinator", none of them a super user)
#   - Kafka's ACL authorizer (StandardAuthorizer) on, open by default: a topic without ACLs is
#     open to everyone (allow.everyone.if.no.acl.found=true), and only the plaintext listener's
#     principal (User:ANONYMOUS, also the controller's and the inter-broker one) is a super
#     user. A test that adds ACLs for its own topics (tests/security/test_kafka_acl.c) sees
#     them enforced for the SCRAM users; every other topic behaves as without an authorizer.
#   - a test CA made at `up` (openssl) whose server certificate (localhost, 127.0.0.1) serves
#     PostgreSQL's TLS (ssl = on; clients can use sslmode=verify-full) and Kafka's SASL_SSL
# Both listen on 127.0.0.1 only, on free ports picked at start-up, so several state dirs
# (dev + tests) can run side by side. Progress goes to stderr and only `export` lines go to
# stdout, so `eval "$(deploy/local/services.sh up)"` works.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: deploy/local/services.sh COMMAND [ARGS]

Commands:
  up              Install missing packages, fetch the Kafka jars (cached), start PostgreSQL 15
                  and Kafka 3.9.1 (KRaft) and print `export` lines for them. If they already run
                  and answer, only prints the exports; stale state from a crash is cleaned up.
                    eval "$(deploy/local/services.sh up)"
  down [--save-logs DIR]
                  Stop both services and delete the state dir (never fails if nothing runs).
                  --save-logs copies the service logs to DIR first.
  status          Say what runs; exit 0 if both services answer, else 1.
  env             Print the `export` lines of the running services (exit 1 if not running).
  kafka-stop [N] [--kill]
                  Stop only Kafka (fault-injection tests): node N, or every node; --kill sends
                  SIGKILL instead of asking for a controlled shutdown.
  kafka-start [N] Start it (node N, or every stopped node) again on the same ports and data and
                  wait until it answers.
  deps [PKG...]   Only install missing Debian packages (plus PKG...) and fetch the Kafka jars.
  -h, --help      This text.

Environment:
  PGR_STATE_DIR     state dir (default: <repo>/deploy/local/.state)
  PGR_CACHE_DIR     download cache (default: $HOME/.cache/pgrollout); jars in kafka-3.9.1/
  PGR_SERVICES      "postgres" starts only PostgreSQL, "kafka" only Kafka (default: all)
  PGR_KAFKA_BROKERS Kafka nodes, 1 (default) or 3: a replicated KRaft cluster (each node broker
                    and controller, 256 MB heap; topics 3 copies, min.insync.replicas=2)
  PGR_WAIT_TIMEOUT  seconds to wait for the services to answer (default: 90)
  PGR_PG_BIN        PostgreSQL binaries (default: /usr/lib/postgresql/15/bin)

Exports printed: PGHOST PGPORT PGUSER PGR_KAFKA_BOOTSTRAP (every node), PGR_KAFKA_BROKERS (also
written to <state>/env.sh), and
for encrypted links: PGR_TLS_CA (the test CA certificate), PGR_KAFKA_TLS_BOOTSTRAP (SASL_SSL
listener), PGR_KAFKA_SASL_USER, PGR_KAFKA_SASL_PASSWORD (random per `up`; test-only secret),
and the SCRAM users for ACL tests: PGR_KAFKA_AGENT_USER, PGR_KAFKA_AGENT_PASSWORD,
PGR_KAFKA_COORD_USER, PGR_KAFKA_COORD_PASSWORD (not super users: only ACLs grant them rights on
a topic that has ACLs).
PostgreSQL refuses non-TLS connections of members of the role pgrollout_tls_only (pg_hba
`hostnossl ... reject`), so a test can prove its connections are encrypted.
When run as root, PostgreSQL runs as the `postgres` OS user (initdb refuses root).
EOF
}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR
readonly KAFKA_VERSION=3.9.1
readonly PG_ROLE=pgrollout
readonly PG_BIN=${PGR_PG_BIN:-/usr/lib/postgresql/15/bin}
readonly WAIT_TIMEOUT=${PGR_WAIT_TIMEOUT:-90}
# PGR_SERVICES=postgres: only PostgreSQL (the demo brings its own embedded Kafka); kafka: only
# Kafka (a second, clustered Kafka beside the tests' services: tests/fault/test_cluster.c).
case ${PGR_SERVICES:-all} in
  postgres) ONLY_PG=1 ONLY_KAFKA=0 ;;
  kafka) ONLY_PG=0 ONLY_KAFKA=1 ;;
  *) ONLY_PG=0 ONLY_KAFKA=0 ;;
esac
readonly ONLY_PG ONLY_KAFKA
# Kafka nodes (KRaft, each broker and controller): 1, or 3 for a replicated cluster. run.conf
# keeps the number the services were started with.
BROKERS=${PGR_KAFKA_BROKERS:-1}
readonly REQUESTED_BROKERS=$BROKERS
[[ $BROKERS =~ ^[1-5]$ ]] || {
  printf 'services.sh: error: PGR_KAFKA_BROKERS must be 1 to 5, not "%s"\n' "$BROKERS" >&2
  exit 2
}
# Absolute, because the path ends up in server.properties and postgresql.conf.
STATE_DIR=$(realpath -m -- "${PGR_STATE_DIR:-$SCRIPT_DIR/.state}")
readonly STATE_DIR
readonly CACHE_DIR=${PGR_CACHE_DIR:-${HOME:-/tmp}/.cache/pgrollout}
readonly KAFKA_JARS=$CACHE_DIR/kafka-$KAFKA_VERSION
readonly KAFKA_DIR=$STATE_DIR/kafka # node 1; node n > 1 in kafka-n (node_dir)
readonly TLS_DIR=$STATE_DIR/tls
readonly SASL_USER=pgrollout
# Principals of the ACL tests (docs/SECURITY.md section 2 names them alike).
readonly AGENT_USER=pgrollout-agent-1
readonly COORD_USER=pgrollout-coordinator
readonly LOG_DIR=$STATE_DIR/logs
readonly RUN_CONF=$STATE_DIR/run.conf
# Marks a dir as ours; `down` refuses to rm -rf a non-empty dir without it (PGR_STATE_DIR=$HOME typo).
readonly STATE_MARKER=$STATE_DIR/.pgrollout-state
# Where PostgreSQL lives when root runs us and the `postgres` user cannot reach STATE_DIR
# (e.g. a checkout under /root, mode 700). Derived from STATE_DIR so `down` finds it again.
PG_FALLBACK_BASE=/tmp/pgrollout-pg-$(printf '%s' "$STATE_DIR" | cksum | cut -d' ' -f1)
readonly PG_FALLBACK_BASE
if [[ -n ${JAVA_HOME:-} ]]; then JAVA=$JAVA_HOME/bin/java; else JAVA=java; fi
readonly JAVA

# Needed by the build and by the services. A fresh CI machine has none of them.
readonly PACKAGES=(
  libpq-dev librdkafka-dev libsodium-dev libjansson-dev libcmocka-dev libinih-dev libmicrohttpd-dev
  kcat clang-format pkg-config postgresql-15 postgresql-contrib openssl prometheus
)

# Filled from run.conf by load_conf. KAFKA_PORT, CONTROLLER_PORT, KAFKA_TLS_PORT: node 1's;
# KAFKA_PORTS, CONTROLLER_PORTS, KAFKA_TLS_PORTS: every node's, space-separated.
PG_PORT='' KAFKA_PORT='' CONTROLLER_PORT='' PG_BASE='' KAFKA_TLS_PORT='' SASL_PASSWORD='' STORE_PASS=''
AGENT_PASSWORD='' COORD_PASSWORD='' KAFKA_PORTS='' CONTROLLER_PORTS='' KAFKA_TLS_PORTS=''

log() { printf 'services.sh: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# ---------------------------------------------------------------------------------------------
# Dependencies

# ensure_packages PKG... — install the Debian packages that are not installed yet.
ensure_packages() {
  local missing=() pkg out
  for pkg in "$@"; do
    # Capture instead of piping into grep -q: with pipefail an early grep exit could SIGPIPE dpkg
    # and make an installed package look missing. "deinstall ok config-files" counts as missing.
    out=$(dpkg -s "$pkg" 2>/dev/null) || true
    [[ $out == *$'\nStatus: install ok installed'* ]] || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  if ((EUID != 0)); then
    die "missing Debian packages: ${missing[*]}
  install them with: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
  fi
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Once per run: a fresh CI image has empty package lists.
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# The package list for this machine: java/mvn are expected preinstalled, but install them when
# absent so a bare Debian 12 image works too (mvn is only needed until the jars are cached).
deps_packages() {
  local pkgs=("${PACKAGES[@]}" "$@")
  command -v "$JAVA" >/dev/null 2>&1 || pkgs+=(openjdk-17-jre-headless)
  [[ -f $KAFKA_JARS/.complete ]] || command -v mvn >/dev/null 2>&1 || pkgs+=(maven)
  ensure_packages "${pkgs[@]}"
}

# Fetch the broker's jars once (Maven resolves kafka_2.13 and its runtime deps, ~46 MB).
# Downloaded into a temp dir and renamed, so a present dir with .complete is always complete.
fetch_jars() {
  [[ -f $KAFKA_JARS/.complete ]] && return 0
  command -v mvn >/dev/null 2>&1 || die "mvn not found (needed once to fetch the Kafka jars)"
  log "fetching Kafka $KAFKA_VERSION jars into $KAFKA_JARS (once)"
  mkdir -p "$CACHE_DIR"
  rm -rf "$KAFKA_JARS" # leftover without .complete: not trustworthy
  local tmp
  tmp=$(mktemp -d "$CACHE_DIR/.kafka-$KAFKA_VERSION.XXXXXX")
  # Debian's Maven 3.8 emits ANSI resets even with -B; strip them (pipefail keeps mvn's status).
  if ! (cd "$SCRIPT_DIR/kafka" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$tmp") 2>&1 |
    sed 's/\x1b\[[0-9;]*m//g' >&2; then
    rm -rf "$tmp"
    die "mvn dependency:copy-dependencies failed (see output above)"
  fi
  if [[ ! -f $tmp/kafka_2.13-$KAFKA_VERSION.jar ]]; then
    rm -rf "$tmp"
    die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn copy-dependencies"
  fi
  touch "$tmp/.complete"
  # -T: never move tmp *into* an existing dir if a concurrent run won the race.
  mv -T "$tmp" "$KAFKA_JARS" 2>/dev/null || rm -rf "$tmp"
  [[ -f $KAFKA_JARS/.complete ]] || die "could not populate $KAFKA_JARS"
}

# ---------------------------------------------------------------------------------------------
# Processes and ports

# pid_alive PID — running and not a zombie (PID 1 in containers does not always reap orphans,
# and a kill -9'd Kafka would otherwise look alive forever).
pid_alive() {
  local pid=$1 stat state
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  state=${stat##*) }
  [[ ${state%% *} != Z ]]
}

# Read a pid file; empty output if missing.
read_pid() {
  local line=''
  # read fails on a file without a trailing newline but still fills line.
  if [[ -r $1 ]]; then IFS= read -r line <"$1" || true; fi
  printf '%s' "$line"
}

# The directory of Kafka node N (1: the single node's, as before clusters).
node_dir() {
  if (($1 == 1)); then printf '%s' "$KAFKA_DIR"; else printf '%s' "$STATE_DIR/kafka-$1"; fi
}

# Word N (1-based) of the space-separated list LIST.
nth() {
  local -a words
  read -ra words <<<"$2"
  printf '%s' "${words[$1 - 1]:-}"
}

# The pid of Kafka node N (default 1) from its pid file, only if that process is still our
# broker (pid reuse).
kafka_pid() {
  local pid cmdline dir
  dir=$(node_dir "${1:-1}")
  pid=$(read_pid "$dir/kafka.pid")
  pid_alive "$pid" || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *kafka.Kafka*"$dir/server.properties"* ]] || return 1
  printf '%s' "$pid"
}

# The postmaster pid of the cluster under BASE, only if it is still a postgres process.
postmaster_pid() {
  local pid comm
  pid=$(read_pid "$1/data/postmaster.pid")
  pid_alive "$pid" || return 1
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  [[ $comm == postgres ]] || return 1
  printf '%s' "$pid"
}

# A connect succeeding means something listens there. bash's /dev/tcp avoids needing ss/netstat.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port [TAKEN...] — a free port on 127.0.0.1. 20000-31999 stays below Linux's ephemeral
# range (32768+), so outgoing connections are unlikely to grab it before the service binds.
pick_port() {
  local port i
  for ((i = 0; i < 500; i++)); do
    port=$((20000 + RANDOM % 12000))
    [[ " $* " == *" $port "* ]] && continue
    port_in_use "$port" || {
      printf '%s' "$port"
      return 0
    }
  done
  die "no free TCP port found on 127.0.0.1"
}

# Run a PostgreSQL binary as the cluster owner: initdb/postgres refuse to run as root, so root
# (CI) uses the `postgres` OS user that the postgresql-common package creates; others run as
# themselves. cd / because the caller's cwd may be unreadable for postgres.
as_pg() {
  if ((EUID == 0)); then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# ---------------------------------------------------------------------------------------------
# State

load_conf() {
  PG_PORT='' KAFKA_PORT='' CONTROLLER_PORT='' PG_BASE='' KAFKA_TLS_PORT='' SASL_PASSWORD='' STORE_PASS=''
  AGENT_PASSWORD='' COORD_PASSWORD='' KAFKA_PORTS='' CONTROLLER_PORTS='' KAFKA_TLS_PORTS=''
  [[ -f $RUN_CONF ]] || return 1
  # shellcheck source=/dev/null # written by write_conf below
  source "$RUN_CONF"
  # services started before clusters: one node
  [[ -n $KAFKA_PORTS ]] || KAFKA_PORTS=$KAFKA_PORT CONTROLLER_PORTS=$CONTROLLER_PORT \
    KAFKA_TLS_PORTS=$KAFKA_TLS_PORT BROKERS=1
  return 0
}

write_conf() {
  {
    printf '# written by services.sh up\n'
    printf 'PG_PORT=%q\nKAFKA_PORT=%q\nCONTROLLER_PORT=%q\nPG_BASE=%q\n' \
      "$PG_PORT" "$KAFKA_PORT" "$CONTROLLER_PORT" "$PG_BASE"
    printf 'KAFKA_TLS_PORT=%q\nSASL_PASSWORD=%q\nSTORE_PASS=%q\n' \
      "$KAFKA_TLS_PORT" "$SASL_PASSWORD" "$STORE_PASS"
    printf 'AGENT_PASSWORD=%q\nCOORD_PASSWORD=%q\n' "$AGENT_PASSWORD" "$COORD_PASSWORD"
    printf 'BROKERS=%q\nKAFKA_PORTS=%q\nCONTROLLER_PORTS=%q\nKAFKA_TLS_PORTS=%q\n' \
      "$BROKERS" "$KAFKA_PORTS" "$CONTROLLER_PORTS" "$KAFKA_TLS_PORTS"
  } >"$RUN_CONF"
  chmod 600 "$RUN_CONF"
}

# "127.0.0.1:P1,127.0.0.1:P2" of the space-separated ports $1.
bootstrap_of() {
  local p out=''
  for p in $1; do out+="${out:+,}127.0.0.1:$p"; done
  printf '%s' "$out"
}

print_env() {
  ((ONLY_KAFKA)) || {
    printf 'export PGHOST=%q\n' 127.0.0.1
    printf 'export PGPORT=%q\n' "$PG_PORT"
    printf 'export PGUSER=%q\n' "$PG_ROLE"
  }
  printf 'export PGR_TLS_CA=%q\n' "$TLS_DIR/ca.crt"
  ((ONLY_PG)) || {
    printf 'export PGR_KAFKA_BROKERS=%q\n' "$BROKERS"
    # addresses, ports and commas only: nothing to quote (%q would escape the commas)
    printf 'export PGR_KAFKA_BOOTSTRAP=%s\n' "$(bootstrap_of "$KAFKA_PORTS")"
    printf 'export PGR_KAFKA_TLS_BOOTSTRAP=%s\n' "$(bootstrap_of "$KAFKA_TLS_PORTS")"
    printf 'export PGR_KAFKA_SASL_USER=%q\n' "$SASL_USER"
    printf 'export PGR_KAFKA_SASL_PASSWORD=%q\n' "$SASL_PASSWORD"
    # Services started by an older services.sh have no ACL users: then nothing is printed.
    if [[ -n $AGENT_PASSWORD ]]; then
      printf 'export PGR_KAFKA_AGENT_USER=%q\n' "$AGENT_USER"
      printf 'export PGR_KAFKA_AGENT_PASSWORD=%q\n' "$AGENT_PASSWORD"
      printf 'export PGR_KAFKA_COORD_USER=%q\n' "$COORD_USER"
      printf 'export PGR_KAFKA_COORD_PASSWORD=%q\n' "$COORD_PASSWORD"
    fi
  }
}

# A throwaway CA and one server certificate (DNS:localhost, IP:127.0.0.1) for PostgreSQL and
# Kafka; EC P-256 keys are quick to make. Kafka reads the key and chain from a PKCS#12 store.
make_tls() {
  mkdir -p "$TLS_DIR"
  (
    cd "$TLS_DIR"
    umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
      -subj "/CN=pgrollout test CA" -keyout ca.key -out ca.crt
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
      -keyout server.key -out server.csr
    printf '%s\n' 'subjectAltName=DNS:localhost,IP:127.0.0.1' 'basicConstraints=CA:FALSE' \
      'keyUsage=digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 \
      -extfile server.ext -out server.crt
    openssl pkcs12 -export -in server.crt -inkey server.key -certfile ca.crt -name kafka \
      -passout "pass:$STORE_PASS" -out server.p12
    chmod 644 ca.crt
  ) >"$LOG_DIR/tls.log" 2>&1 || {
    cat "$LOG_DIR/tls.log" >&2
    die "making the test CA failed"
  }
}

pg_ready() {
  ((ONLY_KAFKA)) && [[ -z $PG_PORT ]] && return 0
  [[ -n $PG_PORT ]] && "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U "$PG_ROLE" -d postgres -t 2
}

# Kafka node N (default: every node) runs, and node 1 (or, N given, node N) lists it among the
# brokers of the cluster's metadata. No -t: asking for a topic could auto-create it.
kafka_ready() {
  local out n first=${1:-1} last=${1:-$BROKERS}
  [[ -n $KAFKA_PORT ]] || return 1
  out=$(kcat -b "127.0.0.1:$(nth "$first" "$KAFKA_PORTS")" -L -m 2 2>/dev/null) || return 1
  for ((n = first; n <= last; n++)); do
    kafka_pid "$n" >/dev/null || return 1
    [[ $out == *"broker $n at 127.0.0.1:$(nth "$n" "$KAFKA_PORTS")"* ]] || return 1
  done
}

healthy() { load_conf && pg_ready && { ((ONLY_PG)) || kafka_ready; }; }

# ---------------------------------------------------------------------------------------------
# Stop

# stop_kafka [N [SIGNAL]]: node N (default every node), SIGTERM (controlled shutdown) or SIGKILL.
stop_kafka() {
  local n
  if [[ -z ${1:-} ]]; then
    for ((n = BROKERS; n >= 1; n--)); do stop_kafka_node "$n" TERM; done
  else
    stop_kafka_node "$1" "${2:-TERM}"
  fi
}

stop_kafka_node() {
  local pid i
  pid=$(kafka_pid "$1") || return 0
  log "stopping Kafka node $1 (pid $pid, SIG$2)"
  kill "-$2" "$pid" 2>/dev/null || true
  # Controlled shutdown of a single KRaft node normally takes a few seconds.
  for ((i = 0; i < 300; i++)); do
    pid_alive "$pid" || return 0
    sleep 0.1
  done
  log "Kafka did not stop within 30 s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    pid_alive "$pid" || return 0
    sleep 0.1
  done
  log "warning: Kafka pid $pid still alive after SIGKILL"
}

stop_postgres() {
  local base=$1 pid
  pid=$(postmaster_pid "$base") || return 0
  log "stopping PostgreSQL (pid $pid)"
  if ! as_pg "$PG_BIN/pg_ctl" -D "$base/data" -m fast -w -t 30 stop >&2; then
    log "pg_ctl stop failed; sending SIGKILL to $pid"
    kill -KILL "$pid" 2>/dev/null || true
  fi
}

stop_all() {
  load_conf || true # how many Kafka nodes run
  stop_kafka
  # Both possible locations: run.conf may be missing if a crash hit early in `up`.
  local base
  for base in "$STATE_DIR/pg" "$PG_FALLBACK_BASE"; do
    [[ -d $base ]] && stop_postgres "$base"
  done
  return 0
}

remove_state() {
  if [[ -d $STATE_DIR ]]; then
    if [[ -e $STATE_MARKER || -z $(ls -A "$STATE_DIR") ]]; then
      rm -rf "$STATE_DIR"
    else
      die "refusing to delete $STATE_DIR: it lacks $(basename "$STATE_MARKER"), so it is not a services.sh state dir"
    fi
  fi
  rm -rf "$PG_FALLBACK_BASE"
}

save_logs() {
  local dest=$1 f
  mkdir -p "$dest"
  for f in "$LOG_DIR"/* "$STATE_DIR/pg/postgres.log" "$PG_FALLBACK_BASE/postgres.log"; do
    [[ -f $f ]] && cp "$f" "$dest/"
  done
  return 0
}

# ---------------------------------------------------------------------------------------------
# Start

start_postgres() {
  PG_BASE=$STATE_DIR/pg
  install -d -m 700 "$PG_BASE"
  if ((EUID == 0)); then
    id postgres >/dev/null 2>&1 || die "no 'postgres' OS user (it comes with the postgresql-15 package)"
    chown postgres:postgres "$PG_BASE"
    if ! runuser -u postgres -- test -w "$PG_BASE"; then
      # A parent dir is not traversable for postgres; keep the cluster in /tmp instead.
      log "postgres user cannot reach $PG_BASE; putting the cluster in $PG_FALLBACK_BASE"
      rm -rf "$PG_BASE" "$PG_FALLBACK_BASE"
      PG_BASE=$PG_FALLBACK_BASE
      install -d -m 700 -o postgres -g postgres "$PG_BASE"
    fi
  fi
  write_conf
  log "initdb PostgreSQL 15 cluster in $PG_BASE/data"
  # -N: no fsync of the new cluster, it is throwaway. -U makes the bootstrap superuser "pgrollout".
  as_pg "$PG_BIN/initdb" -D "$PG_BASE/data" -U "$PG_ROLE" -A trust -E UTF8 --locale=C -N \
    --no-instructions >"$PG_BASE/initdb.log" 2>&1 ||
    {
      cat "$PG_BASE/initdb.log" >&2
      die "initdb failed"
    }
  as_pg mkdir -p "$PG_BASE/sock"
  local sock=$PG_BASE/sock
  # Unix socket paths are limited to 107 bytes; clients use TCP anyway, so drop the socket
  # rather than fail when the state dir is deep.
  if ((${#sock} > 90)); then
    log "socket dir path too long for a unix socket; TCP only"
    sock=''
  fi
  # Appended last, so these win over initdb's defaults. Durability is irrelevant here.
  cat >>"$PG_BASE/data/postgresql.conf" <<EOF

# --- services.sh: throwaway test cluster ---
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$sock'
max_connections = 300          # load tests open many connections / databases
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
EOF
  install -m 600 "$TLS_DIR/server.crt" "$TLS_DIR/server.key" "$PG_BASE/data/"
  ((EUID == 0)) && chown postgres:postgres "$PG_BASE/data/server.crt" "$PG_BASE/data/server.key"
  # First match wins: members of pgrollout_tls_only must come over TLS (tests prove encryption).
  cat >"$PG_BASE/data/pg_hba.conf" <<EOF
local     all all                                      trust
hostnossl all +pgrollout_tls_only 127.0.0.1/32         reject
host      all all                 127.0.0.1/32         trust
host      all all                 ::1/128              trust
EOF
  ((EUID == 0)) && chown postgres:postgres "$PG_BASE/data/pg_hba.conf"
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  as_pg "$PG_BIN/pg_ctl" -D "$PG_BASE/data" -l "$PG_BASE/postgres.log" -w -t "$WAIT_TIMEOUT" start >&2 || {
    tail -n 30 "$PG_BASE/postgres.log" >&2 || true
    die "PostgreSQL did not start"
  }
}

# Short-lived Kafka CLI tools: a client JIT and serial GC start noticeably faster.
kafka_tool() {
  "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$KAFKA_JARS/*" \
    -Dlog4j.configuration="file:$KAFKA_DIR/log4j.properties" kafka.tools.StorageTool "$@"
}

# log4j for node N: WARN and above to a file (node 1: kafka.log, node n: kafka-n.log); stdout
# stays quiet. KafkaRaftServer at INFO logs "Kafka Server started".
write_log4j() {
  local dir log=kafka.log
  dir=$(node_dir "$1")
  (($1 > 1)) && log=kafka-$1.log
  mkdir -p "$dir/data"
  cat >"$dir/log4j.properties" <<EOF
log4j.rootLogger=WARN, file
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$LOG_DIR/$log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

# server.properties of node N: KRaft, broker and controller in one JVM. With three nodes or more
# the cluster replicates: every topic 3 copies, a write acknowledged (acks=all) once 2 hold it.
write_server_properties() {
  local n=$1 dir voters='' i port tls ctl rf=1 isr=1
  dir=$(node_dir "$n")
  for ((i = 1; i <= BROKERS; i++)); do
    voters+="${voters:+,}$i@127.0.0.1:$(nth "$i" "$CONTROLLER_PORTS")"
  done
  port=$(nth "$n" "$KAFKA_PORTS") tls=$(nth "$n" "$KAFKA_TLS_PORTS")
  ctl=$(nth "$n" "$CONTROLLER_PORTS")
  ((BROKERS >= 3)) && rf=3 isr=2
  cat >"$dir/server.properties" <<EOF
# KRaft node $n of $BROKERS, broker and controller in one JVM (written by services.sh).
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$tls,CONTROLLER://127.0.0.1:$ctl
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$tls
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL
# Encrypted, authenticated clients: TLS with the test CA's server certificate and SCRAM-SHA-512
# users kept in the cluster metadata (added by StorageTool format --add-scram).
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS_DIR/server.p12
ssl.keystore.password=$STORE_PASS
ssl.key.password=$STORE_PASS
ssl.client.auth=none
log.dirs=$dir/data
num.partitions=6
auto.create.topics.enable=true
# Replication: 1 on one node (internal topics cannot have more replicas than nodes); 3 copies
# and min.insync.replicas=2 on a cluster of 3, so one node may fail without losing a write.
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
# Fewer internal partitions than the default 50: the first consumer group / transaction
# creates them, and 50 partitions make that first join noticeably slower on a small CI box.
offsets.topic.num.partitions=6
transaction.state.log.num.partitions=6
# Tests start consumers one after another; don't wait 3 s for more members.
group.initial.rebalance.delay.ms=0
# ACLs enforced for the topics (and groups) that have some; everything else stays open, so tests
# that add no ACLs work as without an authorizer. The plaintext listener, the controller and
# inter-broker traffic authenticate as User:ANONYMOUS: the only super user. The SCRAM users of
# the SASL_SSL listener are not super users.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=true
super.users=User:ANONYMOUS
EOF
}

start_kafka() {
  local n cluster_id
  for ((n = 1; n <= BROKERS; n++)); do
    write_log4j "$n"
    write_server_properties "$n"
  done
  cluster_id=$(kafka_tool random-uuid 2>>"$LOG_DIR/storage-tool.log") || die "StorageTool random-uuid failed (see $LOG_DIR/storage-tool.log)"
  log "formatting Kafka storage of $BROKERS node(s) (cluster id $cluster_id)"
  # every node: the same cluster id and SCRAM users (kept in the metadata log)
  for ((n = 1; n <= BROKERS; n++)); do
    kafka_tool format -t "$cluster_id" -c "$(node_dir "$n")/server.properties" \
      --add-scram "SCRAM-SHA-512=[name=$SASL_USER,password=$SASL_PASSWORD]" \
      --add-scram "SCRAM-SHA-512=[name=$AGENT_USER,password=$AGENT_PASSWORD]" \
      --add-scram "SCRAM-SHA-512=[name=$COORD_USER,password=$COORD_PASSWORD]" \
      >>"$LOG_DIR/storage-tool.log" 2>&1 || {
      cat "$LOG_DIR/storage-tool.log" >&2
      die "StorageTool format failed"
    }
  done
  for ((n = 1; n <= BROKERS; n++)); do launch_kafka "$n"; done
}

# Starts the JVM of node N on its formatted storage (also used by `kafka-start` after a stop).
# One node gets up to 512 MB of heap; each node of a cluster 256 MB.
launch_kafka() {
  local n=$1 dir out=kafka.out heap=-Xmx512m
  dir=$(node_dir "$n")
  ((n > 1)) && out=kafka-$n.out
  ((BROKERS > 1)) && heap=-Xmx256m
  log "starting Kafka $KAFKA_VERSION node $n on 127.0.0.1:$(nth "$n" "$KAFKA_PORTS") (controller :$(nth "$n" "$CONTROLLER_PORTS"))"
  # setsid: own session, so a Ctrl-C in the terminal that ran `up` does not reach the broker.
  # The inner bash writes its own pid and execs java, so the pid file is java's pid whether or
  # not setsid had to fork. All fds are redirected so `$(services.sh up)` does not hang on it.
  # shellcheck disable=SC2016 # $$ and $@ are for the inner bash
  nohup setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$dir/kafka.pid" \
    "$JAVA" -Xms64m "$heap" -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -cp "$KAFKA_JARS/*" -Dlog4j.configuration="file:$dir/log4j.properties" \
    kafka.Kafka "$dir/server.properties" </dev/null >>"$LOG_DIR/$out" 2>&1 &
}

# Fault injection for tests: stop a broker (PostgreSQL keeps running) or all of them, start it
# again on the same ports and data. Arguments: [NODE] [--kill] (SIGKILL instead of a controlled
# shutdown).
node_args() {
  NODE='' SIGNAL=TERM
  while (($#)); do
    case $1 in
      --kill) SIGNAL=KILL ;;
      [1-5])
        (($1 <= BROKERS)) || die "no Kafka node $1 (the cluster has $BROKERS)"
        NODE=$1
        ;;
      *) die "unknown argument '$1' (expected a node number or --kill)" ;;
    esac
    shift
  done
}

cmd_kafka_stop() {
  load_conf || die "services are not running"
  node_args "$@"
  if [[ -n $NODE ]]; then
    stop_kafka "$NODE" "$SIGNAL"
  else
    local n
    for ((n = BROKERS; n >= 1; n--)); do stop_kafka "$n" "$SIGNAL"; done
  fi
}

cmd_kafka_start() {
  load_conf || die "services are not running"
  node_args "$@"
  local n first=${NODE:-1} last=${NODE:-$BROKERS}
  for ((n = first; n <= last; n++)); do
    kafka_pid "$n" >/dev/null || launch_kafka "$n"
  done
  local deadline=$((SECONDS + WAIT_TIMEOUT))
  until kafka_ready "$NODE"; do
    ((SECONDS < deadline)) || die "Kafka not ready after ${WAIT_TIMEOUT}s"
    sleep 0.3
  done
  log "Kafka is ready"
}

# Poll (no fixed sleeps as the condition) until both services answer or WAIT_TIMEOUT passes.
wait_ready() {
  local deadline=$((SECONDS + WAIT_TIMEOUT)) pg_ok=0 kafka_ok=$ONLY_PG
  while ((SECONDS < deadline)); do
    if ((!pg_ok)) && pg_ready; then
      pg_ok=1
      log "PostgreSQL is ready"
    fi
    if ((!kafka_ok)); then
      if [[ -s $KAFKA_DIR/kafka.pid ]] && ! kafka_pid >/dev/null; then
        tail -n 40 "$LOG_DIR/kafka.log" "$LOG_DIR/kafka.out" >&2 2>/dev/null || true
        die "Kafka exited during start-up (logs in $LOG_DIR)"
      fi
      if kafka_ready; then
        kafka_ok=1
        log "Kafka is ready"
      fi
    fi
    ((pg_ok && kafka_ok)) && return 0
    sleep 0.3
  done
  ((pg_ok)) || die "PostgreSQL not ready after ${WAIT_TIMEOUT}s (log: $PG_BASE/postgres.log)"
  tail -n 40 "$LOG_DIR/kafka.log" "$LOG_DIR/kafka.out" >&2 2>/dev/null || true
  die "Kafka not ready after ${WAIT_TIMEOUT}s (logs in $LOG_DIR)"
}

# A failed `up` must not leave half-started services behind; the state dir (with logs) stays
# for inspection and the next `up` treats it as stale.
on_up_failure() {
  local rc=$?
  ((rc == 0)) && return 0
  log "start-up failed; stopping what was started (logs kept in $STATE_DIR, 'down' removes them)"
  stop_all
  exit "$rc"
}

cmd_up() {
  deps_packages
  ((ONLY_PG)) || fetch_jars
  if healthy; then
    log "already running (state: $STATE_DIR)"
    print_env
    return 0
  fi
  if [[ -e $STATE_DIR || -e $PG_FALLBACK_BASE ]]; then
    log "found stale state in $STATE_DIR (services not answering); cleaning up"
    stop_all
    remove_state
  fi
  BROKERS=$REQUESTED_BROKERS # not the stale state's
  local started=$SECONDS
  mkdir -p "$STATE_DIR" "$LOG_DIR"
  touch "$STATE_MARKER"
  trap on_up_failure EXIT
  PG_PORT=$(pick_port)
  local taken=$PG_PORT n p
  for ((n = 1; n <= BROKERS; n++)); do
    # shellcheck disable=SC2086 # one argument per taken port
    p=$(pick_port $taken) && KAFKA_PORTS+="${KAFKA_PORTS:+ }$p" taken+=" $p"
    # shellcheck disable=SC2086
    p=$(pick_port $taken) && CONTROLLER_PORTS+="${CONTROLLER_PORTS:+ }$p" taken+=" $p"
    # shellcheck disable=SC2086
    p=$(pick_port $taken) && KAFKA_TLS_PORTS+="${KAFKA_TLS_PORTS:+ }$p" taken+=" $p"
  done
  KAFKA_PORT=$(nth 1 "$KAFKA_PORTS") CONTROLLER_PORT=$(nth 1 "$CONTROLLER_PORTS")
  KAFKA_TLS_PORT=$(nth 1 "$KAFKA_TLS_PORTS")
  ((ONLY_KAFKA)) && PG_PORT='' # no PostgreSQL in these services
  SASL_PASSWORD=$(openssl rand -hex 16)
  AGENT_PASSWORD=$(openssl rand -hex 16)
  COORD_PASSWORD=$(openssl rand -hex 16)
  STORE_PASS=$(openssl rand -hex 16)
  PG_BASE=$STATE_DIR/pg
  write_conf
  make_tls
  # Kafka first: its JVM boots in the background while initdb runs.
  ((ONLY_PG)) || start_kafka
  ((ONLY_KAFKA)) || start_postgres
  wait_ready
  # psql & co. default the database name to the user name; make that work out of the box.
  if ((!ONLY_KAFKA)); then
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_ROLE" "$PG_ROLE" ||
      die "createdb $PG_ROLE failed"
  fi
  print_env >"$STATE_DIR/env.sh"
  trap - EXIT
  log "up in $((SECONDS - started)) s (state: $STATE_DIR; eval \"\$(cat $STATE_DIR/env.sh)\" or 'services.sh env')"
  print_env
}

cmd_down() {
  local save=''
  while (($#)); do
    case $1 in
      --save-logs)
        [[ $# -ge 2 ]] || die "--save-logs needs a directory"
        save=$2
        shift 2
        ;;
      *) die "down: unknown argument '$1'" ;;
    esac
  done
  [[ -n $save ]] && save_logs "$save"
  stop_all
  remove_state
  log "down (state dir $STATE_DIR removed)"
}

cmd_status() {
  local rc=0 pid
  load_conf || true
  if [[ -z $PG_PORT && -n $KAFKA_PORT ]]; then
    echo "postgresql: not part of these services (PGR_SERVICES=kafka)"
  elif pg_ready; then
    pid=$(postmaster_pid "$PG_BASE" || true)
    echo "postgresql: running on 127.0.0.1:$PG_PORT (pid ${pid:-?}, data $PG_BASE/data)"
  else
    echo "postgresql: down"
    rc=1
  fi
  local n port
  for ((n = 1; n <= BROKERS; n++)); do
    port=$(nth "$n" "$KAFKA_PORTS")
    if pid=$(kafka_pid "$n") && kcat -b "127.0.0.1:$port" -L -m 2 >/dev/null 2>&1; then
      echo "kafka node $n: running on 127.0.0.1:$port (pid $pid, controller :$(nth "$n" "$CONTROLLER_PORTS"))"
    elif pid=$(kafka_pid "$n"); then
      echo "kafka node $n: process $pid alive but not answering on 127.0.0.1:$port"
      rc=1
    else
      echo "kafka node $n: down"
      rc=1
    fi
  done
  echo "state dir: $STATE_DIR"
  return "$rc"
}

cmd_env() {
  healthy || die "services are not running (state: $STATE_DIR); run 'services.sh up'"
  print_env
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  case $cmd in
    up | status | env)
      [[ $# -eq 0 ]] || die "$cmd takes no arguments"
      "cmd_$cmd"
      ;;
    down) cmd_down "$@" ;;
    kafka-stop) cmd_kafka_stop "$@" ;;
    kafka-start) cmd_kafka_start "$@" ;;
    deps)
      deps_packages "$@"
      fetch_jars
      ;;
    -h | --help | help) usage ;;
    '')
      usage >&2
      exit 2
      ;;
    *)
      log "unknown command '$cmd'"
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
