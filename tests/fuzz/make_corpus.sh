#!/usr/bin/env bash
# Regenerates the committed seed corpora (tests/fuzz/corpus/<target>/) from the project's real
# examples: jobs built from migrations/, the messages of docs/PROTOCOL.md, the plans of
# docs/ROLLOUTS.md. Files that are seeds as they are (tests/fixtures/protocol/, migrations/,
# tests/lint/, deploy/config/) are not copied: run.sh adds them to each run. Envelopes are signed with the
# fixed fuzz keys (tests/fuzz/fuzz_common.h) by fuzz_seed, so they verify inside the targets.
# Regression inputs (corpus/<target>/regress-*) are kept as they are.
#
#   tests/fuzz/make_corpus.sh [BUILD_DIR]     # default: build-fuzz (built by tests/fuzz/run.sh)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=$(realpath -m -- "${1:-$REPO/build-fuzz}")
SEED=$BUILD_DIR/bin/fuzz_seed
OUT=$REPO/tests/fuzz/corpus
[[ -x $SEED ]] || { echo "make_corpus.sh: $SEED missing: run tests/fuzz/run.sh 0 first" >&2; exit 1; }
cd "$REPO"

# reset TARGET: drops generated seeds, keeps regression inputs
reset() {
  mkdir -p "$OUT/$1"
  find "$OUT/$1" -type f ! -name 'regress-*' -delete
}

# sealed TARGET NAME DOMAIN KEY < payload
sealed() { "$SEED" seal "$3" "$4" >"$OUT/$1/$2"; }

# ---- fuzz_envelope: job envelopes and payloads
reset fuzz_envelope
mig=(migrations/*.sql)
"$SEED" job apply 20251106000003 district-001 "${mig[@]}" >"$OUT/fuzz_envelope/apply.json"
"$SEED" job apply 20251106000001 district-001 "${mig[@]}" >"$OUT/fuzz_envelope/apply-target.json"
"$SEED" job rollback 20251106000000 district-001 "${mig[@]}" >"$OUT/fuzz_envelope/rollback.json"
"$SEED" job verify - district-001 "${mig[0]}" >"$OUT/fuzz_envelope/verify.json"
"$SEED" job cancel - district-001 >"$OUT/fuzz_envelope/cancel.json"
for p in apply rollback verify cancel; do
  sealed fuzz_envelope "$p-key0.env" job 0 <"$OUT/fuzz_envelope/$p.json"
done
sealed fuzz_envelope apply-key1.env job 1 <"$OUT/fuzz_envelope/apply-target.json"
sealed fuzz_envelope apply-revoked.env job 2 <"$OUT/fuzz_envelope/apply-target.json"
sealed fuzz_envelope apply-event-domain.env event 0 <"$OUT/fuzz_envelope/verify.json"

# ---- fuzz_event: events and audit records from agents
reset fuzz_event
J=6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f
Z=0000000000000000000000000000000000000000000000000000000000000000
ev() { printf '%s' "$2" >"$OUT/fuzz_event/$1.json"; }
ev heartbeat '{"type":"heartbeat","agent_id":"agent-1","tenant_id":null,"job_id":null,"seq":1,"at":"2025-11-06T12:00:00Z","kid":"0f1e2d3c4b5a6978","tenants":["district-001","district-002"],"tags":{"district-001":"region:eu,tier:canary"},"running":0}'
ev step '{"type":"step","agent_id":"agent-1","tenant_id":"district-001","job_id":"'$J'","seq":5,"at":"2025-11-06T12:00:02Z","version":"20250101000000","step":1,"steps":1,"kind":"sql","object":"sql","state":"done","phi":false}'
ev progress '{"type":"progress","agent_id":"agent-1","tenant_id":"district-001","job_id":"'$J'","seq":6,"at":"2025-11-06T12:00:03Z","version":"20251106000001","step":2,"steps":3,"kind":"index","object":"idx_allergies_student","state":"progress","phi":false,"phase":"building index: scanning table","percent":42.5}'
ev result-apply '{"type":"result","agent_id":"agent-1","tenant_id":"district-001","job_id":"'$J'","seq":7,"at":"2025-11-06T12:00:04Z","job_type":"apply","outcome":"succeeded","code":"ok","message":null,"version":"20251106000003","from_version":"0"}'
ev result-rollback '{"type":"result","agent_id":"agent-1","tenant_id":"district-002","job_id":"'$J'","seq":8,"at":"2025-11-06T12:00:05Z","job_type":"rollback","outcome":"succeeded","code":"ok","message":null,"version":"20251106000000","from_version":null}'
ev result-failed '{"type":"result","agent_id":"agent-1","tenant_id":"district-001","job_id":"'$J'","seq":9,"at":"2025-11-06T12:00:06Z","job_type":"apply","outcome":"failed","code":"db","message":"lock timeout on \"allergies\"","version":"20251106000001","from_version":"20251106000000"}'
ev security '{"type":"security","agent_id":"agent-1","tenant_id":"district-001","job_id":"'$J'","seq":9,"at":"2025-11-06T14:00:00Z","reason":"expired","kid":"56475aa75463474c","detail":"the job has expired"}'
ev foreign-tenant '{"type":"step","agent_id":"agent-9","tenant_id":"district-009","job_id":"'$J'","seq":1,"step":1,"steps":1}'
rec1='{"action":"agent_start","agent_id":"agent-1","at":"2026-11-25T15:10:02.403Z","job_id":"ac0dc3e2-4207-4143-bb18-e42449e2bdc2","kid":"ce5bb369526acb6f","operator":"agent","prev_hash":"'$Z'","seq":1,"tenant_id":"district-001"}'
printf '%s' "$rec1" | "$SEED" audit district-001 1 "$Z" >"$OUT/fuzz_event/audit-1.json"
h1=$(sed 's/.*"hash":"\([0-9a-f]*\)".*/\1/' "$OUT/fuzz_event/audit-1.json")
rec2='{"action":"job_accepted","agent_id":"agent-1","at":"2025-11-06T12:00:01.250Z","job_id":"'$J'","job_seq":1,"kid":"56475aa75463474c","operator":"alice@example.org","prev_hash":"'$h1'","seq":2,"tenant_id":"district-001","type":"apply"}'
printf '%s' "$rec2" | "$SEED" audit district-001 2 "$h1" >"$OUT/fuzz_event/audit-2.json"
for f in heartbeat step progress result-apply result-rollback result-failed security foreign-tenant; do
  sealed fuzz_event "$f-key1.env" event 1 <"$OUT/fuzz_event/$f.json"
done
sealed fuzz_event result-apply-key0.env event 0 <"$OUT/fuzz_event/result-apply.json"
sealed fuzz_event audit-1-key1.env audit 1 <"$OUT/fuzz_event/audit-1.json"
sealed fuzz_event audit-2-key1.env audit 1 <"$OUT/fuzz_event/audit-2.json"
sealed fuzz_event audit-2-key0.env audit 0 <"$OUT/fuzz_event/audit-2.json"
sealed fuzz_event audit-1-revoked.env audit 2 <"$OUT/fuzz_event/audit-1.json"

# ---- fuzz_migration: migrations/*.sql and tests/lint/ are seeds where they are (run.sh)
reset fuzz_migration

# ---- fuzz_release: the worked example is a seed where it is (run.sh); an unsigned manifest
# scoped by tags, and one by tenants with a prefix
reset fuzz_release
release_seed() { # NAME SCOPE
  local p
  p='{"created_at":"2025-11-06T12:00:00Z","expires_at":"2025-11-07T12:00:00Z","from":"20251106000000","migrations":[{"name":"a","sha256":"0c93209c4d2498e1b1482ddaa00eb09e041544e3fbcedb872b86d63fb627111f","version":"20251106000001"}],"release_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","scope":'"$2"',"to":"20251106000001","type":"pgrollout-release/v1"}'
  printf '{"v":1,"payload":"%s","signatures":[]}\n' "$(printf '%s' "$p" | base64 -w0)" >"$OUT/fuzz_release/$1"
}
release_seed tags-unsigned.json '{"tags":{"region":"eu"}}'
release_seed tenants-unsigned.json '{"tenants":["district-001","eu-*"]}'

# ---- fuzz_config: deploy/config/*.ini.example are seeds where they are (run.sh)
reset fuzz_config
# every section kind at once, with comments, quoting and a continuation line
cat >"$OUT/fuzz_config/all-sections.ini" <<'INI'
; agent and coordinator keys together
[agent]
id = agent-1
secret_key = /etc/pgrollout/agent.key
keyring = /etc/pgrollout/coordinators.keyring
state_dir = /var/lib/pgrollout
lock_timeout_ms = 5000
statement_timeout_ms = 0
retries = 5
heartbeat_ms = 5000
verify_interval_ms = 10000
max_job_bytes = 4194304
max_parallel = 4
[coordinator]
id = coordinator-1
control_dsn = host=127.0.0.1 port=5432 dbname=control user=pgrollout password=secret
agent_keyring = /etc/pgrollout/agents.keyring
[topics]
prefix = pgrollout.
[log]
level = debug
format = json
[kafka]
bootstrap.servers = 127.0.0.1:9092
security.protocol = plaintext
[tenants]
district-001 = postgresql://app:secret@127.0.0.1:5432/district_001?sslmode=disable
district-002 = host=127.0.0.1 dbname=district_002 password='it''s secret'
[tenant_tags]
district-001 = region:eu,tier:canary
district-002 = region:us,tier:gold
INI
# tenant sources: libpq quoting, a pattern with a suffix, both placeholders, the agent's keys
cat >"$OUT/fuzz_config/tenant-sources.ini" <<'INI'
[agent]
id = agent-1
pool = eu
discover_interval_ms = 1000
max_tenants = 500
key_tenants = district-*,special
[tenant_sources]
eu1 = host=127.0.0.1 user=agent password='it\'s' dbname_pattern=district_% id=district-{suffix} tags=region:eu
all = dbname=admin dbname_pattern=%_prod id={name}
INI

# keyrings (the same target parses them): the PROTOCOL.md test key with every option
pub=$(cat tests/fixtures/protocol/example.pub)
printf '# trusted coordinators\n%s name=coordinator-1 tenants=district-001,district-002\n\n  %s revoked # old\n' \
  "$pub" "$pub" >"$OUT/fuzz_config/keyring-twice.keyring"
printf '%s tenants=district-001 name=agent-1\n' "$pub" >"$OUT/fuzz_config/keyring.keyring"

# ---- fuzz_plan: every JSON block of docs/ROLLOUTS.md (plan.json.example is used in place)
reset fuzz_plan
awk -v out="$OUT/fuzz_plan" '/^```json/ { n++; f = 1; next } /^```/ { f = 0 }
  f { print > (out "/rollouts-md-" n ".json") }' docs/ROLLOUTS.md
# a wave of each kind, and the defaults (no waves: one wave of every tenant)
cat >"$OUT/fuzz_plan/all-kinds.json" <<'JSON'
{"name": "kinds", "migrations": "migrations", "target": "20251106000003", "type": "apply",
 "tenants": ["district-001", "district-002", "district-003", "district-004"],
 "options": {"lock_timeout_ms": 1, "statement_timeout_ms": 86400000, "retries": 0,
             "orphans": "quarantine", "backup": false},
 "waves": [{"name": "canary", "tenants": ["district-003"], "approval": "manual"},
           {"name": "gold", "tags": {"tier": "gold"}},
           {"name": "rest", "percent": 100, "max_failure_ratio": 1, "soak_seconds": 86400}],
 "on_failure": "rollback", "job_ttl_seconds": 60}
JSON
printf '%s' '{"name":"all","migrations":"migrations","tenants":["district-001"],"type":"rollback","on_failure":"abort"}' >"$OUT/fuzz_plan/no-waves.json"

# ---- fuzz_sqltext: one seed per scanner rule (migrations/*.sql and tests/lint/ are used in place)
reset fuzz_sqltext
sq() { printf "$2" >"$OUT/fuzz_sqltext/$1.sql"; }
sq cr-comment 'CREATE INDEX CONCURRENTLY i ON t (c); -- x\rDROP TABLE students;\n'
sq nested-comment 'SELECT 1 /* a /* b */ ; */ ; /*/ x */\n'
sq dollar-tags 'DO $body$ BEGIN EXECUTE $q$x$q$; $x$ $$; END $body$; SELECT $1, a$$b, $_9$;$_9$;\n'
sq escape-string "SELECT E'\\\\'';', e'\\\\\\\\', 'a\\\\'' ; x --';\n"
sq unicode "SELECT U&'d\\\\0061t;' UESCAPE '!', U&\"a;\"\"b\", b'01', X'ff', N'n';\n"
sq quoted-ident 'CREATE INDEX "i;--" ON "t""/*" ("c;");\n'
sq continuation "SELECT 'a' -- c\n  'b', E'x'\n'\\\\'; y';\n"
sq whitespace 'SELECT\t1\f;\v\r\n;;\n'
sq unterminated "SELECT 'open; /* \"x $t$\n"

for d in "$OUT"/*/; do
  printf 'make_corpus.sh: %s: %s seeds\n' "$(basename "$d")" "$(find "$d" -type f | wc -l)" >&2
done
