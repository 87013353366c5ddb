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

pgr_code agent_jobrec_fail(const agent_exec_opts *o, const char *job_id, const char *error,
                           pgr_error *err)
{
    agent_exec x;
    pgr_code rc = jobrec_open(&x, o, err);
    if (rc == PGR_OK)
        rc = pgr_pg_execp(x.conn,
                          "UPDATE pgrollout.jobs SET state = 'failed', error = $2, "
                          "updated_at = now() WHERE job_id = $1 AND state IN ('accepted', "
                          "'running', 'interrupted')",
                          2, (const char *[]){job_id, error}, NULL, err);
    agent_session_close(&x, false);
    return rc;
}

static pgr_code copy_rows(PGresult *r, agent_jobrec_row **out, int *n, pgr_error *err)
{
    agent_jobrec_row *rows = calloc((size_t)PQntuples(r) + 1, sizeof(*rows));
    if (rows == NULL)
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    for (int i = 0; i < PQntuples(r); i++) {
        agent_jobrec_row *row = &rows[*n];
        row->job_id = strdup(PQgetvalue(r, i, 0));
        row->envelope = strdup(PQgetvalue(r, i, 1));
        if (row->job_id != NULL && row->envelope != NULL) {
            (*n)++;
            continue;
        }
        free(row->job_id); /* out of memory: the job stays unfinished, tried next start */
        free(row->envelope);
        row->job_id = row->envelope = NULL;
    }
    *out = rows;
    return PGR_OK;
}

pgr_code agent_jobrec_unfinished(const agent_exec_opts *o, agent_jobrec_row **out, int *n,
                                 pgr_error *err)
{
    agent_exec x;
    PGresult *r = NULL;
    *out = NULL;
    *n = 0;
    pgr_code rc = jobrec_open(&x, o, err);
    if (rc == PGR_OK)
        rc = pgr_pg_exec(x.conn,
                         "SELECT job_id, envelope FROM pgrollout.jobs WHERE state IN ('accepted', "
                         "'running', 'interrupted') AND envelope IS NOT NULL ORDER BY seq",
                         &r, err);
    if (rc == PGR_OK)
        rc = copy_rows(r, out, n, err);
    PQclear(r);
    agent_session_close(&x, false);
    return rc;
}

void agent_jobrec_rows_free(agent_jobrec_row *rows)
{
    for (int i = 0; rows != NULL && rows[i].job_id != NULL; i++) {
        free(rows[i].job_id);
        free(rows[i].envelope);
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
