/*
 * session.c - the runner's database session (session.h): connection and settings, transactions,
 * prepared bookkeeping statements, the tenant's runner lock, and the audit records that wait for
 * their transaction's COMMIT.
 */
#include "session.h"
#include "connpool.h"
#include "seqstore.h"

#include "pgr/crypto.h"
#include "pgr/log.h"
#include "pgr/pg.h"
#include "pgr/uuid.h"

#include <ctype.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void agent_session_emit(agent_exec *x, agent_event *ev)
{
    ev->tenant_id = x->tenant;
    ev->job_id = x->job_id;
    if (x->o->cb != NULL)
        x->o->cb(ev, x->o->cb_user);
}

static void flush_audit(agent_exec *x, bool emit)
{
    for (size_t i = 0; i < x->pending_count; i++) {
        if (emit) {
            agent_event ev = {.kind = AGENT_EV_AUDIT, .audit_json = x->pending_audit[i]};
            agent_session_emit(x, &ev);
        }
        free(x->pending_audit[i]);
    }
    x->pending_count = 0;
}

pgr_code agent_session_stmt(agent_exec *x, agent_stmt id, const char *sql, int nparams,
                            const char *const *params, PGresult **out, pgr_error *err)
{
    char name[32];
    if (!x->session_checked)
        return pgr_pg_execp(x->conn, sql, nparams, params, out, err);
    snprintf(name, sizeof(name), "pgr_%u_%d", x->stmt_gen, (int)id);
    return pgr_pg_execp_prepared(x->conn, name, sql, &x->stmt_ready[id], nparams, params, out, err);
}

pgr_code agent_session_begin(agent_exec *x, pgr_error *err)
{
    return pgr_pg_exec(x->conn, "BEGIN", NULL, err);
}

/* The intake's accepted job seq goes to the state directory after its COMMIT: written before,
 * a failed commit would leave a seq there that the job's redelivery could not pass. */
static void keep_seq(agent_exec *x, bool committed)
{
    pgr_error err;
    long long seq = x->seq_to_keep;
    x->seq_to_keep = 0;
    if (!committed || seq <= 0 || x->o->state_dir == NULL)
        return;
    if (agent_seqstore_keep(x->o->state_dir, x->tenant, seq, &err) != PGR_OK) {
        pgr_log_ctx ctx = {"intake", x->tenant, x->job_id};
        pgr_log_error(&ctx, "could not keep the accepted job seq %lld: %s", seq, err.msg);
    }
}

pgr_code agent_session_commit(agent_exec *x, pgr_error *err)
{
    pgr_code rc = pgr_pg_exec(x->conn, "COMMIT", NULL, err);
    /* Audit records become real (and are announced) only once their transaction committed. */
    flush_audit(x, rc == PGR_OK);
    keep_seq(x, rc == PGR_OK);
    return rc;
}

void agent_session_rollback(agent_exec *x)
{
    if (!pgr_pg_conn_lost(x->conn) && PQtransactionStatus(x->conn) != PQTRANS_IDLE)
        PGR_IGNORE(pgr_pg_exec(x->conn, "ROLLBACK", NULL, NULL));
    flush_audit(x, false);
    keep_seq(x, false);
    x->head_known = false; /* records of the transaction, if any, are gone: read the head again */
}

/* A role named "pgrollout" puts our state schema first in search_path ("$user"), and unqualified
 * names in migrations (CREATE EXTENSION, CREATE TABLE) would land there. Keep it out. Run again
 * once the state schema exists. */
#define PIN_SEARCH_PATH                                                                            \
    "SELECT set_config('search_path', coalesce((SELECT string_agg(quote_ident(s), ',') FROM "      \
    "unnest(current_schemas(false)) s WHERE s <> 'pgrollout'), ''), false) WHERE "                 \
    "current_schema() = 'pgrollout'"

pgr_code agent_session_pin_search_path(agent_exec *x, pgr_error *err)
{
    return pgr_pg_exec(x->conn, PIN_SEARCH_PATH, NULL, err);
}

/* Session settings every migration session carries (DESIGN.md 6): bounded lock waits. */
pgr_code agent_session_setup(agent_exec *x, pgr_error *err)
{
    char sql[640];
    /* one round trip: the settings, then the search_path pin */
    snprintf(sql, sizeof(sql),
             "SET lock_timeout = %d; SET statement_timeout = %d; "
             "SET idle_in_transaction_session_timeout = 0; SET client_min_messages = warning; "
             /* a killed agent's backend notices within a second and releases its locks */
             "SET client_connection_check_interval = 1000; "
             /* our prepared bookkeeping statements are planned once per session, not five
              * times first (the catalog look-ups' planning cost more than their execution);
              * RESET before the author's SQL runs (stepexec.c) */
             "SET plan_cache_mode = force_generic_plan; " PIN_SEARCH_PATH,
             x->o->lock_timeout_ms, x->o->statement_timeout_ms);
    pgr_code rc = pgr_pg_exec(x->conn, sql, NULL, err);
    x->generic_plans = rc == PGR_OK;
    return rc;
}

static pgr_code exec_connect(agent_exec *x, pgr_error *err)
{
    x->conn = x->o->pool != NULL ? agent_connpool_take(x->o->pool) : NULL;
    pgr_code rc =
        x->conn != NULL ? PGR_OK : pgr_pg_connect(x->o->dsn, "pgrollout-agent", &x->conn, err);
    if (rc == PGR_OK)
        rc = agent_session_setup(x, err);
    return rc;
}

pgr_code agent_session_reconnect(agent_exec *x, pgr_error *err)
{
    PQfinish(x->conn);
    x->conn = NULL;
    x->session_checked = false;
    agent_session_forget_prefetch(x);
    PQfinish(x->progress_conn);
    x->progress_conn = NULL;
    flush_audit(x, false);
    pgr_code rc = exec_connect(x, err);
    /* The session-level advisory lock died with the old session: take it again. If another
     * runner took it meanwhile, this runner must not write anything more: drop the session. */
    if (rc == PGR_OK)
        rc = agent_session_lock(x, err);
    if (rc != PGR_OK) {
        PQfinish(x->conn);
        x->conn = NULL;
    }
    return rc;
}

static void exec_init(agent_exec *x, const agent_exec_opts *o)
{
    memset(x, 0, sizeof(*x));
    x->o = o;
    if (o->job_id != NULL)
        snprintf(x->job_id, sizeof(x->job_id), "%s", o->job_id);
    else
        pgr_uuid_v4(x->job_id);
    const char *op = o->operator_name != NULL ? o->operator_name : getenv("USER");
    struct passwd *pw = op == NULL ? getpwuid(geteuid()) : NULL;
    if (pw != NULL)
        op = pw->pw_name;
    snprintf(x->operator_name, sizeof(x->operator_name), "%s", op != NULL ? op : "unknown");
}

pgr_code agent_session_open(agent_exec *x, const agent_exec_opts *o, bool lock, pgr_error *err)
{
    exec_init(x, o);
    for (char *p = x->job_id; *p != '\0'; p++) /* UUIDs compare case-insensitively */
        *p = (char)tolower((unsigned char)*p);
    if (!pgr_uuid_valid(x->job_id))
        return pgr_error_set(err, PGR_ERR_INVALID, "job id \"%s\" is not a UUID", x->job_id);
    if (pgr_crypto_init(err) != PGR_OK)
        return PGR_ERR_CRYPTO;
    pgr_code rc = exec_connect(x, err);
    if (rc != PGR_OK)
        return rc;
    snprintf(x->tenant, sizeof(x->tenant), "%s",
             o->tenant_id != NULL ? o->tenant_id : PQdb(x->conn));
    if (lock)
        rc = agent_session_lock(x, err);
    return rc;
}

void agent_session_close(agent_exec *x, bool locked)
{
    if (locked)
        agent_session_unlock(x);
    flush_audit(x, false);
    free(x->pending_audit);
    agent_session_forget_prefetch(x);
    PQfinish(x->progress_conn);
    if (x->o != NULL && x->o->pool != NULL)
        agent_connpool_give(x->o->pool, x->conn); /* reset first: nothing of ours stays */
    else
        PQfinish(x->conn);
}

static pgr_code try_lock(agent_exec *x, pgr_error *err)
{
    PGresult *r = NULL;
    if (pgr_pg_exec(x->conn, "SELECT pg_try_advisory_lock(" AGENT_LOCK_RUNNER ")", &r, err) !=
        PGR_OK)
        return PGR_ERR_DB;
    bool got = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!got)
        return pgr_error_set(err, PGR_ERR_LOCKED,
                             "another migration is running on tenant \"%s\" (database \"%s\"): "
                             "its advisory lock is held",
                             x->tenant, PQdb(x->conn));
    return PGR_OK;
}

pgr_code agent_session_fence_check(agent_exec *x, const char *epoch, pgr_error *err)
{
    if (x->o->fence_epoch <= 0 ||
        (epoch != NULL && *epoch != '\0' && strtoll(epoch, NULL, 10) == x->o->fence_epoch))
        return PGR_OK;
    x->fenced = true;
    if (x->o->fenced != NULL)
        *x->o->fenced = 1;
    return pgr_error_set(err, PGR_ERR_LOCKED,
                         "tenant \"%s\" was taken over by another agent of the pool (owner epoch "
                         "%s, this agent's %lld): stopping without writing more",
                         x->tenant, epoch != NULL && *epoch != '\0' ? epoch : "none",
                         x->o->fence_epoch);
}

static pgr_code read_fence(agent_exec *x, pgr_error *err)
{
    PGresult *r = NULL;
    if (pgr_pg_exec(x->conn, "SELECT " AGENT_OWNER_EPOCH_SQL, &r, err) != PGR_OK)
        return PGR_ERR_DB;
    pgr_code rc = agent_session_fence_check(x, PQgetvalue(r, 0, 0), err);
    PQclear(r);
    return rc;
}

/* Pool: a previous owner that was paused (SIGSTOP, a frozen VM) keeps its connection, and with
 * it the runner lock, for as long as it is paused. Once the owner epoch is this agent's, the
 * sessions of pgrollout agents that hold the lock are ended (same role, or pg_signal_backend);
 * their open transaction rolls back, an index build they ran is left invalid and rebuilt. */
static int end_stale_holders(agent_exec *x)
{
    PGresult *r = NULL;
    int n = 0;
    char epoch[32];
    snprintf(epoch, sizeof(epoch), "%lld", x->o->fence_epoch);
    /* one statement that holds the owner row while it ends sessions: an agent whose epoch was
     * raised meanwhile (it paused between its check and this) ends nobody */
    if (pgr_pg_execp(x->conn,
                     "SELECT count(*) FILTER (WHERE pg_terminate_backend(l.pid)) FROM pg_locks l "
                     "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND "
                     "l.database = (SELECT oid FROM pg_database WHERE datname = "
                     "current_database()) AND l.classid = " AGENT_LOCK_CLASS
                     " AND l.objid = " AGENT_LOCK_RUNNER_OBJID " AND l.granted AND l.pid <> "
                     "pg_backend_pid() AND a.application_name = 'pgrollout-agent' AND EXISTS "
                     "(SELECT 1 FROM pgrollout.owner WHERE id = 1 AND epoch = $1::bigint FOR "
                     "SHARE)",
                     1, (const char *[]){epoch}, &r, NULL) == PGR_OK)
        n = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

static bool stopping(const agent_exec *x)
{
    return x->o->cancel != NULL && *x->o->cancel != 0;
}

/* Pool: waits for the runner lock while the tenant is ours, ending a stale holder's session
 * after takeover_ms; gives up takeover_ms after that (a holder that is not an agent, such as
 * an operator's `pgrollout-agent apply`, is never ended). */
static pgr_code lock_as_owner(agent_exec *x, pgr_error *err)
{
    long long end_at = pgr_clock_mono_ms() + x->o->takeover_ms;
    long long give_up = end_at + x->o->takeover_ms;
    pgr_code rc = try_lock(x, err);
    while (rc == PGR_ERR_LOCKED && !stopping(x) && pgr_clock_mono_ms() < give_up) {
        if (read_fence(x, err) != PGR_OK)
            return x->fenced ? PGR_ERR_LOCKED : PGR_ERR_DB;
        if (end_at > 0 && pgr_clock_mono_ms() >= end_at) {
            x->ended_sessions += end_stale_holders(x);
            end_at = 0;
        }
        pgr_clock_sleep_ms(200);
        rc = try_lock(x, err);
    }
    if (rc != PGR_OK)
        return rc;
    rc = read_fence(x, err); /* under the lock: still ours? */
    if (rc != PGR_OK)
        agent_session_unlock(x);
    return rc;
}

pgr_code agent_session_lock(agent_exec *x, pgr_error *err)
{
    return x->o->fence_epoch > 0 ? lock_as_owner(x, err) : try_lock(x, err);
}

void agent_session_unlock(agent_exec *x)
{
    if (!pgr_pg_conn_lost(x->conn))
        PGR_IGNORE(
            pgr_pg_exec(x->conn, "SELECT pg_advisory_unlock(" AGENT_LOCK_RUNNER ")", NULL, NULL));
}

void agent_session_forget_prefetch(agent_exec *x)
{
    for (size_t i = 0; i < x->index_info_count; i++)
        free(x->index_info[i].def);
    free(x->index_info);
    x->index_info = NULL;
    x->index_info_count = 0;
}
