#!/usr/bin/env bash
# Benchmarks of issue 8, each case against its baseline in the same run (alternating, several
# rounds, medians). Prints one table; docs/BENCHMARKS.md records the results and this command.
#
#   tests/bench/run.sh [--quick] [CASE...]
#
# CASE is any of: sign release apply fleet dispatch audit scale growth (default: all but growth with
# --quick, all without it). Sizes (quick / full) are in docs/BENCHMARKS.md. The run builds a Release tree (build-bench/), starts its OWN
# PostgreSQL and Kafka in deploy/local/.state-bench (never the dev services) and stops them at
# the end. Raw figures go to $PGR_BENCH_OUT (default build-bench/bench-results/).
#
# Cases:
#   sign      envelope seal/open vs libsodium crypto_sign_detached/verify (20 KB payload)
#   release   the agent's release check per job (a manifest of 2 signatures, the 4 migrations'
#             SHA-256) vs the job's own verification (envelope and parse)
#   apply     the four migrations through `pgrollout-agent apply` vs `psql -f` of the same
#             statements (concurrent builds, same order), fresh tenants at a given scale
#   fleet     a one-wave rollout (max_parallel 4) over N tenants at scale 1, 2 agents, real
#             Kafka, vs a shell loop of `psql -f` and `xargs -P4` of the same; also `xargs -P4`
#             of `pgrollout-agent apply --verify` (the tenant side alone); agent RSS
#   dispatch  signed job published -> the agent's first `step started` event, J jobs
#   audit     audit records verified and stored by the collector vs plain INSERTs
#   scale     10,000 simulated tenants answered by bench_fleet_sim; coordinator RSS
#   growth    fleet time at 10/50 tenants and apply time at scale 1/10 (full run only)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
QUICK=0
if [[ ${1:-} == --quick ]]; then
  QUICK=1
  shift
fi
CASES=${*:-$([[ $QUICK == 1 ]] && echo "sign release apply fleet dispatch audit scale" ||
  echo "sign release apply fleet dispatch audit scale growth")}
q() { [[ $QUICK == 1 ]] && echo "$1" || echo "$2"; } # q QUICK_VALUE FULL_VALUE
SCALE=${PGR_BENCH_SCALE:-$(q 5 50)}
ROUNDS=${PGR_BENCH_ROUNDS:-3}
# apply rounds are short and the concurrent builds vary by +-5 %: more of them for the median
APPLY_ROUNDS=${PGR_BENCH_APPLY_ROUNDS:-$(q 3 7)}
FLEET=${PGR_BENCH_FLEET:-$(q 20 100)}
JOBS=${PGR_BENCH_JOBS:-$(q 200 1000)}
AUDIT_N=${PGR_BENCH_AUDIT:-$(q 10000 30000)}
SIM_TENANTS=${PGR_BENCH_SIM:-$(q 3000 10000)}
for m in ${PGR_BENCH_FLEET_MODES:-}; do # checked before anything starts
  [[ $m =~ ^(ours|loop|xargs|cli)$ ]] || {
    echo "bench: PGR_BENCH_FLEET_MODES: unknown runner \"$m\" (ours, loop, xargs, cli)" >&2
    exit 2
  }
done
BUILD=${PGR_BENCH_BUILD_DIR:-$REPO/build-bench}
OUT=${PGR_BENCH_OUT:-$BUILD/bench-results}
export PGR_STATE_DIR=${PGR_BENCH_STATE_DIR:-$REPO/deploy/local/.state-bench}
unset PGR_SERVICES # PostgreSQL and Kafka, both our own
WORK=$(mktemp -d /tmp/pgrollout-bench.XXXXXX)
AGENT_PIDS=()
cleanup() {
  local p
  for p in "${AGENT_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n ${PGR_BENCH_KEEP_SERVICES:-} ]] || deploy/local/services.sh down >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

deploy/local/services.sh deps cmake ninja-build gcc >&2
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" >/dev/null
eval "$(deploy/local/services.sh up)"
mkdir -p "$OUT"
BIN=$BUILD/bin
RUN_ID=b$$$(date +%s | tail -c 5)

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
pctl() { sort -n | awk -v p="$1" '{a[NR]=$1} END {i=int(NR*p/100+0.999); if (i<1) i=1; print a[i]}'; }
now_ms() { date +%s%3N; }
ratio() { awk -v o="$1" -v b="$2" 'BEGIN {printf "%.2f", o / b}'; }
log() { printf 'bench: %s\n' "$*" >&2; }
TABLE=$WORK/table
printf 'case\tpgrollout\tbaseline\tratio\tgoal\n' >"$TABLE"
row() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" | tee -a "$TABLE" "$OUT/table.tsv" >&2; }
: >"$OUT/table.tsv"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; } # user+sys
# CPU ticks of the whole PostgreSQL cluster: the postmaster, its live children, and the exited
# ones it reaped (cutime/cstime).
pg_ticks() {
  local pm t p
  pm=$(head -1 "$PGR_STATE_DIR/pg/data/postmaster.pid")
  t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat")
  for p in $(ps -o pid= --ppid "$pm"); do t=$((t + $(cpu_ticks "$p"))); done
  echo "$t"
}
# CPU ticks of the whole machine, all processes (user nice system irq softirq steal of /proc/stat):
# what a runner costs in all, and how close it came to the cores' limit
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
secs() { awk -v t="$1" -v h="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t / h}'; }
kb() { awk '/^'"$2"':/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# --- fixtures ---------------------------------------------------------------------------------
# A template database per scale: tenants are `createdb -T` copies (seconds, not minutes).
template() { # scale -> prints the template's name
  local t=bench_tpl_$1
  if ! psql -X -qtAc "SELECT 1 FROM pg_database WHERE datname = '$t'" | grep -q 1; then
    log "template at scale $1"
    createdb "$t"
    psql -X -q -v ON_ERROR_STOP=1 -d "$t" -f tests/fixtures/white_cross_base.sql >/dev/null
    psql -X -q -v ON_ERROR_STOP=1 -d "$t" -v scale="$1" -f tests/fixtures/white_cross_data.sql \
      >/dev/null
    psql -X -q -d "$t" -c 'VACUUM ANALYZE' >/dev/null
  fi
  echo "$t"
}
tenant() { # name scale: a fresh tenant
  dropdb --if-exists "$1" >/dev/null 2>&1
  createdb -T "$(template "$2")" "$1"
}

# The same statements for psql: every up step's SQL in order, the foreign key as the agent runs
# it (NOT VALID, then VALIDATE) -- outside transactions, as `psql -f` runs a file.
{
  for f in migrations/*.sql; do
    awk '/^-- pgrollout:down/ {exit} !/^--/ && NF {print}' "$f"
    if grep -q 'pgrollout:step foreign_key' "$f"; then
      printf '%s\n' 'ALTER TABLE "medication_logs" ADD CONSTRAINT "fk_medication_logs_medication_id" FOREIGN KEY ("medicationId") REFERENCES "medications" ("id") ON UPDATE CASCADE ON DELETE RESTRICT NOT VALID;' \
        'ALTER TABLE "medication_logs" VALIDATE CONSTRAINT "fk_medication_logs_medication_id";'
    fi
  done
} >"$WORK/baseline.sql"

# Keys and keyrings for the Kafka cases (coordinator key, agent keys a1 a2, simulated agents).
"$BIN"/pgrollout keygen --out "$WORK" --name coord >/dev/null
for a in a1 a2; do "$BIN"/pgrollout keygen --out "$WORK" --name "$a" >/dev/null; done
printf '%s\n' "$(cat "$WORK/coord.pub")" >"$WORK/coordinators.ring"
{
  cat "$WORK/a1.pub"
  cat "$WORK/a2.pub"
} >"$WORK/agents.ring"

coord_ini() { # file control_db prefix
  createdb "$2"
  cat >"$1" <<EOF
[coordinator]
control_dsn = host=$PGHOST port=$PGPORT user=$PGUSER dbname=$2
secret_key = $WORK/coord.key
agent_keyring = $WORK/agents.ring
[topics]
prefix = $3
[kafka]
bootstrap.servers = $PGR_KAFKA_BOOTSTRAP
$(printf '%b' "${PGR_BENCH_COORD_KAFKA:-}")
EOF
}
# Topics exist before agents assign partitions (a metadata request for a topic creates it).
topics() { for t in jobs events audit; do kcat -b "$PGR_KAFKA_BOOTSTRAP" -L -t "$1$t" >/dev/null 2>&1 || true; done; }

# --- signing ----------------------------------------------------------------------------------
case_sign() {
  "$BIN"/bench_sign "$(q 300 2000)" | tee "$OUT/sign.tsv" | while IFS=$'\t' read -r c o b r; do
    row "$c" "$o us" "$b us (libsodium raw)" "$r" "<= 1.2"
  done
}

# --- the two-person rule's cost per job -------------------------------------------------------
case_release() {
  "$BIN"/bench_release "$(q 100 300)" migrations | tee "$OUT/release.tsv" |
    while IFS=$'\t' read -r c o b r; do
      row "$c" "$o us" "$b us (envelope + parse of the job)" "$r" "-"
    done
}

# --- apply overhead ---------------------------------------------------------------------------
apply_rounds() { # scale rounds -> "ours_ms base_ms"
  local s=$1 n=$2 r t0 t1 t2
  : >"$WORK/ours"
  : >"$WORK/base"
  for r in $(seq "$n"); do
    tenant bench_a "$s"
    tenant bench_b "$s"
    # alternate which goes first: the second runs on a warmer cache
    if ((r % 2)); then
      t0=$(now_ms)
      psql -X -q -v ON_ERROR_STOP=1 -d bench_a -f "$WORK/baseline.sql" >/dev/null
      t1=$(now_ms)
      "$BIN"/pgrollout-agent apply --dsn dbname=bench_b --migrations migrations >/dev/null
      t2=$(now_ms)
      echo $((t1 - t0)) >>"$WORK/base"
      echo $((t2 - t1)) >>"$WORK/ours"
    else
      t0=$(now_ms)
      "$BIN"/pgrollout-agent apply --dsn dbname=bench_b --migrations migrations >/dev/null
      t1=$(now_ms)
      psql -X -q -v ON_ERROR_STOP=1 -d bench_a -f "$WORK/baseline.sql" >/dev/null
      t2=$(now_ms)
      echo $((t1 - t0)) >>"$WORK/ours"
      echo $((t2 - t1)) >>"$WORK/base"
    fi
  done
  dropdb bench_a
  dropdb bench_b
  paste -sd' ' "$WORK/ours" >"$OUT/apply_s$s.ours"
  paste -sd' ' "$WORK/base" >"$OUT/apply_s$s.base"
  echo "$(median <"$WORK/ours") $(median <"$WORK/base")"
}
case_apply() {
  local o b
  read -r o b <<<"$(apply_rounds "$SCALE" "$APPLY_ROUNDS")"
  row "apply, 4 migrations, scale $SCALE ($APPLY_ROUNDS rounds)" "$o ms" "$b ms (psql -f)" \
    "$(ratio "$o" "$b")" "<= 1.05 at scale 50"
}

# --- fleet rollout ----------------------------------------------------------------------------
# One round: N fresh tenants for each of pgrollout, the loop, xargs and the agent CLI (the floor
# of the tenant side); the four are timed one after the other, in an order that rotates between
# rounds.
fleet_dbs() { # tag n [template]
  local i tpl
  tpl=${3:-$(template 1)}
  for i in $(seq "$2"); do
    dropdb --if-exists "f_$1_$i" >/dev/null 2>&1
    createdb -T "$tpl" "f_$1_$i"
  done
}
fleet_drop() { for i in $(seq "$2"); do dropdb --if-exists "f_$1_$i"; done; }
# The scale-1 template with the agent's state schema installed (an empty migration directory
# applied): a tenant that pgrollout already manages, as the agents' start makes every fleet
# tenant before the rollout's clock starts.
state_template() {
  local t=bench_tpl_1_state
  if ! psql -X -qtAc "SELECT 1 FROM pg_database WHERE datname = '$t'" | grep -q 1; then
    createdb -T "$(template 1)" "$t"
    mkdir -p "$WORK/no_migrations"
    # a template without its state schema must not be kept for the next run
    "$BIN"/pgrollout-agent apply --dsn "dbname=$t" --migrations "$WORK/no_migrations" \
      >/dev/null || {
      dropdb "$t"
      return 1
    }
  fi
  echo "$t"
}
agent_ini() { # file agent prefix tag first last
  {
    printf '[agent]\nid = %s\nsecret_key = %s/%s.key\nkeyring = %s/coordinators.ring\n' \
      "$2" "$WORK" "$2" "$WORK"
    printf 'heartbeat_ms = 5000\nmax_parallel = 4\n[topics]\nprefix = %s\n' "$3"
    printf '[kafka]\nbootstrap.servers = %s\n%b[tenants]\n' "$PGR_KAFKA_BOOTSTRAP" \
      "${PGR_BENCH_AGENT_KAFKA:-}" # e.g. 'linger.ms = 5\n' (experiments)
    for i in $(seq "$5" "$6"); do
      printf 't%d = host=%s port=%s user=%s dbname=f_%s_%d\n' "$i" "$PGHOST" "$PGPORT" \
        "$PGUSER" "$4" "$i"
    done
  } >"$1"
}
start_agents() { # tag n prefix: a1 serves the first half, a2 the rest (one tenant: a1 only)
  local h=$(($2 / 2)) a agents=(a1 a2)
  ((h > 0)) || agents=(a1)
  ((h > 0)) || h=$2
  agent_ini "$WORK/a1.ini" a1 "$3" "$1" 1 "$h"
  agent_ini "$WORK/a2.ini" a2 "$3" "$1" $((h + 1)) "$2"
  AGENT_PIDS=()
  for a in "${agents[@]}"; do
    "$BIN"/pgrollout-agent run --config "$WORK/$a.ini" >"$WORK/$a.log" 2>&1 &
    AGENT_PIDS+=($!)
  done
  for a in "${agents[@]}"; do
    for _ in $(seq 600); do
      grep -q 'serving' "$WORK/$a.log" && break
      sleep 0.1
    done
    grep -q 'serving' "$WORK/$a.log" || {
      cat "$WORK/$a.log" >&2
      log "agent $a did not start"
      return 1
    }
  done
}
stop_agents() {
  local p
  for p in "${AGENT_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${AGENT_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  AGENT_PIDS=()
}
fleet_ours() { # tag n round -> ms; agent RSS into $WORK/rss
  local tag=$1 n=$2 prefix="$RUN_ID.$1." t0 t1 plan=$WORK/plan_$1.json i
  topics "$prefix"
  coord_ini "$WORK/coord_$tag.ini" "ctl_$tag" "$prefix"
  start_agents "$tag" "$n" "$prefix"
  sleep 2 # idle: heartbeats and the first audit publication done
  echo "idle $(kb "${AGENT_PIDS[0]}" VmRSS) $(kb "${AGENT_PIDS[1]}" VmRSS)" >>"$WORK/rss"
  # the sessions of the agents' start are closed after 5 s idle (agent/connpool.h): the rollout
  # starts on agents in their steady state, without a session to any tenant
  sleep 4
  {
    printf '{"name":"bench-%s","migrations":"%s/migrations","tenants":[' "$tag" "$REPO"
    for i in $(seq "$n"); do printf '%s"t%d"' "$([[ $i == 1 ]] || echo ,)" "$i"; done
    printf '],"waves":[{"name":"all","percent":100,"max_parallel":4}]}\n'
  } >"$plan"
  local kpid k0 p0 a0 b0
  kpid=$(cat "$PGR_STATE_DIR/kafka/kafka.pid")
  k0=$(cpu_ticks "$kpid")
  p0=$(pg_ticks)
  b0=$(busy_ticks)
  a0=$(($(cpu_ticks "${AGENT_PIDS[0]}") + $(cpu_ticks "${AGENT_PIDS[1]}")))
  # PGR_BENCH_PERF=1: `perf record -a` of the whole machine during the rollout (profiling aid)
  local perf_pid=
  if [[ -n ${PGR_BENCH_PERF:-} ]]; then
    perf record -a -q -o "$OUT/perf_$tag.data" >/dev/null 2>&1 &
    perf_pid=$!
    sleep 0.5
  fi
  t0=$(now_ms)
  /usr/bin/time -f '%U %S' -o "$WORK/coord_time" "$BIN"/pgrollout run --config \
    "$WORK/coord_$tag.ini" --plan "$plan" --timeout 1800 >"$WORK/run_$tag.out" 2>&1 || {
    tail -20 "$WORK/run_$tag.out" >&2
    log "fleet rollout $tag failed"
    return 1
  }
  t1=$(now_ms)
  [[ -z $perf_pid ]] || { kill -INT "$perf_pid" && wait "$perf_pid" || true; }
  echo "peak $(kb "${AGENT_PIDS[0]}" VmHWM) $(kb "${AGENT_PIDS[1]}" VmHWM)" >>"$WORK/rss"
  # where the CPU went during the rollout (seconds): tenant and control PostgreSQL, Kafka,
  # the coordinator, both agents
  printf 'ours pg %s kafka %s coordinator %s agents %s busy %s ms %s\n' "$(secs $(($(pg_ticks) - p0)))" \
    "$(secs $(($(cpu_ticks "$kpid") - k0)))" "$(awk '{printf "%.1f", $1 + $2}' "$WORK/coord_time")" \
    "$(secs $(($(cpu_ticks "${AGENT_PIDS[0]}") + $(cpu_ticks "${AGENT_PIDS[1]}") - a0)))" \
    "$(secs $(($(busy_ticks) - b0)))" $((t1 - t0)) >>"$WORK/cpu"
  stop_agents
  cp "$WORK/run_$tag.out" "$WORK/a1.log" "$WORK/a2.log" "$OUT/" 2>/dev/null || true
  [[ -z ${PGR_BENCH_TRACE:-} ]] || kcat -b "$PGR_KAFKA_BOOTSTRAP" -C -e -q -t "${prefix}events" \
    -f '%T %k %s\n' >"$OUT/events_$tag.txt" 2>/dev/null || true
  dropdb "ctl_$tag"
  echo $((t1 - t0))
}
fleet_psql() { # tag n mode(loop|xargs|cli) -> ms
  local t0 t1 p0 b0
  p0=$(pg_ticks)
  b0=$(busy_ticks)
  t0=$(now_ms)
  if [[ $3 == cli ]]; then
    # the floor of the tenant side: the agent's executor with all its records in the tenant
    # database (history, steps, hash-chained audit records) and the check after the last step
    # (--verify) as the agents' apply jobs do, run like the baseline
    seq "$2" | xargs -P4 -I{} "$BIN"/pgrollout-agent apply --verify --dsn "dbname=f_$1_{}" \
      --migrations migrations >/dev/null
  elif [[ $3 == loop ]]; then
    for i in $(seq "$2"); do
      psql -X -q -v ON_ERROR_STOP=1 -d "f_$1_$i" -f "$WORK/baseline.sql" >/dev/null
    done
  else
    seq "$2" | xargs -P4 -I{} psql -X -q -v ON_ERROR_STOP=1 -d "f_$1_{}" \
      -f "$WORK/baseline.sql" >/dev/null
  fi
  t1=$(now_ms)
  printf '%s pg %s busy %s ms %s\n' "$3" "$(secs $(($(pg_ticks) - p0)))" \
    "$(secs $(($(busy_ticks) - b0)))" $((t1 - t0)) >>"$WORK/cpu"
  echo $((t1 - t0))
}
fleet_rounds() { # n rounds -> "ours loop xargs cli" medians; raw figures in $OUT
  local n=$1 rounds=$2 r m
  : >"$WORK/f_ours"
  : >"$WORK/f_loop"
  : >"$WORK/f_xargs"
  : >"$WORK/f_cli"
  : >"$WORK/rss"
  : >"$WORK/cpu"
  # PGR_BENCH_FLEET_MODES: a subset of the runners (profiling one of them); the table's rows of
  # the others are then empty
  local modes
  read -ra modes <<<"${PGR_BENCH_FLEET_MODES:-ours loop xargs cli}"
  for r in $(seq "$rounds"); do
    for m in "${modes[@]}"; do
      if [[ $m == cli ]]; then
        fleet_dbs "${r}c$n" "$n" "$(state_template)"
      else
        fleet_dbs "${r}${m:0:1}$n" "$n"
      fi
    done
    for k in $(seq 0 $((${#modes[@]} - 1))); do
      m=${modes[$(((k + r) % ${#modes[@]}))]}
      log "fleet $n tenants, round $r: $m"
      if [[ $m == ours ]]; then
        fleet_ours "${r}o$n" "$n" >>"$WORK/f_ours"
      else
        fleet_psql "${r}${m:0:1}$n" "$n" "$m" >>"$WORK/f_$m"
      fi
    done
    for m in "${modes[@]}"; do fleet_drop "${r}${m:0:1}$n" "$n"; done
  done
  for m in ours loop xargs cli; do paste -sd' ' "$WORK/f_$m" >"$OUT/fleet_$n.$m"; done
  cp "$WORK/rss" "$OUT/fleet_$n.rss"
  cp "$WORK/cpu" "$OUT/fleet_$n.cpu"
  echo "$(median <"$WORK/f_ours") $(median <"$WORK/f_loop") $(median <"$WORK/f_xargs")" \
    "$(median <"$WORK/f_cli")"
}
case_fleet() {
  local o l x c
  read -r o l x c <<<"$(fleet_rounds "$FLEET" "$(q 2 3)")"
  row "fleet rollout, $FLEET tenants, 2 agents, max_parallel 4 vs xargs -P4" "$o ms" \
    "$x ms (xargs -P4 psql -f)" "$(ratio "$o" "$x")" "<= 1.15"
  row "  the tenant side alone: xargs -P4 pgrollout-agent apply --verify (no Kafka, no coordinator)" \
    "$c ms" "$x ms (xargs -P4 psql -f)" "$(ratio "$c" "$x")" -
  row "fleet rollout, $FLEET tenants vs a shell loop" "$o ms" "$l ms (for ... psql -f)" \
    "$(ratio "$l" "$o") x faster" ">= 3 x faster"
  row "  CPU s per rollout (median): PostgreSQL, Kafka, coordinator, agents" \
    "$(for f in 3 5 7 9; do awk -v f=$f '$1 == "ours" {print $f}' "$WORK/cpu" | median; done |
      paste -sd' ')" "$(awk '$1 == "xargs" {print $3}' "$WORK/cpu" | median) (PostgreSQL)" - -
  # the machine's CPU (every process) per run, and the share of the two cores it kept busy: a
  # runner near 100 % is bound by CPU, not by waiting
  local m busy=()
  for m in ours cli xargs; do
    busy+=("$(awk -v m=$m -v c="$(nproc)" '$1 == m {printf "%s %.0f\n", $(NF - 2), \
      100 * $(NF - 2) / c / ($NF / 1000)}' "$WORK/cpu" | sort -n | awk '{a[NR] = $0} END {
      split(a[int((NR + 1) / 2)], f, " "); printf "%s s (%s %%)", f[1], f[2]}')")
  done
  row "  machine CPU per run, all processes (share of $(nproc) cores): pgrollout; agent CLI" \
    "${busy[0]}; ${busy[1]}" "${busy[2]} (xargs -P4 psql -f)" - -
  local idle peak
  idle=$(awk '$1 == "idle" {m = $2 > m ? $2 : m; m = $3 > m ? $3 : m} END {print m}' "$WORK/rss")
  peak=$(awk '$1 == "peak" {m = $2 > m ? $2 : m; m = $3 > m ? $3 : m} END {print m}' "$WORK/rss")
  row "agent RSS, $((FLEET / 2)) tenants per agent, idle" "$((idle / 1024)) MB" - - "< 32 MB"
  row "agent RSS, $((FLEET / 2)) tenants per agent, peak during the rollout" \
    "$((peak / 1024)) MB" - - "< 32 MB"
}

# --- dispatch latency -------------------------------------------------------------------------
case_dispatch() {
  local prefix="$RUN_ID.d." tag=dsp
  topics "$prefix"
  fleet_dbs "$tag" 1
  start_agents "$tag" 1 "$prefix" # one tenant (t1) on agent a1
  "$BIN"/bench_dispatch --bootstrap "$PGR_KAFKA_BOOTSTRAP" --prefix "$prefix" \
    --key "$WORK/coord.key" --keyring "$WORK/agents.ring" --tenant t1 --jobs "$JOBS" \
    >"$OUT/dispatch.txt"
  stop_agents
  fleet_drop "$tag" 1
  local p50 p99 mx
  read -r p50 p99 mx <<<"$(awk '{print $1}' "$OUT/dispatch.txt" | tail -n +1 |
    sort -n | awk '{a[NR]=$1} END {print a[int(NR*0.5+0.5)], a[int(NR*0.99+0.5)], a[NR]}')"
  row "dispatch latency, $JOBS jobs: publish -> first step started (round trip)" \
    "p50 $p50 ms, p99 $p99 ms (max $mx)" - - "p99 <= 50 ms"
}

# --- audit ingest -----------------------------------------------------------------------------
case_audit() {
  local r
  : >"$OUT/audit.txt"
  for r in $(seq "$(q 2 3)"); do
    local prefix="$RUN_ID.au$r."
    topics "$prefix"
    coord_ini "$WORK/coord_au$r.ini" "ctl_au$r" "$prefix"
    "$BIN"/bench_audit --config "$WORK/coord_au$r.ini" --key "$WORK/a1.key" \
      --collector "${PGR_BENCH_COLLECTOR:-$BIN/pgrollout}" --records "$AUDIT_N" --order $((r % 2)) >"$WORK/audit_$r"
    cat "$WORK/audit_$r" >>"$OUT/audit.txt"
    dropdb "ctl_au$r"
  done
  local ours base
  ours=$(awk '$1 == "collector" {print $2}' "$WORK"/audit_* | median)
  base=$(awk '$1 == "insert" {print $2}' "$WORK"/audit_* | median)
  row "audit ingest, $AUDIT_N records (records/s)" "$ours/s" "$base/s (plain INSERT)" \
    "$(ratio "$ours" "$base")" ">= 20000/s"
  # bound by CPU or not: the collector's own CPU per record, and the cores' busy share (every
  # process: collector, PostgreSQL, Kafka) while it stored
  row "  collector CPU per record; cores busy while it stored (median)" \
    "$(awk '$1 == "collector_cpu" {print $2}' "$WORK"/audit_* | median) us;" \
    "$(awk '$1 == "collector_cpu" {print $3}' "$WORK"/audit_* | median) %" - -
}

# --- 10,000 simulated tenants -----------------------------------------------------------------
case_scale() {
  local prefix="$RUN_ID.s." n=$SIM_TENANTS plan=$WORK/plan_sim.json i
  topics "$prefix"
  coord_ini "$WORK/coord_sim.ini" ctl_sim "$prefix"
  # simulated agents' keys: the sim makes them; the coordinator trusts them
  "$BIN"/bench_fleet_sim --keys "$WORK/sim" --agents 100 --tenants "$n" --keyring-out "$WORK/sim.ring"
  cat "$WORK/sim.ring" >>"$WORK/agents.ring"
  {
    printf '{"name":"bench-sim","migrations":"%s/migrations","tenants":[' "$REPO"
    for i in $(seq "$n"); do printf '%s"s%05d"' "$([[ $i == 1 ]] || echo ,)" "$i"; done
    printf '],"waves":[{"name":"canary","percent":1,"max_parallel":100},'
    printf '{"name":"early","percent":10,"max_parallel":1000},'
    printf '{"name":"rest","percent":100,"max_parallel":10000}]}\n'
  } >"$plan"
  "$BIN"/bench_fleet_sim --keys "$WORK/sim" --agents 100 --tenants "$n" \
    --bootstrap "$PGR_KAFKA_BOOTSTRAP" --prefix "$prefix" --coordinator-keyring \
    "$WORK/coordinators.ring" >"$OUT/sim.txt" 2>"$WORK/sim.err" &
  local sim=$! t0 t1 peak=0 cpid
  sleep 2 # heartbeats out
  local kpid cpu0
  kpid=$(cat "$PGR_STATE_DIR/kafka/kafka.pid")
  cpu0=$(cpu_ticks "$kpid")
  t0=$(now_ms)
  /usr/bin/time -f 'coordinator_cpu_s %U %S' -o "$WORK/coord_time" "$BIN"/pgrollout run \
    --config "$WORK/coord_sim.ini" --plan "$plan" --timeout 1800 >"$WORK/run_sim.out" 2>&1 &
  cpid=$!
  while kill -0 "$cpid" 2>/dev/null; do
    local h c
    c=$(pgrep -P "$cpid" -x pgrollout || true)
    h=$(kb "${c:-0}" VmHWM)
    [[ -n $h && $h -gt $peak ]] && peak=$h
    sleep 0.5
  done
  wait "$cpid" || {
    tail -20 "$WORK/run_sim.out" >&2
    log "simulated rollout failed"
  }
  t1=$(now_ms)
  echo "kafka_cpu_s $((($(cpu_ticks "$kpid") - cpu0) / $(getconf CLK_TCK)))" >>"$WORK/coord_time"
  kill -TERM "$sim" 2>/dev/null || true
  wait "$sim" 2>/dev/null || true
  cat "$WORK/coord_time" >>"$OUT/sim.txt"
  local ms=$((t1 - t0)) jobs events
  jobs=$(awk '$1 == "jobs" {print $2}' "$OUT/sim.txt")
  events=$(awk '$1 == "events" {print $2}' "$OUT/sim.txt")
  echo "coordinator_peak_kb $peak" >>"$OUT/sim.txt"
  echo "rollout_ms $ms" >>"$OUT/sim.txt"
  row "$n simulated tenants, 3 waves: rollout time" "$ms ms" - - "< 60000 ms"
  row "  jobs dispatched/s, events handled/s" \
    "$(awk -v j="$jobs" -v m="$ms" 'BEGIN {printf "%.0f", j * 1000 / m}') jobs/s, $(awk -v e="$events" -v m="$ms" 'BEGIN {printf "%.0f", e * 1000 / m}') events/s" - - -
  row "coordinator RSS following $n tenants (peak)" "$((peak / 1024)) MB" - - "< 64 MB"
  dropdb ctl_sim
}

# --- growth -----------------------------------------------------------------------------------
case_growth() {
  local n o l x c s b
  for n in 10 50; do
    read -r o l x c <<<"$(fleet_rounds "$n" 1)"
    row "growth: fleet $n tenants" "$o ms" "$x ms (xargs -P4), loop $l ms, agent CLI $c ms" \
      "$(ratio "$o" "$x")" -
  done
  for s in 1 10; do
    read -r o b <<<"$(apply_rounds "$s" "$APPLY_ROUNDS")"
    row "growth: apply at scale $s" "$o ms" "$b ms (psql -f)" "$(ratio "$o" "$b")" -
  done
}

log "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); cases: $CASES"
{
  echo "start $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo none)," \
    "$(git status --short --untracked-files=no 2>/dev/null | wc -l) tracked file(s) modified"
} >"$OUT/run.txt"
for c in $CASES; do
  log "case $c"
  "case_$c"
done
echo "end $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/run.txt"
column -t -s $'\t' "$TABLE"
