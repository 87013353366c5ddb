#!/usr/bin/env bash
# The main job on an embedded default: a signed rollout of the four White Cross migrations to
# three tenant databases behind two agents, over an embedded Kafka (librdkafka's in-memory mock
# cluster, `pgrollout dev-kafka`: no JVM, nothing durable, demo only) and a throwaway
# PostgreSQL 15. It builds pgrollout, makes keys and keyrings, creates the tenants from the test
# fixtures (district-002 has orphan medication_logs rows, quarantined by the plan's policy),
# starts the agents, lints and plans, runs the rollout with live progress, then shows status,
# heartbeat-known tenants, a catalog verify of every tenant and the tail of an audit chain.
# Everything it starts is stopped again at the end.
#
#   deploy/local/demo.sh                    # scale 2 tenants
#   PGR_DEMO_SCALE=20 deploy/local/demo.sh  # bigger tenants (progress percentages show)
#   PGR_DEMO_BUILD_DIR, PGR_DEMO_STATE_DIR    # where it builds and keeps its PostgreSQL
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
SCALE=${PGR_DEMO_SCALE:-2}
# Its own build and state dirs, never the test run's (tests/run.sh exports PGR_STATE_DIR and
# runs this script as the `demo` test while its own services are up).
BUILD=${PGR_DEMO_BUILD_DIR:-$REPO/build-demo}
export PGR_STATE_DIR=${PGR_DEMO_STATE_DIR:-$REPO/deploy/local/.state-demo}
export PGR_SERVICES=postgres
WORK=$(mktemp -d /tmp/pgrollout-demo.XXXXXX)
TENANTS=()
for t in $(seq -w 1 12); do TENANTS+=("district-0$t"); done
PIDS=()
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  deploy/local/services.sh down >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

deploy/local/services.sh deps cmake ninja-build gcc >&2
say "building pgrollout into $BUILD"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" >/dev/null
PGR=$BUILD/bin/pgrollout
AGENT=$BUILD/bin/pgrollout-agent
eval "$(deploy/local/services.sh up)"

say "embedded Kafka: pgrollout dev-kafka (librdkafka mock cluster, in memory)"
"$PGR" dev-kafka >"$WORK/kafka.addr" 2>"$WORK/kafka.log" &
PIDS+=($!)
for _ in $(seq 50); do [[ -s $WORK/kafka.addr ]] && break; sleep 0.1; done
BOOTSTRAP=$(head -1 "$WORK/kafka.addr")
echo "bootstrap: $BOOTSTRAP"

say "keys: a coordinator key and one key per agent (secret files mode 0600)"
for k in coordinator agent1 agent2; do "$PGR" keygen --out "$WORK" --name "$k"; done
cp "$WORK/coordinator.pub" "$WORK/coordinators.ring"
{
  printf '%s tenants=%s\n' "$(cat "$WORK/agent1.pub")" "$(IFS=,; echo "${TENANTS[*]:0:6}")"
  printf '%s tenants=%s\n' "$(cat "$WORK/agent2.pub")" "$(IFS=,; echo "${TENANTS[*]:6:6}")"
} >"$WORK/agents.ring"
say "release keys: two people (alice, bob) release migrations apart from the coordinator"
for k in release-alice release-bob; do "$PGR" keygen --out "$WORK" --name "$k"; done
cat "$WORK/release-alice.pub" "$WORK/release-bob.pub" >"$WORK/release.ring"
# keyrings are trust anchors: pgrollout refuses them when group or others may write them
chmod 0644 "$WORK/coordinators.ring" "$WORK/agents.ring" "$WORK/release.ring"

say "twelve tenant databases (scale $SCALE); district-002 has 5 orphan medication_logs rows"
for t in "${TENANTS[@]}"; do
  db=demo_${t/-/_}
  createdb "$db"
  psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f tests/fixtures/white_cross_base.sql
  psql -X -q -v ON_ERROR_STOP=1 -d "$db" -v scale="$SCALE" \
    -v orphans=$([[ $t == district-002 ]] && echo 5 || echo 0) -f tests/fixtures/white_cross_data.sql
done
createdb demo_control

agent_conf() { # id, tenants...
  local id=$1
  shift
  printf '[agent]\nid = %s\nsecret_key = %s/%s.key\nkeyring = %s/coordinators.ring\n' \
    "$id" "$WORK" "${id/-/}" "$WORK"
  printf 'state_dir = %s\nheartbeat_ms = 2000\n[kafka]\nbootstrap.servers = %s\n[tenants]\n' \
    "$WORK" "$BOOTSTRAP"
  local t
  for t in "$@"; do printf '%s = dbname=demo_%s\n' "$t" "${t/-/_}"; done
}
release_conf() { printf '[release]\nkeyring = %s/release.ring\nthreshold = 2\n' "$WORK"; }
{ agent_conf agent-1 "${TENANTS[@]:0:6}"; release_conf; } >"$WORK/agent1.ini"
{ agent_conf agent-2 "${TENANTS[@]:6:6}"; release_conf; } >"$WORK/agent2.ini"
printf '[coordinator]\ncontrol_dsn = dbname=demo_control\nsecret_key = %s/coordinator.key\n' \
  "$WORK" >"$WORK/coordinator.ini"
printf 'agent_keyring = %s/agents.ring\n[kafka]\nbootstrap.servers = %s\n' "$WORK" "$BOOTSTRAP" \
  >>"$WORK/coordinator.ini"
release_conf >>"$WORK/coordinator.ini"

say "starting two agents (pgrollout-agent run --config ...)"
"$AGENT" run --config "$WORK/agent1.ini" 2>"$WORK/agent1.log" &
PIDS+=($!)
"$AGENT" run --config "$WORK/agent2.ini" 2>"$WORK/agent2.log" &
PIDS+=($!)

say "pgrollout lint migrations/"
"$PGR" lint migrations
say "pgrollout plan --migrations migrations"
"$PGR" plan --migrations migrations

say "alice releases the four migrations (pgrollout release sign), bob cosigns: two of two"
"$PGR" release sign --key "$WORK/release-alice.key" --migrations migrations \
  --to 20251106000003 --expires 7d --out "$WORK/release.json"
"$PGR" release cosign --key "$WORK/release-bob.key" "$WORK/release.json"
"$PGR" release show "$WORK/release.json"
"$PGR" release verify "$WORK/release.json" --keyring "$WORK/release.ring" --migrations migrations

TENANT_JSON=$(printf '"%s",' "${TENANTS[@]}")
cat >"$WORK/plan.json" <<EOF2
{ "name": "white-cross-demo", "migrations": "migrations", "target": "20251106000003",
  "tenants": [${TENANT_JSON%,}], "releases": ["release.json"],
  "options": { "orphans": "abort", "lock_timeout_ms": 5000, "retries": 3 },
  "waves": [
    { "name": "canary", "tenants": ["district-002"], "max_failures": 0 },
    { "name": "early",  "percent": 50,  "max_parallel": 2 },
    { "name": "rest",   "percent": 100, "max_parallel": 4 } ],
  "on_failure": "pause" }
EOF2
say "the plan: three waves, canary first (district-002, which has orphan rows)"
cat "$WORK/plan.json"
say "pgrollout run --plan plan.json: the canary's foreign key step finds the orphans"
set +e
"$PGR" run --config "$WORK/coordinator.ini" --plan "$WORK/plan.json" --operator demo
rc=$?
set -e
echo "exit code $rc (4 = paused: failure budget exceeded)"
say "pgrollout status white-cross-demo: nothing after the canary got a job"
"$PGR" status white-cross-demo --config "$WORK/coordinator.ini"
say "operator decision: quarantine district-002's orphans (copied to pgrollout_quarantine, audited)"
"$AGENT" apply --dsn dbname=demo_district_002 --migrations migrations --orphans quarantine \
  --operator demo --tenant district-002
say "pgrollout resume white-cross-demo"
"$PGR" resume white-cross-demo --config "$WORK/coordinator.ini" --operator demo

say "pgrollout status white-cross-demo"
"$PGR" status white-cross-demo --config "$WORK/coordinator.ini"
say "pgrollout tenants list (from signed heartbeats)"
"$PGR" tenants list --config "$WORK/coordinator.ini"
say "verify every tenant (indexes valid and as written, FK validated, extensions)"
for t in "${TENANTS[@]}"; do
  printf '%s: ' "$t"
  "$AGENT" verify --dsn "dbname=demo_${t/-/_}" --migrations migrations
done
psql -X -At -d demo_district_002 -c \
  "SELECT 'district-002 quarantined rows: ' || count(*) FROM pgrollout_quarantine.medication_logs"
say "central audit trail: collect the agents' signed records, verify every chain, anchor"
"$PGR" audit collect --config "$WORK/coordinator.ini" --idle-exit 10
"$PGR" audit verify --config "$WORK/coordinator.ini"
"$PGR" audit anchor --config "$WORK/coordinator.ini" | head -5
say "district-002's audit trail, last 5 records"
"$PGR" audit export --config "$WORK/coordinator.ini" --tenant district-002 --format csv | tail -5
say "HTML report"
"$PGR" report white-cross-demo --config "$WORK/coordinator.ini" \
  --html "$REPO/deploy/local/demo-report.html"
say "demo finished: report in deploy/local/demo-report.html; everything else was cleaned up"
