/*
 * state.c - tenant state in schema "pgrollout" of each tenant database: its own version,
 * schema_migrations (history), steps (what finished, for resuming), jobs, and the audit outbox
 * with its chain head. Created on first use under the runner's advisory lock.
 */
#include "state.h"

#include "pgr/pg.h"
#include "pgr/sqlgen.h"
#include "pgr/buf.h"

#include <stdio.h>
#include <string.h>

#define STATE_VERSION_TEXT "4" /* the highest row of pgrollout.state_version */

static const char *const state_ddl =
    "CREATE TABLE IF NOT EXISTS pgrollout.state_version ("
    " version int PRIMARY KEY, installed_at timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE IF NOT EXISTS pgrollout.schema_migrations ("
    " version text PRIMARY KEY CHECK (version ~ '^[0-9]{14}$'),"
    " name text NOT NULL, checksum text NOT NULL, applied_at timestamptz,"
    " duration_ms bigint, operator text, job_id text,"
    " status text NOT NULL CHECK (status IN"
    "  ('running', 'applied', 'failed', 'rolling_back', 'rolled_back')),"
    " updated_at timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE IF NOT EXISTS pgrollout.steps ("
    " version text NOT NULL, part text NOT NULL CHECK (part IN ('up', 'down')),"
    " step int NOT NULL, kind text NOT NULL, object text NOT NULL,"
    " phase text NOT NULL, job_id text, duration_ms bigint,"
    " finished_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (version, part, step));"
    "CREATE TABLE IF NOT EXISTS pgrollout.jobs ("
    " job_id text PRIMARY KEY, seq bigint, type text NOT NULL, state text NOT NULL,"
    " rollout_id text, wave text, operator text,"
    " received_at timestamptz NOT NULL DEFAULT now(),"
    " updated_at timestamptz NOT NULL DEFAULT now(), error text, kid text, envelope text);"
    "CREATE TABLE IF NOT EXISTS pgrollout.audit_head ("
    " id int PRIMARY KEY CHECK (id = 1), seq bigint NOT NULL, hash text NOT NULL);"
    "INSERT INTO pgrollout.audit_head VALUES (1, 0, repeat('0', 64)) ON CONFLICT DO NOTHING;"
    "CREATE TABLE IF NOT EXISTS pgrollout.audit_outbox ("
    " seq bigint PRIMARY KEY, tenant_id text NOT NULL,"
    " created_at timestamptz NOT NULL DEFAULT now(), prev_hash text NOT NULL,"
    " hash text NOT NULL, record text NOT NULL, published_at timestamptz);"
    "CREATE INDEX IF NOT EXISTS audit_outbox_unpublished ON pgrollout.audit_outbox (seq)"
    " WHERE published_at IS NULL;"
    /* columns added after the first tenants were set up */
    "ALTER TABLE pgrollout.jobs ADD COLUMN IF NOT EXISTS kid text,"
    " ADD COLUMN IF NOT EXISTS envelope text;"
    /* version 3: a job's envelope (tens of kB of base64) is stored as it is: pglz on it cost
     * the intake more server time than the rest of its transaction, for a few percent */
    "ALTER TABLE pgrollout.jobs ALTER COLUMN envelope SET STORAGE EXTERNAL;"
    /* version 4: the tenant's owner in an agent pool (session.h); a daemon job's result event
     * as sent and when Kafka acknowledged it (jobrec.c): results of jobs that ended before
     * are taken as reported, not sent again */
    AGENT_STATE_OWNER_DDL "ALTER TABLE pgrollout.jobs ADD COLUMN IF NOT EXISTS result text,"
    " ADD COLUMN IF NOT EXISTS reported_at timestamptz;"
    "UPDATE pgrollout.jobs SET reported_at = updated_at WHERE reported_at IS NULL AND state IN"
    " ('succeeded', 'failed', 'cancelled') AND NOT EXISTS (SELECT 1 FROM pgrollout.state_version"
    " WHERE version = 4);"
    /* the last version is the one the agent checks for (one definition) */
    "INSERT INTO pgrollout.state_version VALUES (1), (2), (3), (" STATE_VERSION_TEXT ") ON "
    "CONFLICT DO NOTHING;";

pgr_code agent_state_create_schema(agent_exec *x, const char *name, pgr_error *err)
{
    PGresult *r = NULL;
    const char *params[] = {name};
    pgr_code rc = pgr_pg_execp(x->conn, "SELECT to_regnamespace($1) IS NULL", 1, params, &r, err);
    bool absent = rc == PGR_OK && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!absent)
        return rc;
    pgr_buf sql;
    pgr_buf_init(&sql);
    rc = pgr_buf_appendf(&sql, "CREATE SCHEMA IF NOT EXISTS ");
    if (rc == PGR_OK)
        rc = pgr_sqlgen_ident(x->conn, &sql, name, err);
    if (rc == PGR_OK)
        rc = pgr_pg_exec(x->conn, sql.data, NULL, err);
    pgr_buf_free(&sql);
    return rc;
}

pgr_code agent_state_ensure(agent_exec *x, pgr_error *err)
{
    PGresult *r = NULL;
    /* Fast path: already installed at this version. */
    if (pgr_pg_exec(x->conn,
                    "SELECT max(version) FROM pgrollout.state_version "
                    "WHERE to_regclass('pgrollout.state_version') IS NOT NULL",
                    &r, NULL) == PGR_OK) {
        bool current = PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) &&
                       strcmp(PQgetvalue(r, 0, 0), STATE_VERSION_TEXT) == 0;
        PQclear(r);
        if (current)
            return PGR_OK;
    }
    if (agent_session_begin(x, err) != PGR_OK)
        return PGR_ERR_DB;
    if (agent_state_create_schema(x, "pgrollout", err) != PGR_OK ||
        pgr_pg_exec(x->conn, state_ddl, NULL, err) != PGR_OK) {
        agent_session_rollback(x);
        pgr_error_prefix(err, "could not create schema \"pgrollout\"");
        return PGR_ERR_DB;
    }
    return agent_session_commit(x, err);
}

/* The step's recorded phase only: the session was checked and nothing could change it since. */
static pgr_code step_phase(agent_exec *x, const char *version, const char *part, int step,
                           char *phase, pgr_error *err)
{
    char stepbuf[16];
    PGresult *r = NULL;
    snprintf(stepbuf, sizeof(stepbuf), "%d", step);
    const char *params[] = {version, part, stepbuf};
    if (agent_session_stmt(x, AGENT_STMT_STEP_PHASE,
                           "SELECT (SELECT phase FROM pgrollout.steps WHERE version = $1 AND part "
                           "= $2 AND step = $3::int), " AGENT_OWNER_EPOCH_SQL,
                           3, params, &r, err) != PGR_OK)
        return PGR_ERR_DB;
    snprintf(phase, 32, "%s", PQgetvalue(r, 0, 0));
    pgr_code rc = agent_session_fence_check(x, PQgetvalue(r, 0, 1), err);
    PQclear(r);
    return rc;
}

/* Before each attempt of a step, in one round trip (it used to take four): restore the session
 * settings (migration SQL may have changed them; same values as agent_session_setup, so
 * the bookkeeping statements after an author's step plan once again: stepexec.c RESETs
 * plan_cache_mode before each author's step), keep
 * the state schema out of search_path, check that this runner still holds the tenant's lock,
 * and read the step's recorded phase.
 * After a checked step that could not change the session (an index or foreign-key step), only
 * the phase is read: the pg_locks scan grows with the server's backends (0.6 ms a step in the
 * fleet benchmark). */
pgr_code agent_state_step_check(agent_exec *x, const char *version, const char *part, int step,
                                char *phase, pgr_error *err)
{
    if (x->session_checked)
        return step_phase(x, version, part, step, phase, err);
    char stepbuf[16], lock[32], stmt[32];
    PGresult *r = NULL;
    snprintf(stepbuf, sizeof(stepbuf), "%d", step);
    snprintf(lock, sizeof(lock), "%d", x->o->lock_timeout_ms);
    snprintf(stmt, sizeof(stmt), "%d", x->o->statement_timeout_ms);
    const char *params[] = {version, part, stepbuf, lock, stmt};
    if (pgr_pg_execp(
            x->conn,
            "SELECT set_config('lock_timeout', $4, false), set_config('statement_timeout', $5, "
            "false), set_config('idle_in_transaction_session_timeout', '0', false), "
            "set_config('client_min_messages', 'warning', false), "
            "set_config('client_connection_check_interval', '1000', false), "
            "set_config('plan_cache_mode', 'force_generic_plan', false), "
            /* the server reads the step's SQL as the migration parser's lexer did (a previous
             * step may have changed either) */
            "set_config('standard_conforming_strings', 'on', false), "
            "set_config('client_encoding', 'UTF8', false), CASE WHEN "
            "current_schema() = 'pgrollout' THEN set_config('search_path', coalesce((SELECT "
            "string_agg(quote_ident(s), ',') FROM unnest(current_schemas(false)) s WHERE s <> "
            "'pgrollout'), ''), false) END, EXISTS (SELECT 1 FROM pg_locks WHERE locktype = "
            "'advisory' AND pid = pg_backend_pid() AND classid = " AGENT_LOCK_CLASS
            " AND objid = " AGENT_LOCK_RUNNER_OBJID
            " AND granted), (SELECT phase FROM pgrollout.steps WHERE version = $1 AND part = $2 "
            "AND step = $3::int), " AGENT_OWNER_EPOCH_SQL,
            5, params, &r, err) != PGR_OK)
        return PGR_ERR_DB;
    bool held = strcmp(PQgetvalue(r, 0, 9), "t") == 0;
    snprintf(phase, 32, "%s", PQgetvalue(r, 0, 10));
    x->generic_plans = true;
    pgr_code fence = agent_session_fence_check(x, PQgetvalue(r, 0, 11), err);
    PQclear(r);
    if (fence != PGR_OK)
        return fence;
    if (!held)
        return pgr_error_set(err, PGR_ERR_LOCKED,
                             "the runner lock of tenant \"%s\" was released (by migration SQL?): "
                             "stopping",
                             x->tenant);
    x->session_checked = true;
    x->stmt_gen++; /* statements of the previous generation may have been deallocated */
    memset(x->stmt_ready, 0, sizeof(x->stmt_ready));
    return PGR_OK;
}

void agent_state_step_row(const agent_exec *x, const pgr_migration *m, const pgr_step *s,
                          long long duration_ms, agent_step_row *row)
{
    snprintf(row->step, sizeof(row->step), "%d", s->index + 1);
    snprintf(row->duration, sizeof(row->duration), "%lld", duration_ms);
    pgr_migration_step_describe(s, row->object, sizeof(row->object));
    const char *v[7] = {m->version,   s->down ? "down" : "up",
                        row->step,    pgr_migration_step_kind_name(s->kind),
                        row->object,  x->job_id,
                        row->duration};
    memcpy(row->v, v, sizeof(v));
}

pgr_code agent_state_record_step(agent_exec *x, const pgr_migration *m, const pgr_step *s,
                                 const char *phase, long long duration_ms, pgr_error *err)
{
    agent_step_row row;
    agent_state_step_row(x, m, s, duration_ms, &row);
    const char *params[] = {row.v[0], row.v[1], row.v[2], row.v[3],
                            row.v[4], row.v[5], row.v[6], phase};
    return agent_session_stmt(
        x, AGENT_STMT_STEP_RECORD,
        "INSERT INTO pgrollout.steps (version, part, step, kind, object, job_id, "
        "duration_ms, phase) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) " AGENT_STEPS_UPSERT,
        8, params, NULL, err);
}

pgr_code agent_state_job(agent_exec *x, const char *type, const char *state, const char *error,
                         pgr_error *err)
{
    const char *params[] = {x->job_id, type, state, x->operator_name, error};
    return pgr_pg_execp(x->conn,
                        "INSERT INTO pgrollout.jobs (job_id, type, state, operator, error) "
                        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job_id) DO UPDATE SET "
                        "state = EXCLUDED.state, error = EXCLUDED.error, updated_at = now()",
                        5, params, NULL, err);
}
