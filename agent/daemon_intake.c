/*
 * daemon_intake.c - the path of a job message into an agent: verify the envelope before anything
 * else, parse strictly, check tenant, expiry, replay and sequence, record it in the tenant
 * database (pgrollout.jobs + audit record, one transaction), then queue it. Every refusal
 * applies nothing, emits a signed security event and, when the tenant is ours, an audit record.
 */
#include "daemon_intake.h"
#include "daemon_events.h"
#include "daemon_rejections.h"
#include "daemon_release.h"
#include "daemon_tenant.h"
#include "seqstore.h"

#include "pgr/crypto.h"
#include "pgr/log.h"
#include "pgr/pg.h"
#include "pgr/str.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* digest: SHA-256 (hex) of the refused message's bytes. The coordinator attributes a refusal
 * to one of its jobs only when this equals the digest of the envelope it published, so a
 * forged message naming a real job id cannot fail that job's run. */
static void reject(agent_daemon *d, daemon_tenant *t, const char *tenant, const char *job_id,
                   const char *reason, const char *kid, const char *detail, const char *digest)
{
    pgr_log_ctx ctx = {"intake", tenant, job_id};
    pgr_log_warn(&ctx, "job rejected (%s): %s", reason, detail);
    char labels[64];
    snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
    pgr_metrics_add(d->metrics, "pgrollout_agent_rejections_total",
                    "job messages refused, by reason (docs/PROTOCOL.md 8.1)", labels, 1);
    /* the audit record first, then the event: whoever sees the event finds the record */
    /* a release refusal names the missing piece in the record (text of ours: versions, release
     * ids, key counts); other details may quote the sender's bytes and stay in the event */
    json_t *extra = strcmp(reason, "release") == 0 ? json_pack("{s:s}", "detail", detail) : NULL;
    if (t != NULL)
        PGR_IGNORE(daemon_tenant_record_rejection(d, t, tenant, job_id, reason, kid, extra));
    else
        json_decref(extra);
    json_t *body = json_pack("{s:s, s:s, s:s, s:s}", "reason", reason, "kid",
                             kid != NULL ? kid : "", "detail", detail, "envelope_sha256", digest);
    daemon_events_send(d, "security", tenant, job_id, body);
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

/* Queues a checked job with the releases that allowed it (digests and kids, as the check gave
 * them: the worker does not read the keyring, which SIGHUP replaces on this thread). */
static void enqueue(daemon_tenant *t, pgr_job *job, const char *envelope, const char *digests,
                    const char *kids)
{
    daemon_job *j = calloc(1, sizeof(*j));
    if (j != NULL) {
        snprintf(j->release_digests, sizeof(j->release_digests), "%s", digests);
        snprintf(j->release_kids, sizeof(j->release_kids), "%s", kids);
    }
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
    pgr_error err;
    const char *why = NULL;
    char refusal[AGENT_REFUSAL_LEN] = "";
    int fenced = 0;

    char release_why[512] = "", digests[DAEMON_RELEASE_DIGESTS_LEN], kids[DAEMON_RELEASE_KIDS_LEN];
    daemon_tenant_opts(d, t, &o, job->job_id, job->operator_name);
    o.fenced = &fenced;
    bool released =
        daemon_release_allows(d, t, job, release_why, sizeof(release_why), digests, kids);
    o.release_digests = digests[0] != '\0' ? digests : NULL;
    o.release_kids = kids[0] != '\0' ? kids : NULL;
    if (strcmp(job->tenant_id, t->conf->id) != 0) {
        reject(d, t, t->conf->id, job->job_id, "wrong_tenant", kid,
               "the job names another tenant than its message key", digest);
    } else if (time(NULL) > job->expires_at) {
        reject(d, t, t->conf->id, job->job_id, "expired", kid, "the job has expired", digest);
    } else if (!released) {
        reject(d, t, t->conf->id, job->job_id, "release", kid, release_why, digest);
    } else if (agent_jobrec_accept(&o, job, kid, envelope, &why, refusal, &err) != PGR_OK) {
        pgr_log_ctx ctx = {"intake", t->conf->id, job->job_id};
        pgr_log_error(&ctx, "could not record the job (will retry): %s", err.msg);
        pgr_metrics_add(d->metrics, "pgrollout_agent_tenant_db_errors_total",
                        "tenant database operations that failed, by where", "where=\"intake\"", 1);
        if (fenced != 0)
            t->fence_lost = 1; /* daemon_pool_take decides: lost, or take it back */
        pgr_job_free(job);
        return false;
    } else {
        if (why == NULL && strcmp(job->type, "cancel") == 0) {
            /* acts at once: the tenant's running job stops (a concurrent build is cancelled
             * and its invalid leftover dropped); it is not resumed later */
            if (t->busy)
                t->cancel = 2;
            daemon_tenant_job_end(d, t, job, PGR_OK, NULL, -1, 0, t->epoch, NULL);
            pgr_job_free(job);
            return true;
        }
        if (why == NULL) {
            enqueue(t, job, envelope, digests, kids);
            return true;
        }
        if (strcmp(why, "duplicate") == 0) {
            pgr_job_free(job);
            return true;
        }
        reject(d, t, t->conf->id, job->job_id, why, kid,
               refusal[0] != '\0'           ? refusal
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

bool daemon_intake_message(agent_daemon *d, const rd_kafka_message_t *m)
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
    if (t == NULL || !t->owned)
        return true; /* another agent's tenant on a shared partition */
    if (!t->taken)
        return false; /* a pool's tenant not yet taken over: read again once it is */
    pgr_crypto_sha256_hex(m->payload != NULL ? m->payload : "", m->len, digest);
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
                                char *detail, size_t detail_len,
                                char digests[DAEMON_RELEASE_DIGESTS_LEN],
                                char kids[DAEMON_RELEASE_KIDS_LEN])
{
    char *payload = NULL;
    size_t plen = 0;
    pgr_envelope_reject why;
    pgr_job_reject jwhy;
    pgr_job *job = NULL;
    pgr_error err;
    char rwhy[512];
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
    } else if (!daemon_release_allows(d, t, job, rwhy, sizeof(rwhy), digests, kids)) {
        *reason = "release"; /* a release key revoked, or a manifest expired, meanwhile */
        pgr_error_set(&err, PGR_ERR_INVALID, "%s", rwhy);
    }
    free(payload);
    if (*reason != NULL) {
        pgr_str_cut(detail, detail_len, "unfinished job not run: %s", err.msg);
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
    char digest[PGR_SHA256_HEX_LEN];
    pgr_crypto_sha256_hex(env, strlen(env), digest);
    daemon_tenant_opts(d, t, &o, job_id, "agent");
    PGR_IGNORE(agent_jobrec_fail(&o, job_id, detail, NULL));
    reject(d, t, t->conf->id, pgr_uuid_valid(job_id) ? job_id : NULL, reason, kid, detail, digest);
}

/* The unfinished jobs' rows of a tenant (job id and envelope, seq order); NULL when unread. */
static agent_jobrec_row *read_unfinished(agent_daemon *d, daemon_tenant *t, int *n)
{
    agent_exec_opts o;
    pgr_error err;
    agent_jobrec_row *rows = NULL;
    daemon_tenant_opts(d, t, &o, NULL, "agent");
    if (agent_jobrec_unfinished(&o, &rows, n, &err) != PGR_OK) {
        pgr_log_ctx ctx = {"resume", t->conf->id, NULL};
        pgr_log_error(&ctx, "could not read unfinished jobs: %s", err.msg);
    }
    return rows;
}

/* The members of a result (PROTOCOL 9.5) in a body read back from the tenant database, which
 * migration SQL can write: only those, each of its own type; NULL when no outcome is left. */
static json_t *result_members(const char *stored)
{
    static const char *const strings[] = {"job_type", "outcome", "code", "message", "from_version"};
    json_t *in = json_loads(stored, 0, NULL), *out = json_object();
    for (size_t i = 0; in != NULL && out != NULL && i < sizeof(strings) / sizeof(strings[0]); i++) {
        json_t *v = json_object_get(in, strings[i]);
        if (json_is_string(v))
            json_object_set(out, strings[i], v);
    }
    json_t *verified = json_object_get(in, "verified");
    if (out != NULL && json_is_boolean(verified))
        json_object_set(out, "verified", verified);
    json_decref(in);
    if (out != NULL && json_object_get(out, "outcome") == NULL) {
        json_decref(out);
        out = NULL;
    }
    return out;
}

/* Results of jobs that ended but were not acknowledged by Kafka (the agent that ran them died or
 * stopped first): sent again, all marked reported once all are acknowledged (one wait per
 * tenant: this runs on the main thread). The coordinator stores a final result once. */
static void resend_results(agent_daemon *d, daemon_tenant *t)
{
    pgr_log_ctx ctx = {"resume", t->conf->id, NULL};
    agent_exec_opts o;
    pgr_error err;
    int n = 0, sent = 0;
    agent_jobrec_row *rows = NULL;
    daemon_tenant_opts(d, t, &o, NULL, "agent");
    if (agent_jobrec_unreported(&o, &rows, &n, &err) != PGR_OK)
        pgr_log_warn(&ctx, "could not read unreported results: %s", err.msg);
    pgr_kafka_tracker *tr = n > 0 ? pgr_kafka_tracker_new() : NULL;
    for (int i = 0; tr != NULL && i < n; i++) {
        json_t *body = result_members(rows[i].result);
        pgr_log_info(&ctx, "sending the result of job %s again", rows[i].job_id);
        if (body != NULL &&
            daemon_events_send_tracked(d, "result", t->conf->id, rows[i].job_id, body, tr))
            sent++;
    }
    if (sent == n && tr != NULL && pgr_kafka_tracker_wait(d->producer, tr, 5000, &err) == PGR_OK) {
        for (int i = 0; i < n; i++)
            PGR_IGNORE(agent_jobrec_result(&o, rows[i].job_id, NULL, &err));
    }
    pgr_kafka_tracker_free(tr);
    agent_jobrec_rows_free(rows);
}

/* Jobs accepted before a restart and not finished: checked again (stored_job_open) and queued in
 * seq order; results not acknowledged are sent again. */
void daemon_intake_resume_tenant(agent_daemon *d, daemon_tenant *t)
{
    pgr_log_ctx ctx = {"resume", t->conf->id, NULL};
    int n = 0;
    agent_jobrec_row *rows = read_unfinished(d, t, &n);
    for (int i = 0; rows != NULL && i < n; i++) {
        char kid[PGR_KID_LEN] = "", detail[512], digests[DAEMON_RELEASE_DIGESTS_LEN] = "",
             kids[DAEMON_RELEASE_KIDS_LEN] = "";
        const char *reason = NULL;
        pgr_job *job = stored_job_open(d, t, rows[i].job_id, rows[i].envelope, kid, &reason, detail,
                                       sizeof(detail), digests, kids);
        if (job != NULL) {
            pgr_log_info(&ctx, "resuming job %s (seq %lld)", job->job_id, job->seq);
            enqueue(t, job, rows[i].envelope, digests, kids);
        } else {
            refuse_stored(d, t, rows[i].job_id, rows[i].envelope, kid, reason, detail);
        }
    }
    agent_jobrec_rows_free(rows);
    resend_results(d, t);
}

void daemon_intake_resume(agent_daemon *d)
{
    for (size_t i = 0; i < d->tenant_count; i++)
        daemon_intake_resume_tenant(d, &d->tenants[i]);
}

void daemon_intake_recheck_queued(agent_daemon *d)
{
    for (size_t i = 0; i < d->tenant_count; i++) {
        daemon_tenant *t = &d->tenants[i];
        daemon_job **p = &t->queue;
        while (*p != NULL) {
            daemon_job *j = *p;
            char kid[PGR_KID_LEN] = "", detail[512];
            const char *reason = NULL;
            pgr_job *again = stored_job_open(d, t, j->job->job_id, j->envelope, kid, &reason,
                                             detail, sizeof(detail), NULL, NULL);
            if (again != NULL) {
                pgr_job_free(again);
                p = &j->next;
                continue;
            }
            *p = j->next; /* out of the queue before it ever starts */
            refuse_stored(d, t, j->job->job_id, j->envelope, kid, reason, detail);
            daemon_tenant_job_free(j);
        }
    }
}
