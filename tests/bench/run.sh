#!/usr/bin/env bash
# Benchmarks, each case against its baseline in the same run (alternating, several rounds,
# medians). Prints one table; docs/BENCHMARKS.md records the results and this command.
#
#   tests/bench/run.sh [--quick]
#
# Cases so far (issue 8 lists more):
#   signing        envelope seal/open vs libsodium crypto_sign_detached/verify (20 KB payload)
#   apply overhead the four migrations through `pgrollout-agent apply` vs `psql -f` of the same
#                  statements (concurrent builds, same order), on fresh tenants at a given scale
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
QUICK=0
[[ ${1:-} == --quick ]] && QUICK=1
SCALE=${PGR_BENCH_SCALE:-$([[ $QUICK == 1 ]] && echo 5 || echo 50)}
ROUNDS=${PGR_BENCH_ROUNDS:-3}
BUILD=${PGR_BENCH_BUILD_DIR:-$REPO/build-bench}
export PGR_STATE_DIR=${PGR_BENCH_STATE_DIR:-$REPO/deploy/local/.state-bench}
export PGR_SERVICES=postgres
WORK=$(mktemp -d /tmp/pgrollout-bench.XXXXXX)
trap 'deploy/local/services.sh down >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

deploy/local/services.sh deps cmake ninja-build gcc >&2
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" >/dev/null
eval "$(deploy/local/services.sh up)"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now_ms() { date +%s%3N; }

printf 'case\tpgrollout\tbaseline\tratio\n'
"$BUILD"/bin/bench_sign $([[ $QUICK == 1 ]] && echo 300 || echo 2000) |
  awk -F'\t' '{printf "%s\t%s us\t%s us\t%s\n", $1, $2, $3, $4}'

# The same statements for psql: every up step's SQL in order, the foreign key as the agent runs it
# (NOT VALID, then VALIDATE) -- outside transactions, as `psql -f` runs a file.
{
  for f in migrations/*.sql; do
    awk '/^-- pgrollout:down/ {exit} !/^--/ && NF {print}' "$f"
    if grep -q 'pgrollout:step foreign_key' "$f"; then
      printf '%s\n' 'ALTER TABLE "medication_logs" ADD CONSTRAINT "fk_medication_logs_medication_id" FOREIGN KEY ("medicationId") REFERENCES "medications" ("id") ON UPDATE CASCADE ON DELETE RESTRICT NOT VALID;' \
        'ALTER TABLE "medication_logs" VALIDATE CONSTRAINT "fk_medication_logs_medication_id";'
    fi
  done
} >"$WORK/baseline.sql"

tenant() { # name: a fresh tenant at $SCALE
  dropdb --if-exists "$1" >/dev/null 2>&1
  createdb "$1"
  psql -X -q -v ON_ERROR_STOP=1 -d "$1" -f tests/fixtures/white_cross_base.sql
  psql -X -q -v ON_ERROR_STOP=1 -d "$1" -v scale="$SCALE" -f tests/fixtures/white_cross_data.sql
  psql -X -q -d "$1" -c 'VACUUM ANALYZE'
}
: >"$WORK/ours"
: >"$WORK/base"
for r in $(seq "$ROUNDS"); do
  tenant bench_a
  tenant bench_b
  t0=$(now_ms)
  psql -X -q -v ON_ERROR_STOP=1 -d bench_a -f "$WORK/baseline.sql" >/dev/null
  t1=$(now_ms)
  "$BUILD"/bin/pgrollout-agent apply --dsn dbname=bench_b --migrations migrations >/dev/null
  t2=$(now_ms)
  echo $((t1 - t0)) >>"$WORK/base"
  echo $((t2 - t1)) >>"$WORK/ours"
done
b=$(median <"$WORK/base")
o=$(median <"$WORK/ours")
printf 'apply overhead (scale %s, %s rounds)\t%s ms\t%s ms\t%s\n' "$SCALE" "$ROUNDS" "$o" "$b" \
  "$(awk -v o="$o" -v b="$b" 'BEGIN {printf "%.2f", o / b}')"
