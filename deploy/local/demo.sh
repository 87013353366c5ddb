#!/usr/bin/env bash
# The main job on an embedded default: build pgrollout, start a throwaway PostgreSQL 15 (and the
# local Kafka broker) with deploy/local/services.sh, create a White Cross tenant from the test
# fixtures, then lint, plan, apply the four migrations with pgrollout-agent, show status, verify
# the catalog and the audit chain, roll back, and tear everything down again.
#
#   deploy/local/demo.sh              # scale 5 tenant (~60k rows)
#   PGR_DEMO_SCALE=20 deploy/local/demo.sh
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
SCALE=${PGR_DEMO_SCALE:-5}
export PGR_STATE_DIR=${PGR_STATE_DIR:-$REPO/deploy/local/.state-demo}
BUILD=${PGR_BUILD_DIR:-$REPO/build}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

deploy/local/services.sh deps cmake ninja-build gcc >&2
say "building into $BUILD"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" >/dev/null
trap 'deploy/local/services.sh down >/dev/null 2>&1 || true' EXIT
eval "$(deploy/local/services.sh up)"

say "a tenant database: White Cross base schema + synthetic data (scale $SCALE, 5 orphan rows)"
createdb demo_tenant
psql -X -q -v ON_ERROR_STOP=1 -d demo_tenant -f tests/fixtures/white_cross_base.sql
psql -X -q -v ON_ERROR_STOP=1 -d demo_tenant -v scale="$SCALE" -v orphans=5 \
  -f tests/fixtures/white_cross_data.sql
psql -X -At -d demo_tenant -c "SELECT 'medication_logs rows: ' || count(*) FROM medication_logs"

say "pgrollout lint migrations/"
"$BUILD"/bin/pgrollout lint migrations
say "pgrollout plan --migrations migrations"
"$BUILD"/bin/pgrollout plan --migrations migrations

AGENT=("$BUILD"/bin/pgrollout-agent)
say "apply with the default orphan policy (abort): refused, nothing changed"
"${AGENT[@]}" apply --dsn dbname=demo_tenant --migrations migrations --operator demo || true
say "apply with --orphans quarantine"
"${AGENT[@]}" apply --dsn dbname=demo_tenant --migrations migrations --operator demo \
  --orphans quarantine
say "status"
"${AGENT[@]}" status --dsn dbname=demo_tenant --migrations migrations
say "verify (indexes valid and as written, foreign key validated, extensions present)"
"${AGENT[@]}" verify --dsn dbname=demo_tenant --migrations migrations
psql -X -At -d demo_tenant -c "SELECT 'quarantined rows: ' || count(*) FROM pgrollout_quarantine.medication_logs"
say "audit trail (hash chain in pgrollout.audit_outbox): last 5 records"
psql -X -At -d demo_tenant -c "SELECT seq || ' ' || left(hash, 16) || ' ' || (record::jsonb->>'action') || ' ' || coalesce(record::jsonb->>'object', '') FROM pgrollout.audit_outbox ORDER BY seq DESC LIMIT 5"
say "rollback --to 0"
"${AGENT[@]}" rollback --dsn dbname=demo_tenant --migrations migrations --to 0 --operator demo
"${AGENT[@]}" status --dsn dbname=demo_tenant --migrations migrations
say "demo finished"
