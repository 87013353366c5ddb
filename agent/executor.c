/*
 * executor.c - orchestration of apply and rollback on one tenant database: connect, lock,
 * check drift, back up, run each migration's steps in order, keep history and audit records.
 */
#include "audit.h"
#include "backup.h"
#include "index.h"
#include "session.h"
#include "state.h"
#include "stepexec.h"
#include "verify.h"

#include "pgr/config.h"
#include "pgr/log.h"
#include "pgr/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void agent_exec_opts_init(agent_exec_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->dsn = "";
    o->lock_timeout_ms = PGR_DEFAULT_LOCK_TIMEOUT_MS;
    o->statement_timeout_ms = PGR_DEFAULT_STATEMENT_TIMEOUT_MS;
    o->retries = PGR_DEFAULT_RETRIES;
    o->retry_base_ms = PGR_DEFAULT_RETRY_BASE_MS;
}

/* --- history -------------------------------------------------------------------------------- */

typedef struct hist_row {
    char version[PGR_VERSION_LEN + 1];
    char checksum[PGR_SHA256_HEX_LEN];
    char status[16];
} hist_row;

typedef struct history {
    hist_row *rows;
    size_t count;
} history;

static pgr_code history_load(agent_exec *x, history *h, pgr_error *err)
{
    PGresult *r = NULL;
    h->rows = NULL;
    h->count = 0;
    if (pgr_pg_exec(x->conn,
                    "SELECT version, checksum, status FROM pgrollout.schema_migrations "
                    "ORDER BY version",
                    &r, err) != PGR_OK)
        return PGR_ERR_DB;
    h->count = (size_t)PQntuples(r);
    h->rows = calloc(h->count + 1, sizeof(hist_row));
    for (size_t i = 0; h->rows != NULL && i < h->count; i++) {
        snprintf(h->rows[i].version, sizeof(h->rows[i].version), "%s", PQgetvalue(r, (int)i, 0));
        snprintf(h->rows[i].checksum, sizeof(h->rows[i].checksum), "%s", PQgetvalue(r, (int)i, 1));
        snprintf(h->rows[i].status, sizeof(h->rows[i].status), "%s", PQgetvalue(r, (int)i, 2));
    }
    PQclear(r);
    return h->rows != NULL ? PGR_OK : pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
}

static const hist_row *history_find(const history *h, const char *version)
{
    for (size_t i = 0; i < h->count; i++) {
        if (strcmp(h->rows[i].version, version) == 0)
            return &h->rows[i];
    }
    return NULL;
}

static bool hist_active(const hist_row *r)
{
    return r != NULL && strcmp(r->status, "rolled_back") != 0;
}

static void highest_applied(const history *h, char out[PGR_VERSION_LEN + 1])
{
    snprintf(out, PGR_VERSION_LEN + 1, "0");
    for (size_t i = 0; i < h->count; i++) {
        if (strcmp(h->rows[i].status, "applied") == 0)
            snprintf(out, PGR_VERSION_LEN + 1, "%s", h->rows[i].version);
    }
}

/* Drift: an applied (or half-applied) migration whose file changed, or whose file is gone. */
static pgr_code check_drift(const pgr_migration_set *set, const history *h, pgr_error *err)
{
    for (size_t i = 0; i < h->count; i++) {
        if (!hist_active(&h->rows[i]))
            continue;
        const pgr_migration *m = pgr_migration_set_find(set, h->rows[i].version);
        if (m == NULL)
            return pgr_error_set(err, PGR_ERR_DRIFT,
                                 "migration %s is recorded as %s on the tenant but no file has "
                                 "that version",
                                 h->rows[i].version, h->rows[i].status);
        if (strcmp(m->checksum, h->rows[i].checksum) != 0)
            return pgr_error_set(err, PGR_ERR_DRIFT,
                                 "drift: migration %s (%s) was %s with checksum %.12s but the "
                                 "file now has checksum %.12s",
                                 m->version, m->name, h->rows[i].status, h->rows[i].checksum,
                                 m->checksum);
    }
    return PGR_OK;
}

/* --- one migration -------------------------------------------------------------------------- */

static pgr_code migration_mark(agent_exec *x, const pgr_migration *m, const char *status,
                               long long duration_ms, pgr_error *err)
{
    char dur[32];
    snprintf(dur, sizeof(dur), "%lld", duration_ms);
    const char *params[] = {m->version, m->name,          m->checksum, status,
                            dur,        x->operator_name, x->job_id};
    return pgr_pg_execp(
        x->conn,
        "INSERT INTO pgrollout.schema_migrations (version, name, checksum, status, duration_ms, "
        "operator, job_id, applied_at) VALUES ($1, $2, $3, $4, $5::bigint, $6, $7, "
        "CASE WHEN $4 = 'applied' THEN now() END) ON CONFLICT (version) DO UPDATE SET "
        "name = EXCLUDED.name, checksum = EXCLUDED.checksum, status = EXCLUDED.status, "
        "duration_ms = EXCLUDED.duration_ms, operator = EXCLUDED.operator, "
        "job_id = EXCLUDED.job_id, applied_at = COALESCE(EXCLUDED.applied_at, "
        "schema_migrations.applied_at), updated_at = now()",
        7, params, NULL, err);
}

/* Marks the migration (and forgets step records of an earlier, finished attempt in the other
 * direction) and writes its audit record, in one transaction. */
static pgr_code migration_transition(agent_exec *x, const pgr_migration *m, const char *status,
                                     const char *clear_part, const char *action,
                                     long long duration_ms, pgr_error *err)
{
    pgr_code rc = agent_session_begin(x, err);
    if (rc == PGR_OK && clear_part != NULL) {
        const char *params[] = {m->version, clear_part};
        rc = pgr_pg_execp(x->conn, "DELETE FROM pgrollout.steps WHERE version = $1 AND part = $2",
                          2, params, NULL, err);
    }
    if (rc == PGR_OK)
        rc = migration_mark(x, m, status, duration_ms, err);
    if (rc == PGR_OK) {
        json_t *rec = agent_audit_new(x, action);
        json_object_set_new(rec, "version", json_string(m->version));
        json_object_set_new(rec, "migration", json_string(m->name));
        json_object_set_new(rec, "checksum", json_string(m->checksum));
        json_object_set_new(rec, "duration_ms", json_integer(duration_ms));
        rc = agent_audit_append(x, rec, err);
    }
    if (rc == PGR_OK)
        return agent_session_commit(x, err);
    agent_session_rollback(x);
    return rc;
}

/* A transition lost to a transient failure (a dropped connection, a restarted server, a lock
 * timeout) is retried like a step, after the backoff and a reconnect: the migration's status
 * and its audit record are one transaction, so a retry never records it twice. */
static pgr_code transition(agent_exec *x, const pgr_migration *m, const char *status,
                           const char *clear_part, const char *action, long long duration_ms,
                           pgr_error *err)
{
    for (int attempt = 0;; attempt++) {
        pgr_code rc = migration_transition(x, m, status, clear_part, action, duration_ms, err);
        if (rc == PGR_OK || !err->retriable || attempt >= x->o->retries ||
            !agent_stepexec_backoff(x, attempt, err))
            return rc;
    }
}

static bool cancelled(const agent_exec *x)
{
    return x->o->cancel != NULL && *x->o->cancel != 0;
}

/* Runs the steps of one part; records and reports each. */
static pgr_code run_part(agent_exec *x, const pgr_migration *m, bool down, pgr_error *err)
{
    size_t n = down ? m->down_count : m->up_count;
    const pgr_step *steps = down ? m->down : m->up;
    pgr_code rc = PGR_OK;
    for (size_t k = 0; rc == PGR_OK && k < n; k++) {
        /* the states of this and the following index steps, unless still known */
        if (steps[k].kind == PGR_STEP_INDEX && x->index_info_count == 0)
            agent_index_prefetch(x, &steps[k], n - k, false);
        if (cancelled(x))
            rc = pgr_error_set(err, PGR_ERR_INVALID, "cancelled before step %zu of migration %s",
                               k + 1, m->version);
        else
            rc = agent_stepexec_run(x, m, &steps[k], (int)n, err);
    }
    agent_session_forget_prefetch(x);
    return rc;
}

static pgr_code run_migration(agent_exec *x, const pgr_migration *m, bool down, bool resume,
                              pgr_error *err)
{
    long long t0 = pgr_clock_mono_ms();
    agent_event ev = {.kind = AGENT_EV_MIGRATION_START,
                      .version = m->version,
                      .name = m->name,
                      .step_count = (int)(down ? m->down_count : m->up_count),
                      .percent = -1};
    agent_session_emit(x, &ev);
    /* A fresh attempt forgets the step records of the other direction; a resumed one keeps its
     * own so that finished steps are not run twice. */
    pgr_code rc =
        transition(x, m, down ? "rolling_back" : "running", resume ? NULL : (down ? "down" : "up"),
                   down ? "rollback_start" : "migration_start", 0, err);
    x->part_fresh = !resume;
    if (rc == PGR_OK)
        rc = run_part(x, m, down, err);
    x->part_fresh = false;
    if (rc != PGR_OK) {
        pgr_error keep = *err;
        if (pgr_pg_conn_lost(x->conn))
            PGR_IGNORE(agent_session_reconnect(x, NULL));
        agent_session_rollback(x);
        if (!pgr_pg_conn_lost(x->conn) && !x->fenced) /* fenced: the new owner's to record */
            (void)migration_transition(x, m, down ? "rolling_back" : "failed", NULL,
                                       down ? "rollback_failed" : "migration_failed",
                                       pgr_clock_mono_ms() - t0, NULL);
        *err = keep;
        return rc;
    }
    rc = transition(x, m, down ? "rolled_back" : "applied", down ? "up" : "down",
                    down ? "rollback_done" : "migration_applied", pgr_clock_mono_ms() - t0, err);
    ev.kind = AGENT_EV_MIGRATION_DONE;
    ev.message = down ? "rolled back" : "applied";
    ev.duration_ms = pgr_clock_mono_ms() - t0;
    if (rc == PGR_OK)
        agent_session_emit(x, &ev);
    return rc;
}

static void emit_job(agent_exec *x, agent_event_kind kind, const char *msg, long long dur)
{
    agent_event ev = {.kind = kind, .message = msg, .duration_ms = dur, .percent = -1};
    agent_session_emit(x, &ev);
}

/* Job bookkeeping around a run: jobs row and audit records for start and end. */
static pgr_code job_start(agent_exec *x, const char *type, pgr_error *err)
{
    emit_job(x, AGENT_EV_JOB_START, type, 0);
    pgr_code rc = agent_session_begin(x, err);
    if (rc == PGR_OK)
        rc = agent_state_job(x, type, "running", NULL, err);
    if (rc == PGR_OK) {
        json_t *rec = agent_audit_new(x, "job_start");
        json_object_set_new(rec, "type", json_string(type));
        if (x->ended_sessions > 0) /* a previous owner's sessions that held the runner lock */
            json_object_set_new(rec, "ended_sessions", json_integer(x->ended_sessions));
        rc = agent_audit_append(x, rec, err);
    }
    if (rc == PGR_OK)
        return agent_session_commit(x, err);
    agent_session_rollback(x);
    return rc;
}

static void job_end(agent_exec *x, const char *type, pgr_code rc, const pgr_error *err,
                    long long t0)
{
    const char *msg = rc == PGR_OK ? NULL : err->msg;
    if (x->fenced) { /* another agent of the pool serves the tenant and resumes the job */
        emit_job(x, AGENT_EV_JOB_DONE, msg, pgr_clock_mono_ms() - t0);
        return;
    }
    if (pgr_pg_conn_lost(x->conn) && agent_session_reconnect(x, NULL) != PGR_OK)
        return;
    agent_session_rollback(x);
    if (agent_session_begin(x, NULL) == PGR_OK) {
        json_t *rec = agent_audit_job_end(x, type, rc, pgr_clock_mono_ms() - t0);
        if (x->o->verified != NULL && *x->o->verified >= 0)
            json_object_set_new(rec, "verified", json_boolean(*x->o->verified));
        /* a job stopped by shutdown stays resumable: the daemon picks "interrupted" up again */
        const char *state = rc == PGR_OK                         ? "succeeded"
                            : cancelled(x) && *x->o->cancel == 2 ? "cancelled"
                            : cancelled(x)                       ? "interrupted"
                                                                 : "failed";
        if (agent_state_job(x, type, state, msg, NULL) == PGR_OK &&
            agent_audit_append(x, rec, NULL) == PGR_OK)
            PGR_IGNORE(agent_session_commit(x, NULL));
        else
            agent_session_rollback(x);
    }
    emit_job(x, AGENT_EV_JOB_DONE, msg, pgr_clock_mono_ms() - t0);
}

/* --- apply and rollback --------------------------------------------------------------------- */

static pgr_code apply_pending(agent_exec *x, const pgr_migration_set *set, const history *h,
                              pgr_error *err)
{
    for (size_t i = 0; i < set->count; i++) {
        const pgr_migration *m = set->items[i];
        const hist_row *row = history_find(h, m->version);
        if (x->o->target != NULL && strcmp(m->version, x->o->target) > 0)
            break;
        if (row != NULL && strcmp(row->status, "applied") == 0)
            continue;
        if (row != NULL && strcmp(row->status, "rolling_back") == 0)
            return pgr_error_set(err, PGR_ERR_INVALID,
                                 "migration %s has an unfinished rollback: run rollback again "
                                 "to finish it before applying",
                                 m->version);
        bool resume = row != NULL &&
                      (strcmp(row->status, "running") == 0 || strcmp(row->status, "failed") == 0);
        pgr_code rc = run_migration(x, m, false, resume, err);
        if (rc != PGR_OK)
            return rc;
    }
    return PGR_OK;
}

static bool target_valid(const pgr_migration_set *set, const char *target)
{
    return target == NULL || strcmp(target, "0") == 0 ||
           pgr_migration_set_find(set, target) != NULL;
}

static pgr_code rollback_applied(agent_exec *x, const pgr_migration_set *set, const history *h,
                                 const char *to, pgr_error *err)
{
    for (size_t i = set->count; i-- > 0;) {
        const pgr_migration *m = set->items[i];
        const hist_row *row = history_find(h, m->version);
        if (strcmp(m->version, to) <= 0 || !hist_active(row))
            continue;
        bool resume = strcmp(row->status, "rolling_back") == 0;
        pgr_code rc = run_migration(x, m, true, resume, err);
        if (rc != PGR_OK)
            return rc;
    }
    return PGR_OK;
}

/* One job on the tenant: lock, drift check, job records, optional backup, then the migrations
 * in the direction asked (rollback when to_version is not NULL). */
/* Connects and takes the runner lock, then installs the tenant state under it. */
static pgr_code job_open(agent_exec *x, const agent_exec_opts *o, pgr_error *err)
{
    pgr_code rc = agent_session_open(x, o, true, err);
    if (rc == PGR_OK)
        rc = agent_state_ensure(x, err);
    if (rc == PGR_OK)
        rc = agent_session_pin_search_path(x, err); /* again: the schema may have just appeared */
    if (rc == PGR_OK)
        rc = agent_stepexec_owner_resolve(x, err);
    return rc;
}

static pgr_code run_job(const pgr_migration_set *set, const agent_exec_opts *o,
                        const char *to_version, pgr_error *err)
{
    const char *type = to_version != NULL ? "rollback" : "apply";
    agent_exec x;
    history h = {NULL, 0};
    long long t0 = pgr_clock_mono_ms();

    pgr_code rc = job_open(&x, o, err);
    bool locked = rc == PGR_OK;
    if (rc == PGR_OK)
        rc = history_load(&x, &h, err);
    if (rc == PGR_OK)
        rc = check_drift(set, &h, err);
    if (rc == PGR_OK && to_version == NULL && o->from_version != NULL)
        highest_applied(&h, o->from_version);
    bool started = false;
    if (rc == PGR_OK) {
        rc = job_start(&x, type, err);
        started = rc == PGR_OK;
    }
    if (rc == PGR_OK && o->backup_dir != NULL)
        rc = agent_backup_run(&x, err);
    if (rc == PGR_OK)
        rc = to_version != NULL ? rollback_applied(&x, set, &h, to_version, err)
                                : apply_pending(&x, set, &h, err);
    /* before the job's end is recorded: a crash during the check leaves the job running, and
     * its resumption (nothing left to apply) checks again and reports */
    if (rc == PGR_OK && to_version == NULL && o->verified != NULL)
        rc = agent_verify_check_applied(&x, set, o->verified, err);
    if (started)
        job_end(&x, type, rc, err, t0);
    free(h.rows);
    agent_session_close(&x, locked);
    return rc;
}

pgr_code agent_exec_apply(const pgr_migration_set *set, const agent_exec_opts *o, pgr_error *err)
{
    if (!target_valid(set, o->target))
        return pgr_error_set(err, PGR_ERR_INVALID, "target version %s is not a known migration",
                             o->target);
    return run_job(set, o, NULL, err);
}

pgr_code agent_exec_rollback(const pgr_migration_set *set, const char *to_version,
                             const agent_exec_opts *o, pgr_error *err)
{
    if (!target_valid(set, to_version))
        return pgr_error_set(err, PGR_ERR_INVALID,
                             "rollback target %s is neither 0 nor a known migration", to_version);
    return run_job(set, o, to_version, err);
}
