/*
 * stepexec.c - runs one step: skip when already done, retry transient failures (lock timeout,
 * deadlock, lost connection) with exponential backoff and jitter, and record success or
 * failure (history row and audit record in the step's own transaction where it has one).
 */
#include "fk.h"
#include "index.h"
#include "step.h"
#include "stepexec.h"

#include "pgr/lint.h"
#include "pgr/pg.h"
#include "pgr/sqlgen.h"
#include "pgr/buf.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* base * 2^attempt, capped at 30 s, plus up to 50% random jitter so that many agents retrying
 * the same hot table do not retry in lockstep. */
static long long backoff_ms(int base, int attempt)
{
    long long d = base;
    for (int i = 0; i < attempt && d < 30000; i++)
        d *= 2;
    if (d > 30000)
        d = 30000;
    return d + (long long)randombytes_uniform((uint32_t)(d / 2 + 1));
}

/* --- the owner role ------------------------------------------------------------------------ */

#define DEFAULT_OWNER_ROLE "tenant_owner"

/* One row when the role exists: whether the agent's role may SET ROLE to it, and whether the
 * agent's role is a superuser (a member of every role). */
#define OWNER_ROLE_SQL                                                                             \
    "SELECT pg_has_role(current_user, r.oid, 'MEMBER'), (SELECT rolsuper FROM pg_roles WHERE "     \
    "rolname = current_user) FROM pg_roles r WHERE r.rolname = $1"

pgr_code agent_stepexec_owner_resolve(agent_exec *x, pgr_error *err)
{
    const char *want = x->o->owner_role != NULL ? x->o->owner_role : DEFAULT_OWNER_ROLE;
    bool named = x->o->owner_role != NULL;
    PGresult *r = NULL;
    x->owner_role[0] = '\0';
    if (want[0] == '\0' || strcmp(want, "none") == 0)
        return PGR_OK;
    if (strlen(want) >= sizeof(x->owner_role))
        return pgr_error_set(err, PGR_ERR_CONFIG,
                             "agent.owner_role \"%.63s...\" is too long (at most 63 bytes)", want);
    const char *params[] = {want};
    if (pgr_pg_execp(x->conn, OWNER_ROLE_SQL, 1, params, &r, err) != PGR_OK)
        return PGR_ERR_DB;
    bool exists = PQntuples(r) == 1;
    bool member = exists && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    bool super = exists && strcmp(PQgetvalue(r, 0, 1), "t") == 0;
    PQclear(r);
    if (named && !exists)
        return pgr_error_set(err, PGR_ERR_CONFIG,
                             "owner role \"%s\" (agent.owner_role) does not exist in the server "
                             "of tenant \"%s\"",
                             want, x->tenant);
    if (named && !member)
        return pgr_error_set(err, PGR_ERR_CONFIG,
                             "the agent's role is not a member of owner role \"%s\" "
                             "(agent.owner_role): author SQL could not run as it",
                             want);
    /* by default only a least-privilege agent steps down: a superuser is a member of every
     * role, and tables it owns would refuse their own migrations */
    if (member && (named || !super))
        snprintf(x->owner_role, sizeof(x->owner_role), "%s", want);
    return PGR_OK;
}

/* Runs the author's SQL as the owner role when there is one, then back to the agent's role. In
 * a transaction that fails, its ROLLBACK undoes the SET ROLE as well. */
static pgr_code run_author_sql(agent_exec *x, const char *sql, pgr_error *err)
{
    if (x->owner_role[0] == '\0')
        return pgr_pg_exec(x->conn, sql, NULL, err);
    const char *params[] = {x->owner_role};
    pgr_code rc =
        pgr_pg_execp(x->conn, "SELECT set_config('role', $1, false)", 1, params, NULL, err);
    if (rc == PGR_OK)
        rc = pgr_pg_exec(x->conn, sql, NULL, err);
    if (rc == PGR_OK)
        return pgr_pg_exec(x->conn, "RESET ROLE", NULL, err);
    if (!pgr_pg_conn_lost(x->conn) && PQtransactionStatus(x->conn) == PQTRANS_IDLE)
        PGR_IGNORE(pgr_pg_exec(x->conn, "RESET ROLE", NULL, NULL));
    return rc;
}

/* A step whose SQL and bookkeeping share one transaction: all or nothing. author: the SQL is the
 * migration author's (runs as the owner role). */
static pgr_code run_transactional(agent_exec *x, const pgr_migration *m, const pgr_step *s,
                                  const char *sql, bool author, long long t0, pgr_error *err)
{
    pgr_code rc = agent_session_begin(x, err);
    if (rc == PGR_OK)
        rc = author ? run_author_sql(x, sql, err) : pgr_pg_exec(x->conn, sql, NULL, err);
    if (rc == PGR_OK)
        rc = agent_step_record_done(x, m, s, pgr_clock_mono_ms() - t0, "done", err);
    if (rc == PGR_OK)
        return agent_session_commit(x, err);
    agent_session_rollback(x);
    return rc;
}

/* A step that cannot run in a transaction (DROP INDEX CONCURRENTLY, no_transaction SQL): run it,
 * then record it. Rerunning after a crash between the two is safe because such steps must be
 * idempotent (IF [NOT] EXISTS, which lint enforces). */
static pgr_code run_outside(agent_exec *x, const pgr_migration *m, const pgr_step *s, long long t0,
                            pgr_error *err)
{
    pgr_code rc = run_author_sql(x, s->sql, err);
    return rc == PGR_OK ? agent_step_finish(x, m, s, pgr_clock_mono_ms() - t0, err) : rc;
}

static pgr_code run_drop_fk(agent_exec *x, const pgr_migration *m, const pgr_step *s, long long t0,
                            pgr_error *err)
{
    pgr_buf sql;
    pgr_buf_init(&sql);
    pgr_code rc = pgr_sqlgen_fk_drop(x->conn, s, &sql, err);
    if (rc == PGR_OK)
        rc = run_transactional(x, m, s, sql.data, false, t0, err);
    pgr_buf_free(&sql);
    return rc;
}

static pgr_code run_once(agent_exec *x, const pgr_migration *m, const pgr_step *s, int count,
                         const char *phase, pgr_error *err)
{
    long long t0 = pgr_clock_mono_ms();
    switch (s->kind) {
    case PGR_STEP_INDEX:
        return agent_index_run(x, m, s, count, phase, err);
    case PGR_STEP_FOREIGN_KEY:
        return agent_fk_run(x, m, s, phase, err);
    case PGR_STEP_DROP_FOREIGN_KEY:
        return run_drop_fk(x, m, s, t0, err);
    case PGR_STEP_DROP_INDEX:
        return run_outside(x, m, s, t0, err);
    case PGR_STEP_SQL:
        if (s->no_transaction)
            return run_outside(x, m, s, t0, err);
        return run_transactional(x, m, s, s->sql, true, t0, err);
    case PGR_STEP_EXTENSION:
        return run_transactional(x, m, s, s->sql, true, t0, err);
    }
    return pgr_error_set(err, PGR_ERR_INTERNAL, "unknown step kind");
}

static void emit_step(agent_exec *x, agent_event_kind kind, const pgr_migration *m,
                      const pgr_step *s, int count, const char *msg, int attempt, long long dur)
{
    char obj[AGENT_OBJECT_LEN];
    agent_event ev;
    agent_step_event(&ev, kind, m, s, count, obj);
    ev.message = msg;
    ev.attempt = attempt;
    ev.duration_ms = dur;
    agent_session_emit(x, &ev);
}

static void audit_failure(agent_exec *x, const pgr_migration *m, const pgr_step *s,
                          const pgr_error *e, int attempts)
{
    if (pgr_pg_conn_lost(x->conn))
        return;
    json_t *rec = agent_audit_new(x, "step_failed");
    agent_audit_step_fields(rec, m, s);
    json_object_set_new(rec, "outcome", json_string("failed"));
    json_object_set_new(rec, "code", json_string(pgr_error_code_name(e->code)));
    json_object_set_new(rec, "sqlstate", json_string(e->sqlstate));
    json_object_set_new(rec, "attempts", json_integer(attempts));
    /* the message is ours or PostgreSQL's primary message: object names and counts, no values;
     * the orphan ids shown to the operator stay out of the permanent record */
    char msg[sizeof(e->msg)];
    snprintf(msg, sizeof(msg), "%s", e->msg);
    char *ids = strstr(msg, " (first ids: ");
    if (ids != NULL)
        *ids = '\0';
    json_object_set_new(rec, "error", json_string(msg));
    PGR_IGNORE(agent_audit_append(x, rec, NULL));
}

/* Before the step's SQL runs (DESIGN: evidence leaves the host before the risk runs): its
 * step_start record, then, in the daemon, the barrier that returns once every record of the
 * tenant so far, this one included, is acknowledged by Kafka. Migration SQL that then deletes
 * or rewrites pgrollout's tables cannot take back what the central log already holds. */
static pgr_code before_risk(agent_exec *x, const pgr_migration *m, const pgr_step *s, int attempt,
                            pgr_error *err)
{
    json_t *rec = agent_audit_new(x, "step_start");
    agent_audit_step_fields(rec, m, s);
    json_object_set_new(rec, "attempt", json_integer(attempt + 1));
    pgr_code rc = agent_audit_append(x, rec, err);
    if (rc != PGR_OK || x->o->audit_barrier == NULL)
        return rc;
    rc = x->o->audit_barrier(x->conn, x->o->audit_barrier_user, err);
    if (rc != PGR_OK && err != NULL) {
        pgr_error_prefix(err,
                         "step %d of migration %s not run: its audit records are not "
                         "yet delivered",
                         s->index + 1, m->version);
        /* nothing ran: the step is tried again after the backoff, unless the job is stopping
         * (shutdown or cancel), which then leaves it to resume */
        err->retriable = x->o->cancel == NULL || *x->o->cancel == 0;
    }
    return rc;
}

bool agent_stepexec_backoff(agent_exec *x, int attempt, pgr_error *err)
{
    pgr_clock_sleep_ms(backoff_ms(x->o->retry_base_ms, attempt));
    if (!pgr_pg_conn_lost(x->conn))
        return true;
    pgr_error rerr;
    if (agent_session_reconnect(x, &rerr) == PGR_OK || rerr.retriable)
        return true; /* a failed reconnect is tried again by the next attempt */
    *err = rerr;
    return false;
}

/* Steps whose SQL cannot change the session: generated by the agent (foreign keys), or one
 * statement (the parser's rule for index steps) that is a CREATE INDEX. Anything else is the
 * author's, held to its kind only by lint, which apply does not require. */
static bool generated_sql(const pgr_step *s)
{
    if (s->kind == PGR_STEP_FOREIGN_KEY || s->kind == PGR_STEP_DROP_FOREIGN_KEY)
        return true;
    if (s->kind != PGR_STEP_INDEX)
        return false;
    char *norm = pgr_lint_normalize_sql(s->sql);
    bool create = norm != NULL && (strncmp(norm, "CREATE INDEX ", 13) == 0 ||
                                   strncmp(norm, "CREATE UNIQUE INDEX ", 20) == 0);
    free(norm);
    return create;
}

pgr_code agent_stepexec_run(agent_exec *x, const pgr_migration *m, const pgr_step *s, int count,
                            pgr_error *err)
{
    char phase[32];
    long long t0 = pgr_clock_mono_ms();
    bool own_sql = generated_sql(s);
    pgr_code rc;
    int attempt;

    for (attempt = 0;; attempt++) {
        /* Migration SQL may have changed session settings or released the lock: restore the
         * settings and make sure this runner still owns the database before each attempt. */
        /* in a pool every step reads the owner epoch, the first of a migration too */
        if (attempt == 0 && x->part_fresh && x->session_checked && x->o->fence_epoch <= 0) {
            phase[0] = '\0'; /* nothing recorded yet, and nothing to check */
            rc = PGR_OK;
        } else {
            rc = agent_state_step_check(x, m->version, s->down ? "down" : "up", s->index + 1, phase,
                                        err);
        }
        if (rc == PGR_OK && strcmp(phase, "done") == 0) {
            emit_step(x, AGENT_EV_STEP_SKIPPED, m, s, count, "already done", attempt, 0);
            return PGR_OK;
        }
        if (rc == PGR_OK) {
            emit_step(x, AGENT_EV_STEP_START, m, s, count, NULL, attempt, 0);
            rc = before_risk(x, m, s, attempt, err);
        }
        if (rc == PGR_OK) {
            /* from here user SQL may DEALLOCATE our statements: none is used until checked */
            if (!own_sql)
                x->session_checked = false;
            if (!own_sql && x->generic_plans) {
                rc = pgr_pg_exec(x->conn, "RESET plan_cache_mode", NULL, err);
                /* until the check before the next step sets it again, whatever came of it */
                x->generic_plans = false;
            }
            if (rc == PGR_OK)
                rc = run_once(x, m, s, count, phase, err);
        }
        /* user SQL, or a failure, may have changed settings, released the lock, created or
         * dropped indexes: the next step checks again and reads the index states again */
        if (rc != PGR_OK || !own_sql) {
            x->session_checked = false;
            agent_session_forget_prefetch(x);
        }
        if (rc == PGR_OK) {
            emit_step(x, AGENT_EV_STEP_DONE, m, s, count, NULL, attempt, pgr_clock_mono_ms() - t0);
            return PGR_OK;
        }
        agent_session_rollback(x);
        if (!err->retriable || attempt >= x->o->retries)
            break;
        emit_step(x, AGENT_EV_STEP_RETRY, m, s, count, err->msg, attempt + 1, 0);
        if (!agent_stepexec_backoff(x, attempt, err))
            break;
    }
    if (x->fenced) /* the step is the new owner's now: it did not fail, nothing is recorded */
        return rc;
    emit_step(x, AGENT_EV_STEP_FAILED, m, s, count, err->msg, 0, pgr_clock_mono_ms() - t0);
    audit_failure(x, m, s, err, attempt + 1);
    return rc;
}
