/*
 * schema.c - the control database's schema (schema.h), installed by the coordinator on start and
 * upgraded in place by ALTER TABLE ... ADD COLUMN IF NOT EXISTS.
 */
#include "schema.h"

#include "pgr/pg.h"

#include <string.h>

/* The newest version control_ddl installs (its last INSERT must list it). */
#define CONTROL_SCHEMA_VERSION "7"

static const char *const control_ddl =
    "CREATE SCHEMA IF NOT EXISTS pgrollout_control;"
    "CREATE TABLE IF NOT EXISTS pgrollout_control.schema_version (version int PRIMARY KEY);"
    "CREATE TABLE IF NOT EXISTS pgrollout_control.tenants ("
    " tenant_id text PRIMARY KEY, agent_id text, agent_kid text, last_seen timestamptz, tags text,"
    " next_seq bigint NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS pgrollout_control.rollouts ("
    " rollout_id text PRIMARY KEY, plan jsonb NOT NULL, state text NOT NULL, operator text,"
    " created_at timestamptz NOT NULL DEFAULT now(),"
    " updated_at timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE IF NOT EXISTS pgrollout_control.tenant_runs ("
    " rollout_id text NOT NULL, tenant_id text NOT NULL, job_id text UNIQUE, wave int NOT NULL"
    " DEFAULT 0, seq bigint, state text NOT NULL, version text, step int, steps int, object text,"
    " percent double precision, error text, agent_id text, job_type text, from_version text,"
    " updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (rollout_id, tenant_id));"
    "CREATE TABLE IF NOT EXISTS pgrollout_control.rollout_waves ("
    " rollout_id text NOT NULL, idx int NOT NULL, name text NOT NULL, state text NOT NULL,"
    " soak_until timestamptz, approved_by text, approved_at timestamptz,"
    " started_at timestamptz, finished_at timestamptz, PRIMARY KEY (rollout_id, idx));"
    "CREATE TABLE IF NOT EXISTS pgrollout_control.operator_log ("
    " id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), rollout_id text NOT NULL,"
    " action text NOT NULL, wave text, operator text NOT NULL, detail text);"
    "CREATE TABLE IF NOT EXISTS pgrollout_control.job_outbox ("
    " job_id text PRIMARY KEY, tenant_id text NOT NULL, envelope text NOT NULL,"
    " created_at timestamptz NOT NULL DEFAULT now(), sent_at timestamptz);"
    "CREATE TABLE IF NOT EXISTS pgrollout_control.events ("
    " id bigserial PRIMARY KEY, agent_id text, tenant_id text, job_id text, type text NOT NULL,"
    " payload jsonb NOT NULL, digest text UNIQUE,"
    " received_at timestamptz NOT NULL DEFAULT now());"
    /* the central audit record: append-only, each (tenant, seq) once */
    "CREATE TABLE IF NOT EXISTS pgrollout_control.audit_log ("
    " tenant_id text NOT NULL, seq bigint NOT NULL, prev_hash text NOT NULL,"
    " hash text NOT NULL, record text NOT NULL, kid text NOT NULL, envelope text NOT NULL,"
    " received_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (tenant_id, seq));"
    "CREATE TABLE IF NOT EXISTS pgrollout_control.audit_alerts ("
    " id bigserial PRIMARY KEY, tenant_id text, seq bigint, kind text NOT NULL,"
    " detail text NOT NULL, at timestamptz NOT NULL DEFAULT now());"
    "CREATE OR REPLACE FUNCTION pgrollout_control.audit_log_append_only() RETURNS trigger"
    " LANGUAGE plpgsql AS $f$ BEGIN RAISE EXCEPTION 'pgrollout_control.% is"
    " append-only: % refused', TG_TABLE_NAME, TG_OP; END $f$;"
    "CREATE OR REPLACE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON"
    " pgrollout_control.audit_log FOR EACH ROW EXECUTE FUNCTION"
    " pgrollout_control.audit_log_append_only();"
    "CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON"
    " pgrollout_control.audit_log FOR EACH STATEMENT EXECUTE FUNCTION"
    " pgrollout_control.audit_log_append_only();"
    "CREATE OR REPLACE TRIGGER operator_log_no_change BEFORE UPDATE OR DELETE ON"
    " pgrollout_control.operator_log FOR EACH ROW EXECUTE FUNCTION"
    " pgrollout_control.audit_log_append_only();"
    "CREATE OR REPLACE TRIGGER operator_log_no_truncate BEFORE TRUNCATE ON"
    " pgrollout_control.operator_log FOR EACH STATEMENT EXECUTE FUNCTION"
    " pgrollout_control.audit_log_append_only();"
    /* columns added after version 2: control databases created before get them here */
    "ALTER TABLE pgrollout_control.tenant_runs ADD COLUMN IF NOT EXISTS job_type text,"
    " ADD COLUMN IF NOT EXISTS from_version text, ADD COLUMN IF NOT EXISTS wave int NOT NULL"
    " DEFAULT 0;"
    "ALTER TABLE pgrollout_control.tenants ADD COLUMN IF NOT EXISTS tags text;"
    /* version 4: when the apply job's own check passed (the wave gate sends no verify job) */
    "ALTER TABLE pgrollout_control.tenant_runs ADD COLUMN IF NOT EXISTS verified_at timestamptz;"
    "ALTER TABLE pgrollout_control.events ADD COLUMN IF NOT EXISTS digest text UNIQUE;"
    /* every event finds its run by job id, every dispatch its wave's pending runs, every
     * publication the unsent jobs: without these each was a scan of the whole table (docs/
     * BENCHMARKS.md, 10,000 tenants) */
    "CREATE INDEX IF NOT EXISTS tenant_runs_job_id ON pgrollout_control.tenant_runs (job_id);"
    "CREATE INDEX IF NOT EXISTS tenant_runs_wave_state ON pgrollout_control.tenant_runs"
    " (rollout_id, wave, state, tenant_id);"
    "CREATE INDEX IF NOT EXISTS job_outbox_unsent ON pgrollout_control.job_outbox (created_at)"
    " WHERE sent_at IS NULL;"
    /* envelopes are base64 (compresses by a quarter at most): compressing each 27 KB job cost
     * more than the rest of writing it, and decompressing it again on publication */
    "ALTER TABLE pgrollout_control.job_outbox ALTER COLUMN envelope SET STORAGE EXTERNAL;"
    /* version 5: events bind to their run (the versions of each job), agents' event sequence
     * per key and scope (a tenant, or '' for agent-wide events), refused signed events */
    "ALTER TABLE pgrollout_control.job_outbox ADD COLUMN IF NOT EXISTS versions jsonb;"
    "CREATE TABLE IF NOT EXISTS pgrollout_control.event_seqs (kid text NOT NULL, scope text NOT"
    " NULL, seq bigint NOT NULL, PRIMARY KEY (kid, scope));"
    "CREATE TABLE IF NOT EXISTS pgrollout_control.security_alerts ("
    " id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), kid text NOT NULL,"
    " agent_id text, tenant_id text, job_id text, reason text NOT NULL, digest text NOT NULL);"
    "CREATE OR REPLACE TRIGGER security_alerts_no_change BEFORE UPDATE OR DELETE ON"
    " pgrollout_control.security_alerts FOR EACH ROW EXECUTE FUNCTION"
    " pgrollout_control.audit_log_append_only();"
    "CREATE OR REPLACE TRIGGER security_alerts_no_truncate BEFORE TRUNCATE ON"
    " pgrollout_control.security_alerts FOR EACH STATEMENT EXECUTE FUNCTION"
    " pgrollout_control.audit_log_append_only();"
    /* version 6: a job's final result is stored once, however many agents send it (an agent
     * that serves a tenant after another sends the results Kafka did not acknowledge again) */
    "CREATE INDEX IF NOT EXISTS events_result_job ON pgrollout_control.events (job_id) WHERE"
    " type = 'result';"
    /* version 7: a tenant whose database its agent no longer finds on its tenant source */
    "ALTER TABLE pgrollout_control.tenants ADD COLUMN IF NOT EXISTS gone_at timestamptz;"
    "INSERT INTO pgrollout_control.schema_version VALUES (1), (2), (3), (4), (5), (6), (7) ON "
    "CONFLICT DO NOTHING;";

pgr_code coord_schema_install(PGconn *db, pgr_error *err)
{
    /* Installed already (the collector's restricted role cannot run DDL, and need not)? */
    PGresult *r = NULL;
    bool current = false;
    if (pgr_pg_exec(db,
                    "SELECT max(version) = " CONTROL_SCHEMA_VERSION " FROM "
                    "pgrollout_control.schema_version WHERE "
                    "to_regclass('pgrollout_control.schema_version') IS NOT NULL",
                    &r, NULL) == PGR_OK) {
        current = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        PQclear(r);
    }
    return current ? PGR_OK : pgr_pg_exec(db, control_ddl, NULL, err);
}
