/*
 * intake.c - the path of a job message into an agent: verify the envelope before anything
 * else, parse strictly, check tenant, expiry, replay and sequence, record it in the tenant
 * database (pgrollout.jobs + audit record, one transaction), then queue it. Every refusal
 * applies nothing, emits a signed security event and, when the tenant is ours, an audit record.
 */
#include "daemon_int.h"
#include "executor_int.h"
#include "seqstore.h"

#include "pgr/crypto.h"
#include "pgr/log.h"
#include "pgr/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

daemon_tenant *daemon_tenant_find(agent_daemon *d, const char *id)
{
    for (size_t i = 0; i < d->tenant_count; i++) {
        if (strcmp(d->tenants[i].conf->id, id) == 0)
            return &d->tenants[i];
    }
    return NULL;
}

void daemon_job_free(daemon_job *j)
{
    if (j == NULL)
        return;
    pgr_job_free(j->job);
    free(j->envelope);
    free(j);
}

/* Opens an executor session on a tenant (no runner lock: intake only appends records). */
static pgr_code tenant_session(agent_daemon *d, daemon_tenant *t, agent_exec_opts *o, agent_exec *x,
                               const char *job_id, const char *op, pgr_error *err)
{
    agent_exec_opts_init(o);
    o->dsn = t->conf->dsn;
    o->pool = &t->pool;
    o->tenant_id = t->conf->id;
    o->agent_id = d->cfg->agent_id;
    o->job_id = job_id != NULL && pgr_uuid_valid(job_id) ? job_id : NULL;
    o->operator_name = op != NULL ? op : "unknown";
    o->state_dir = d->cfg->state_dir; /* the last accepted job seq, also kept there */
    pgr_code rc = agent_exec_open(x, o, false, err);
    if (rc == PGR_OK)
        rc = agent_state_ensure(x, err);
    return rc;
}

/* extra: members added to the record (counted rejections), or NULL; consumed. Returns whether
 * the record was written. */
static bool record_rejection(agent_daemon *d, daemon_tenant *t, const char *tenant,
                             const char *job_id, const char *reason, const char *kid, json_t *extra)
{
    bool ok = false;
    pgr_log_ctx ctx = {"intake", tenant, job_id};
    agent_exec_opts o;
    agent_exec x;
    pgr_error err;
    if (tenant_session(d, t, &o, &x, NULL, "unknown", &err) == PGR_OK) {
        json_t *rec = agent_audit_new(&x, "job_rejected");
        json_object_set_new(rec, "reason", json_string(reason));
        json_object_set_new(rec, "kid", json_string(kid != NULL ? kid : ""));
        json_object_set_new(rec, "rejected_job_id", json_string(job_id != NULL ? job_id : ""));
        if (extra != NULL)
            json_object_update(rec, extra);
        ok = agent_audit_append(&x, rec, &err) == PGR_OK;
        if (!ok)
            pgr_log_error(&ctx, "could not record the rejection: %s", err.msg);
    } else {
        pgr_log_error(&ctx, "could not record the rejection: %s", err.msg);
    }
    agent_exec_close(&x, false);
    json_decref(extra);
    return ok;
}

/* digest: SHA-256 (hex) of the refused message's bytes. The coordinator attributes a refusal
 * to one of its jobs only when this equals the digest of the envelope it published, so a
 * forged message naming a real job id cannot fail that job's run. */
static void reject(agent_daemon *d, daemon_tenant *t, const char *tenant, const char *job_id,
                   const char *reason, const char *kid, const char *detail, const char *digest)
{
    pgr_log_ctx ctx = {"intake", tenant, job_id};
    pgr_log_warn(&ctx, "job rejected (%s): %s", reason, detail);
    /* the audit record first, then the event: whoever sees the event finds the record */
    if (t != NULL)
        PGR_IGNORE(record_rejection(d, t, tenant, job_id, reason, kid, NULL));
    json_t *body = json_pack("{s:s, s:s, s:s, s:s}", "reason", reason, "kid",
                             kid != NULL ? kid : "", "detail", detail, "envelope_sha256", digest);
    daemon_event(d, "security", tenant, job_id, body);
}

bool daemon_reject_counted(agent_daemon *d, daemon_tenant *t, const char *reason, const char *kid,
                           const char *detail, long long count, const char *first, const char *last)
{
    if (!record_rejection(d, t, t->conf->id, NULL, reason, kid,
                          json_pack("{s:I, s:s, s:s}", "count", (json_int_t)count,
                                    "first_envelope_sha256", first, "last_envelope_sha256", last)))
        return false;
    pgr_log_ctx ctx = {"intake", t->conf->id, NULL};
    pgr_log_warn(&ctx, "%lld job message(s) rejected (%s): %s", count, reason, detail);
    t->audit_dirty = 1; /* after the commit, as stepevents.c marks */
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "reason", reason, "kid", kid,
                             "detail", detail, "envelope_sha256", first, "count", (json_int_t)count,
                             "last_envelope_sha256", last);
    daemon_event(d, "security", t->conf->id, NULL, body);
    return true;
}

/* Whether the exact bytes of this message were handled lately (a redelivery or a replayed copy:
 * absorbed without a database round trip); remember marks them handled. */
static bool seen_lately(daemon_tenant *t, const char *digest, bool remember)
{
    size_t n = sizeof(t->recent) / sizeof(t->recent[0]);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(t->recent[i], digest) == 0)
            return true;
    }
    if (remember) {
        snprintf(t->recent[t->recent_next % n], sizeof(t->recent[0]), "%s", digest);
        t->recent_next++;
    }
    return false;
}

/* In one transaction: replay and sequence checks, the jobs row, the audit record. Returns the
 * reason of a refusal in *why (NULL when accepted). */
static pgr_code record_job(agent_exec *x, const pgr_job *job, const char *kid, const char *envelope,
                           const char **why, pgr_error *err)
{
    char seq[32];
    PGresult *r = NULL;
    *why = NULL;
    snprintf(seq, sizeof(seq), "%lld", job->seq);
    const char *params[] = {job->job_id,        seq, job->type, job->rollout_id, job->wave,
                            job->operator_name, kid, envelope};
    pgr_code rc = agent_exec_begin(x, err);
    /* serialise intakes of one tenant database */
    if (rc == PGR_OK)
        rc = pgr_pg_exec(x->conn, "SELECT pg_advisory_xact_lock(1886545775, 2)", NULL, err);
    if (rc == PGR_OK)
        rc = pgr_pg_execp(x->conn,
                          "SELECT (SELECT count(*) FROM pgrollout.jobs WHERE job_id = $1), "
                          "(SELECT coalesce(max(seq), 0) FROM pgrollout.jobs WHERE seq IS NOT "
                          "NULL), (SELECT count(*) FROM pgrollout.jobs WHERE job_id = $1 AND "
                          "envelope = $2)",
                          2, (const char *[]){job->job_id, envelope}, &r, err);
    long long in_db = 0;
    if (rc == PGR_OK) {
        /* the byte-identical envelope of a known job is Kafka delivering again what we
         * recorded (a crash or a failed offset commit), finished or not: absorbed without an
         * alarm, it can run nothing twice. Another envelope reusing a known id is a replay. */
        in_db = strtoll(PQgetvalue(r, 0, 1), NULL, 10); /* a bigint the server wrote */
        *why = strcmp(PQgetvalue(r, 0, 2), "0") != 0   ? "duplicate"
               : strcmp(PQgetvalue(r, 0, 0), "0") != 0 ? "replay"
               : in_db >= job->seq                     ? "stale_seq"
                                                       : NULL;
        PQclear(r);
    }
    if (rc == PGR_OK && *why == NULL) /* the seq kept outside the database too */
        agent_seqstore_check(x, job->seq, in_db, why);
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
        return agent_exec_commit(x, err);
    agent_exec_rollback_txn(x);
    return rc;
}

static void enqueue(daemon_tenant *t, pgr_job *job, const char *envelope)
{
    daemon_job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        pgr_job_free(job);
        return;
    }
    j->job = job;
    j->envelope = strdup(envelope);
    daemon_job **p = &t->queue;
    while (*p != NULL)
        p = &(*p)->next;
    *p = j;
}

/* Checks the verified, parsed job against this agent and the tenant database; records and
 * queues it, or rejects it. Takes ownership of job. */
static bool accept_job(agent_daemon *d, daemon_tenant *t, pgr_job *job, const char *kid,
                       const char *envelope, const char *digest)
{
    agent_exec_opts o;
    agent_exec x;
    pgr_error err;
    const char *why = NULL;

    if (strcmp(job->tenant_id, t->conf->id) != 0) {
        reject(d, t, t->conf->id, job->job_id, "wrong_tenant", kid,
               "the job names another tenant than its message key", digest);
    } else if (time(NULL) > job->expires_at) {
        reject(d, t, t->conf->id, job->job_id, "expired", kid, "the job has expired", digest);
    } else if (tenant_session(d, t, &o, &x, job->job_id, job->operator_name, &err) != PGR_OK ||
               record_job(&x, job, kid, envelope, &why, &err) != PGR_OK) {
        pgr_log_ctx ctx = {"intake", t->conf->id, job->job_id};
        pgr_log_error(&ctx, "could not record the job (will retry): %s", err.msg);
        agent_exec_close(&x, false);
        pgr_job_free(job);
        return false;
    } else {
        agent_exec_close(&x, false);
        if (why == NULL && strcmp(job->type, "cancel") == 0) {
            /* acts at once: the tenant's running job stops (a concurrent build is cancelled
             * and its invalid leftover dropped); it is not resumed later */
            if (t->busy)
                t->cancel = 2;
            daemon_job_end(d, t, job, PGR_OK, NULL, -1, 0);
            pgr_job_free(job);
            return true;
        }
        if (why == NULL) {
            enqueue(t, job, envelope);
            return true;
        }
        if (strcmp(why, "duplicate") == 0) {
            pgr_job_free(job);
            return true;
        }
        reject(d, t, t->conf->id, job->job_id, why, kid,
               x.refusal[0] != '\0'         ? x.refusal
               : strcmp(why, "replay") == 0 ? "this job id was seen before"
                                            : "seq is not above the last accepted job's",
               digest);
    }
    pgr_job_free(job);
    return true;
}

static void job_id_hint(const char *payload, char out[37])
{
    /* only for reporting a rejected, unverified or malformed job: never trusted */
    const char *p = payload != NULL ? strstr(payload, "\"job_id\":\"") : NULL;
    out[0] = '\0';
    if (p != NULL && strlen(p + 10) >= 36)
        snprintf(out, 37, "%.36s", p + 10);
    if (!pgr_uuid_valid(out))
        out[0] = '\0';
}

bool daemon_intake(agent_daemon *d, const rd_kafka_message_t *m)
{
    char tenant[129], kid[PGR_KID_LEN], jid[37], digest[PGR_SHA256_HEX_LEN];
    char *payload = NULL, *env = NULL;
    size_t plen = 0;
    pgr_envelope_reject why;
    pgr_job_reject jwhy;
    pgr_job *job = NULL;
    pgr_error err;

    pgr_kafka_message_key(m, tenant, sizeof(tenant));
    daemon_tenant *t = daemon_tenant_find(d, tenant);
    if (t == NULL)
        return true; /* another agent's tenant on a shared partition */
    pgr_sha256_hex(m->payload != NULL ? m->payload : "", m->len, digest);
    if (seen_lately(t, digest, false))
        return true;
    if (pgr_envelope_open(m->payload, m->len, (size_t)d->cfg->max_job_bytes, PGR_DOMAIN_JOB,
                          d->coordinators, &payload, &plen, NULL, kid, &why, &err) != PGR_OK) {
        /* anyone can write these: counted here, recorded by the rejections thread */
        daemon_rejections_note(d, t, pgr_envelope_reject_name(why), kid, err.msg, digest);
        return true;
    }
    t->audit_dirty = 1; /* accepted or refused, the intake writes a record */
    env = strndup(m->payload != NULL ? (const char *)m->payload : "", m->len);
    if (env == NULL) {
        free(payload);
        return false;
    }
    bool done = true;
    if (pgr_job_parse(payload, plen, &job, &jwhy, &err) != PGR_OK) {
        job_id_hint(payload, jid);
        reject(d, t, tenant, jid[0] != '\0' ? jid : NULL,
               jwhy == PGR_JOB_CHECKSUM_MISMATCH ? "checksum_mismatch" : "malformed", kid, err.msg,
               digest);
    } else {
        done = accept_job(d, t, job, kid, env, digest);
    }
    if (done)
        PGR_IGNORE(seen_lately(t, digest, true));
    free(payload);
    free(env);
    return done;
}

/* Whether the job's seq is at or below the last job of the tenant that ended for good (kept in
 * agent.state_dir, out of the reach of migration SQL): its row was set back. An unreadable file
 * counts as ended (the job is not run; err says why). */
static bool ended_before(agent_daemon *d, daemon_tenant *t, const pgr_job *job, pgr_error *err)
{
    long long ended = 0;
    if (d->cfg->state_dir == NULL)
        return false;
    if (agent_seqstore_read_ended(d->cfg->state_dir, t->conf->id, &ended, err) != PGR_OK)
        return true;
    if (job->seq > ended)
        return false;
    pgr_error_set(err, PGR_ERR_INVALID,
                  "job seq %lld ended before (the last ended job has seq %lld)", job->seq, ended);
    return true;
}

/* A job stored in the tenant database (resumption) or queued in memory (SIGHUP) passes the
 * checks of a new one again before it runs: its envelope verifies with the keyring in force now
 * (a key revoked meanwhile stops it), it names this tenant, and it is the job its row says. The
 * tenant database can be written by the SQL the agent runs, so a row is never trusted alone.
 * Returns the parsed job, or NULL with the refusal's reason and detail. */
static pgr_job *stored_job_open(agent_daemon *d, daemon_tenant *t, const char *row_job_id,
                                const char *env, char kid[PGR_KID_LEN], const char **reason,
                                char *detail, size_t detail_len)
{
    char *payload = NULL;
    size_t plen = 0;
    pgr_envelope_reject why;
    pgr_job_reject jwhy;
    pgr_job *job = NULL;
    pgr_error err;
    *reason = NULL;
    if (pgr_envelope_open(env, strlen(env), (size_t)d->cfg->max_job_bytes, PGR_DOMAIN_JOB,
                          d->coordinators, &payload, &plen, NULL, kid, &why, &err) != PGR_OK) {
        *reason = pgr_envelope_reject_name(why);
    } else if (pgr_job_parse(payload, plen, &job, &jwhy, &err) != PGR_OK) {
        *reason = jwhy == PGR_JOB_CHECKSUM_MISMATCH ? "checksum_mismatch" : "malformed";
    } else if (strcmp(job->tenant_id, t->conf->id) != 0 || strcmp(job->job_id, row_job_id) != 0) {
        *reason = "wrong_tenant";
        pgr_error_set(&err, PGR_ERR_INVALID, "the stored job names another tenant or job id");
    } else if (ended_before(d, t, job, &err)) {
        *reason = "replay";
    }
    free(payload);
    if (*reason != NULL) {
        snprintf(detail, detail_len, "unfinished job not run: %s", err.msg);
        pgr_job_free(job);
        return NULL;
    }
    return job;
}

/* Ends a stored job that failed stored_job_open: its row becomes failed (it is not tried
 * again), the refusal is audited and a security event sent (after the row: 8.1's order). */
static void refuse_stored(agent_daemon *d, daemon_tenant *t, const char *job_id, const char *env,
                          const char *kid, const char *reason, const char *detail)
{
    agent_exec_opts o;
    agent_exec x;
    pgr_error err;
    char digest[PGR_SHA256_HEX_LEN];
    pgr_sha256_hex(env, strlen(env), digest);
    if (tenant_session(d, t, &o, &x, job_id, "agent", &err) == PGR_OK)
        PGR_IGNORE(pgr_pg_execp(x.conn,
                                "UPDATE pgrollout.jobs SET state = 'failed', error = $2, "
                                "updated_at = now() WHERE job_id = $1 AND state IN ('accepted', "
                                "'running', 'interrupted')",
                                2, (const char *[]){job_id, detail}, NULL, &err));
    agent_exec_close(&x, false);
    reject(d, t, t->conf->id, pgr_uuid_valid(job_id) ? job_id : NULL, reason, kid, detail, digest);
}

typedef struct stored_row {
    char *job_id, *env;
} stored_row;

/* The unfinished jobs' rows of a tenant (job id and envelope, seq order); NULL when unread. */
static stored_row *read_unfinished(agent_daemon *d, daemon_tenant *t, int *n)
{
    agent_exec_opts o;
    agent_exec x;
    pgr_error err;
    PGresult *r = NULL;
    stored_row *rows = NULL;
    *n = 0;
    if (tenant_session(d, t, &o, &x, NULL, "agent", &err) == PGR_OK &&
        pgr_pg_exec(x.conn,
                    "SELECT job_id, envelope FROM pgrollout.jobs WHERE state IN ('accepted', "
                    "'running', 'interrupted') AND envelope IS NOT NULL ORDER BY seq",
                    &r, &err) == PGR_OK) {
        rows = calloc((size_t)PQntuples(r) + 1, sizeof(*rows));
        for (int i = 0; rows != NULL && i < PQntuples(r); i++) {
            stored_row *row = &rows[*n];
            row->job_id = strdup(PQgetvalue(r, i, 0));
            row->env = strdup(PQgetvalue(r, i, 1));
            if (row->job_id != NULL && row->env != NULL) {
                (*n)++;
                continue;
            }
            free(row->job_id); /* out of memory: the job stays unfinished, tried next start */
            free(row->env);
            row->job_id = row->env = NULL;
        }
    } else {
        pgr_log_ctx ctx = {"resume", t->conf->id, NULL};
        pgr_log_error(&ctx, "could not read unfinished jobs: %s", err.msg);
    }
    PQclear(r);
    agent_exec_close(&x, false);
    return rows;
}

/* Jobs accepted before a restart and not finished: checked again (stored_job_open) and queued in
 * seq order. */
static void resume_tenant(agent_daemon *d, daemon_tenant *t)
{
    pgr_log_ctx ctx = {"resume", t->conf->id, NULL};
    int n = 0;
    stored_row *rows = read_unfinished(d, t, &n);
    for (int i = 0; rows != NULL && i < n; i++) {
        char kid[PGR_KID_LEN] = "", detail[512];
        const char *reason = NULL;
        pgr_job *job = stored_job_open(d, t, rows[i].job_id, rows[i].env, kid, &reason, detail,
                                       sizeof(detail));
        if (job != NULL) {
            pgr_log_info(&ctx, "resuming job %s (seq %lld)", job->job_id, job->seq);
            enqueue(t, job, rows[i].env);
        } else {
            refuse_stored(d, t, rows[i].job_id, rows[i].env, kid, reason, detail);
        }
    }
    for (int i = 0; rows != NULL && rows[i].job_id != NULL; i++) {
        free(rows[i].job_id);
        free(rows[i].env);
    }
    free(rows);
}

void daemon_resume(agent_daemon *d)
{
    for (size_t i = 0; i < d->tenant_count; i++)
        resume_tenant(d, &d->tenants[i]);
}

void daemon_recheck_queued(agent_daemon *d)
{
    for (size_t i = 0; i < d->tenant_count; i++) {
        daemon_tenant *t = &d->tenants[i];
        daemon_job **p = &t->queue;
        while (*p != NULL) {
            daemon_job *j = *p;
            char kid[PGR_KID_LEN] = "", detail[512];
            const char *reason = NULL;
            pgr_job *again = stored_job_open(d, t, j->job->job_id, j->envelope, kid, &reason,
                                             detail, sizeof(detail));
            if (again != NULL) {
                pgr_job_free(again);
                p = &j->next;
                continue;
            }
            *p = j->next; /* out of the queue before it ever starts */
            refuse_stored(d, t, j->job->job_id, j->envelope, kid, reason, detail);
            daemon_job_free(j);
        }
    }
}

void daemon_audit_all(agent_daemon *d, const char *action, json_t *extra)
{
    for (size_t i = 0; i < d->tenant_count; i++) {
        agent_exec_opts o;
        agent_exec x;
        pgr_error err;
        daemon_tenant *t = &d->tenants[i];
        t->audit_dirty = 1;
        if (tenant_session(d, t, &o, &x, NULL, "agent", &err) == PGR_OK) {
            json_t *rec = agent_audit_new(&x, action);
            json_object_set_new(rec, "kid", json_string(d->key.kid));
            if (extra != NULL)
                json_object_update(rec, extra);
            if (agent_audit_append(&x, rec, &err) != PGR_OK) {
                pgr_log_ctx ctx = {"audit", t->conf->id, NULL};
                pgr_log_warn(&ctx, "could not record %s: %s", action, err.msg);
            }
        }
        agent_exec_close(&x, false);
    }
}

/* The job_end record of a job that ran no executor, with a verify job's count of problems:
 * the audit chain shows what every accepted job came to, a drift check included. */
static pgr_code job_end_record(agent_exec *x, const pgr_job *job, pgr_code rc, int problems,
                               long long duration_ms, pgr_error *err)
{
    json_t *rec = agent_audit_job_end(x, job->type, rc, duration_ms);
    if (problems >= 0)
        json_object_set_new(rec, "problems", json_integer(problems));
    return agent_audit_append(x, rec, err);
}

void daemon_job_end(agent_daemon *d, daemon_tenant *t, const pgr_job *job, pgr_code rc,
                    const char *error, int problems, long long duration_ms)
{
    agent_exec_opts o;
    agent_exec x;
    pgr_error err;
    pgr_code wrc = tenant_session(d, t, &o, &x, job->job_id, job->operator_name, &err);
    if (wrc == PGR_OK)
        wrc = agent_exec_begin(&x, &err);
    if (wrc == PGR_OK)
        wrc = agent_state_job(&x, job->type, rc == PGR_OK ? "succeeded" : "failed", error, &err);
    if (wrc == PGR_OK)
        wrc = job_end_record(&x, job, rc, problems, duration_ms, &err);
    if (wrc == PGR_OK)
        wrc = agent_exec_commit(&x, &err);
    if (wrc != PGR_OK) {
        agent_exec_rollback_txn(&x);
        pgr_log_ctx ctx = {"intake", t->conf->id, job->job_id};
        pgr_log_warn(&ctx, "could not record the job's end: %s", err.msg);
    }
    /* after the commit: a publisher visit during the transaction found nothing to send and
     * cleared the mark (stepevents.c marks after the commit too) */
    t->audit_dirty = 1;
    agent_exec_close(&x, false);
}
