/*
 * jobrec.c - the daemon's records of the jobs it receives, in the tenant database (the job
 * declarations of executor.h): each call opens a session without the runner lock (the intake only
 * appends records, and a job may be running), installs the tenant state when missing, writes, and
 * closes.
 */
#include "audit.h"
#include "seqstore.h"
#include "session.h"
#include "state.h"

#include "pgr/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pgr_code jobrec_open(agent_exec *x, const agent_exec_opts *o, pgr_error *err)
{
    pgr_code rc = agent_session_open(x, o, false, err);
    if (rc == PGR_OK)
        rc = agent_state_ensure(x, err);
    return rc;
}

pgr_code agent_jobrec_audit(const agent_exec_opts *o, const char *action, json_t *fields,
                            pgr_error *err)
{
    agent_exec x;
    pgr_code rc = jobrec_open(&x, o, err);
    if (rc == PGR_OK) {
        json_t *rec = agent_audit_new(&x, action);
        if (fields != NULL)
            json_object_update(rec, fields);
        rc = agent_audit_append(&x, rec, err);
    }
    agent_session_close(&x, false);
    json_decref(fields);
    return rc;
}

/* In the open transaction, under the intake lock: the replay and sequence checks. */
static pgr_code accept_checks(agent_exec *x, const pgr_job *job, const char *envelope,
                              const char **why, pgr_error *err)
{
    PGresult *r = NULL;
    pgr_code rc = pgr_pg_execp(x->conn,
                               "SELECT (SELECT count(*) FROM pgrollout.jobs WHERE job_id = $1), "
                               "(SELECT coalesce(max(seq), 0) FROM pgrollout.jobs WHERE seq IS "
                               "NOT NULL), (SELECT count(*) FROM pgrollout.jobs WHERE job_id = $1 "
                               "AND envelope = $2)",
                               2, (const char *[]){job->job_id, envelope}, &r, err);
    if (rc != PGR_OK)
        return rc;
    /* the byte-identical envelope of a known job is Kafka delivering again what we recorded (a
     * crash or a failed offset commit), finished or not: absorbed without an alarm, it can run
     * nothing twice. Another envelope reusing a known id is a replay. */
    long long in_db = strtoll(PQgetvalue(r, 0, 1), NULL, 10); /* a bigint the server wrote */
    *why = strcmp(PQgetvalue(r, 0, 2), "0") != 0   ? "duplicate"
           : strcmp(PQgetvalue(r, 0, 0), "0") != 0 ? "replay"
           : in_db >= job->seq                     ? "stale_seq"
                                                   : NULL;
    PQclear(r);
    if (*why == NULL) /* the seq kept outside the database too */
        agent_seqstore_check(x->o->state_dir, x->tenant, job->seq, in_db, why, x->refusal,
                             &x->seq_to_keep);
    return PGR_OK;
}

/* Pool: the owner epoch is still this agent's, and stays so until the transaction ends (a
 * take-over waits for the row lock, then raises it). */
static pgr_code owner_still(agent_exec *x, pgr_error *err)
{
    PGresult *r = NULL;
    if (pgr_pg_exec(x->conn, "SELECT epoch FROM pgrollout.owner WHERE id = 1 FOR SHARE", &r, err) !=
        PGR_OK)
        return PGR_ERR_DB;
    pgr_code rc = agent_session_fence_check(x, PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "", err);
    PQclear(r);
    return rc;
}

/* In one transaction: replay and sequence checks, the jobs row, the audit record. */
static pgr_code accept_job(agent_exec *x, const pgr_job *job, const char *kid, const char *envelope,
                           const char **why, pgr_error *err)
{
    char seq[32];
    snprintf(seq, sizeof(seq), "%lld", job->seq);
    const char *params[] = {job->job_id,        seq, job->type, job->rollout_id, job->wave,
                            job->operator_name, kid, envelope};
    pgr_code rc = agent_session_begin(x, err);
    /* serialise intakes of one tenant database */
    if (rc == PGR_OK)
        rc = pgr_pg_exec(x->conn, "SELECT pg_advisory_xact_lock(" AGENT_LOCK_INTAKE ")", NULL, err);
    if (rc == PGR_OK && x->o->fence_epoch > 0)
        rc = owner_still(x, err);
    if (rc == PGR_OK)
        rc = accept_checks(x, job, envelope, why, err);
    if (rc == PGR_OK && *why == NULL)
        rc = pgr_pg_execp(x->conn,
                          "INSERT INTO pgrollout.jobs (job_id, seq, type, state, rollout_id, "
                          "wave, operator, kid, envelope) VALUES ($1, $2, $3, 'accepted', $4, "
                          "$5, $6, $7, $8)",
                          8, params, NULL, err);
    if (rc == PGR_OK && *why == NULL) {
        json_t *rec = agent_audit_new(x, "job_accepted");
        json_object_set_new(rec, "kid", json_string(kid));
        json_object_set_new(rec, "job_seq", json_integer(job->seq));
        json_object_set_new(rec, "type", json_string(job->type));
        rc = agent_audit_append(x, rec, err);
    }
    if (rc == PGR_OK && *why == NULL)
        return agent_session_commit(x, err);
    agent_session_rollback(x);
    return rc;
}

pgr_code agent_jobrec_accept(const agent_exec_opts *o, const pgr_job *job, const char *kid,
                             const char *envelope, const char **why,
                             char refusal[AGENT_REFUSAL_LEN], pgr_error *err)
{
    agent_exec x;
    *why = NULL;
    refusal[0] = '\0';
    pgr_code rc = jobrec_open(&x, o, err);
    if (rc == PGR_OK)
        rc = accept_job(&x, job, kid, envelope, why, err);
    if (rc == PGR_OK)
        snprintf(refusal, AGENT_REFUSAL_LEN, "%s", x.refusal);
    agent_session_close(&x, false);
    return rc;
}

/* One statement on a session of its own. */
static pgr_code write_row(const agent_exec_opts *o, const char *sql, int nparams,
                          const char *const *params, pgr_error *err)
{
    agent_exec x;
    pgr_code rc = jobrec_open(&x, o, err);
    if (rc == PGR_OK)
        rc = pgr_pg_execp(x.conn, sql, nparams, params, NULL, err);
    agent_session_close(&x, false);
    return rc;
}

pgr_code agent_jobrec_fail(const agent_exec_opts *o, const char *job_id, const char *error,
                           pgr_error *err)
{
    return write_row(o,
                     "UPDATE pgrollout.jobs SET state = 'failed', error = $2, updated_at = "
                     "now(), reported_at = now() WHERE job_id = $1 AND state IN ('accepted', "
                     "'running', 'interrupted')",
                     2, (const char *[]){job_id, error}, err);
}

/* Rows of (job id, text): text is the envelope, or with result the result body. */
static pgr_code copy_rows(PGresult *r, bool result, agent_jobrec_row **out, int *n, pgr_error *err)
{
    agent_jobrec_row *rows = calloc((size_t)PQntuples(r) + 1, sizeof(*rows));
    if (rows == NULL)
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    for (int i = 0; i < PQntuples(r); i++) {
        agent_jobrec_row *row = &rows[*n];
        char *text = strdup(PQgetvalue(r, i, 1));
        row->job_id = strdup(PQgetvalue(r, i, 0));
        *(result ? &row->result : &row->envelope) = text;
        if (row->job_id != NULL && text != NULL) {
            (*n)++;
            continue;
        }
        free(row->job_id); /* out of memory: the job stays as it is, tried next start */
        free(text);
        memset(row, 0, sizeof(*row));
    }
    *out = rows;
    return PGR_OK;
}

/* Rows of (job id, text) that sql reads on a session of its own (copy_rows). */
static pgr_code read_rows(const agent_exec_opts *o, const char *sql, bool result,
                          agent_jobrec_row **out, int *n, pgr_error *err)
{
    agent_exec x;
    PGresult *r = NULL;
    *out = NULL;
    *n = 0;
    pgr_code rc = jobrec_open(&x, o, err);
    if (rc == PGR_OK)
        rc = pgr_pg_exec(x.conn, sql, &r, err);
    if (rc == PGR_OK)
        rc = copy_rows(r, result, out, n, err);
    PQclear(r);
    agent_session_close(&x, false);
    return rc;
}

pgr_code agent_jobrec_unfinished(const agent_exec_opts *o, agent_jobrec_row **out, int *n,
                                 pgr_error *err)
{
    return read_rows(o,
                     "SELECT job_id, envelope FROM pgrollout.jobs WHERE state IN ('accepted', "
                     "'running', 'interrupted') AND envelope IS NOT NULL ORDER BY seq",
                     false, out, n, err);
}

/* The body as sent, or, when the agent stopped before it was kept, one made from the row (no
 * from_version or verified then: the coordinator sends a verify job if it needs one). */
pgr_code agent_jobrec_unreported(const agent_exec_opts *o, agent_jobrec_row **out, int *n,
                                 pgr_error *err)
{
    return read_rows(o,
                     "SELECT job_id, coalesce(result, json_build_object('job_type', type, "
                     "'outcome', state, 'code', CASE WHEN state = 'succeeded' THEN 'ok' ELSE "
                     "'internal' END, 'message', error)::text) FROM pgrollout.jobs WHERE state "
                     "IN ('succeeded', 'failed', 'cancelled') AND reported_at IS NULL AND type "
                     "IN ('apply', 'rollback', 'verify') AND envelope IS NOT NULL ORDER BY seq",
                     true, out, n, err);
}

pgr_code agent_jobrec_result(const agent_exec_opts *o, const char *job_id, const char *result,
                             pgr_error *err)
{
    if (result != NULL)
        return write_row(o, "UPDATE pgrollout.jobs SET result = $2 WHERE job_id = $1", 2,
                         (const char *[]){job_id, result}, err);
    return write_row(o, "UPDATE pgrollout.jobs SET reported_at = now() WHERE job_id = $1", 1,
                     (const char *[]){job_id}, err);
}

void agent_jobrec_rows_free(agent_jobrec_row *rows)
{
    for (int i = 0; rows != NULL && rows[i].job_id != NULL; i++) {
        free(rows[i].job_id);
        free(rows[i].envelope);
        free(rows[i].result);
    }
    free(rows);
}

/* The job_end record of a job that ran no executor, with a verify job's count of problems: the
 * audit chain shows what every accepted job came to, a drift check included. */
static pgr_code job_end_record(agent_exec *x, const pgr_job *job, pgr_code rc, int problems,
                               long long duration_ms, pgr_error *err)
{
    json_t *rec = agent_audit_job_end(x, job->type, rc, duration_ms);
    if (problems >= 0)
        json_object_set_new(rec, "problems", json_integer(problems));
    return agent_audit_append(x, rec, err);
}

pgr_code agent_jobrec_end(const agent_exec_opts *o, const pgr_job *job, pgr_code rc,
                          const char *error, int problems, long long duration_ms, pgr_error *err)
{
    agent_exec x;
    pgr_code wrc = jobrec_open(&x, o, err);
    if (wrc == PGR_OK)
        wrc = agent_session_begin(&x, err);
    if (wrc == PGR_OK && o->fence_epoch > 0) /* a verify job runs without the runner lock */
        wrc = owner_still(&x, err);
    if (wrc == PGR_OK)
        wrc = agent_state_job(&x, job->type, rc == PGR_OK ? "succeeded" : "failed", error, err);
    if (wrc == PGR_OK)
        wrc = job_end_record(&x, job, rc, problems, duration_ms, err);
    if (wrc == PGR_OK)
        wrc = agent_session_commit(&x, err);
    if (wrc != PGR_OK)
        agent_session_rollback(&x);
    agent_session_close(&x, false);
    return wrc;
}

/* The owner row raised in place: the epoch only grows, whoever wrote it last. The row is
 * locked and read first: a locking read in the same statement as the upsert would not see the
 * row that statement updates. */
static pgr_code take_over(agent_exec *x, const char *pool, long long *epoch, pgr_error *err)
{
    PGresult *prev = NULL, *r = NULL;
    const char *params[] = {x->o->agent_id != NULL ? x->o->agent_id : "", pool};
    pgr_code rc = pgr_pg_exec(
        x->conn, "SELECT agent_id FROM pgrollout.owner WHERE id = 1 FOR UPDATE", &prev, err);
    if (rc == PGR_OK)
        rc = pgr_pg_execp(x->conn,
                          "INSERT INTO pgrollout.owner AS o (id, epoch, agent_id, pool) VALUES "
                          "(1, 1, $1, $2) ON CONFLICT (id) DO UPDATE SET epoch = o.epoch + 1, "
                          "agent_id = $1, pool = $2, since = now() RETURNING epoch",
                          2, params, &r, err);
    if (rc != PGR_OK) {
        PQclear(prev);
        return rc;
    }
    *epoch = strtoll(PQgetvalue(r, 0, 0), NULL, 10); /* a bigint the server wrote */
    json_t *rec = agent_audit_new(x, "tenant_taken_over");
    json_object_set_new(rec, "pool", json_string(pool));
    json_object_set_new(rec, "owner_epoch", json_integer(*epoch));
    json_object_set_new(rec, "previous_agent",
                        PQntuples(prev) == 1 ? json_string(PQgetvalue(prev, 0, 0)) : json_null());
    PQclear(prev);
    PQclear(r);
    return agent_audit_append(x, rec, err);
}

pgr_code agent_jobrec_take_over(const agent_exec_opts *o, const char *pool, long long *epoch,
                                pgr_error *err)
{
    agent_exec x;
    pgr_code rc = jobrec_open(&x, o, err);
    if (rc == PGR_OK)
        rc = agent_session_begin(&x, err);
    if (rc == PGR_OK) {
        rc = take_over(&x, pool, epoch, err);
        if (rc == PGR_OK)
            rc = agent_session_commit(&x, err);
        else
            agent_session_rollback(&x);
    }
    agent_session_close(&x, false);
    return rc;
}
