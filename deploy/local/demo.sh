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
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
SCALE=${PGR_DEMO_SCALE:-2}
BUILD=${PGR_BUILD_DIR:-$REPO/build-demo}
export PGR_STATE_DIR=${PGR_STATE_DIR:-$REPO/deploy/local/.state-demo}
export PGR_SERVICES=postgres
WORK=$(mktemp -d /tmp/pgrollout-demo.XXXXXX)
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
  printf '%s tenants=district-001,district-002\n' "$(cat "$WORK/agent1.pub")"
  printf '%s tenants=district-003\n' "$(cat "$WORK/agent2.pub")"
} >"$WORK/agents.ring"

say "three tenant databases (scale $SCALE); district-002 has 5 orphan medication_logs rows"
for t in 1 2 3; do
  createdb "demo_district_00$t"
  psql -X -q -v ON_ERROR_STOP=1 -d "demo_district_00$t" -f tests/fixtures/white_cross_base.sql
  psql -X -q -v ON_ERROR_STOP=1 -d "demo_district_00$t" -v scale="$SCALE" \
    -v orphans=$([[ $t == 2 ]] && echo 5 || echo 0) -f tests/fixtures/white_cross_data.sql
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
agent_conf agent-1 district-001 district-002 >"$WORK/agent1.ini"
agent_conf agent-2 district-003 >"$WORK/agent2.ini"
printf '[coordinator]\ncontrol_dsn = dbname=demo_control\nsecret_key = %s/coordinator.key\n' \
  "$WORK" >"$WORK/coordinator.ini"
printf 'agent_keyring = %s/agents.ring\n[kafka]\nbootstrap.servers = %s\n' "$WORK" "$BOOTSTRAP" \
  >>"$WORK/coordinator.ini"

say "starting two agents (pgrollout-agent run --config ...)"
"$AGENT" run --config "$WORK/agent1.ini" 2>"$WORK/agent1.log" &
PIDS+=($!)
"$AGENT" run --config "$WORK/agent2.ini" 2>"$WORK/agent2.log" &
PIDS+=($!)

say "pgrollout lint migrations/"
"$PGR" lint migrations
say "pgrollout plan --migrations migrations"
"$PGR" plan --migrations migrations

cat >"$WORK/plan.json" <<EOF2
{ "name": "white-cross-demo", "migrations": "migrations", "target": "20251106000003",
  "options": { "orphans": "quarantine", "lock_timeout_ms": 5000, "retries": 5 },
  "tenants": ["district-001", "district-002", "district-003"] }
EOF2
say "pgrollout run --plan plan.json (signed jobs out, signed events back)"
"$PGR" run --config "$WORK/coordinator.ini" --plan "$WORK/plan.json" --operator demo

say "pgrollout status white-cross-demo"
"$PGR" status white-cross-demo --config "$WORK/coordinator.ini"
say "pgrollout tenants list (from signed heartbeats)"
"$PGR" tenants list --config "$WORK/coordinator.ini"
for t in 1 2 3; do
  say "verify district-00$t (indexes valid and as written, FK validated, extensions)"
  "$AGENT" verify --dsn "dbname=demo_district_00$t" --migrations migrations
done
psql -X -At -d demo_district_002 -c \
  "SELECT 'district-002 quarantined rows: ' || count(*) FROM pgrollout_quarantine.medication_logs"
say "district-002 audit trail (hash chain in pgrollout.audit_outbox): last 5 records"
psql -X -At -d demo_district_002 -c "SELECT seq || ' ' || left(hash, 16) || ' ' ||
  (record::jsonb->>'action') || ' ' || coalesce(record::jsonb->>'object', '')
  FROM pgrollout.audit_outbox ORDER BY seq DESC LIMIT 5"
say "demo finished"
