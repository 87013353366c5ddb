/*
 * daemon_worker.c - one worker thread per running tenant (up to agent.max_parallel): it runs a
 * queued job with the executor and reports its result.
 */
#include "daemon_worker.h"
#include "daemon_audit.h"
#include "daemon_events.h"
#include "daemon_tenant.h"
#include "failpoint.h"
#include "seqstore.h"

#include "pgr/clock.h"
#include "pgr/log.h"

#include <stdlib.h>
#include <string.h>

static void worker_execute(agent_daemon *d, daemon_tenant *t, daemon_job *j, long long epoch);

/* How long a worker waits for Kafka to acknowledge its job's result. */
#define RESULT_ACK_MS 10000

typedef struct worker_arg {
    agent_daemon *d;
    daemon_tenant *t;
    daemon_job *j;
    long long epoch; /* the tenant's owner epoch when the job started (pool; else 0) */
} worker_arg;

static void *worker_main(void *arg)
{
    worker_arg *w = arg;
    worker_execute(w->d, w->t, w->j, w->epoch);
    daemon_tenant_job_free(w->j);
    w->t->done = 1;
    free(w);
    return NULL;
}

/* Starts queued jobs on idle tenants while slots are free; joins finished workers. */
void daemon_worker_dispatch(agent_daemon *d, bool start)
{
    for (size_t i = 0; i < d->tenant_count; i++) {
        daemon_tenant *t = &d->tenants[i];
        if (t->busy && t->done) {
            pthread_join(t->thread, NULL);
            t->busy = false;
            t->done = 0;
            d->active--;
        }
    }
    for (size_t i = 0; i < d->tenant_count && start; i++) {
        daemon_tenant *t = &d->tenants[i];
        if (t->busy || t->queue == NULL || !t->taken || d->active >= d->cfg->max_parallel)
            continue;
        worker_arg *w = malloc(sizeof(*w));
        if (w == NULL)
            return;
        w->d = d;
        w->t = t;
        w->j = t->queue;
        w->epoch = t->epoch;
        t->queue = w->j->next;
        t->busy = true;
        t->cancel = 0;
        t->done = 0;
        t->audit_visit_ms = pgr_clock_mono_ms(); /* its records go out after it, or in 5 s */
        if (pthread_create(&t->thread, NULL, worker_main, w) != 0) {
            t->queue = w->j; /* try again on the next round */
            t->busy = false;
            free(w);
            return;
        }
        d->active++;
    }
}

static agent_orphans orphan_option(const char *s)
{
    if (strcmp(s, "quarantine") == 0)
        return AGENT_ORPHANS_QUARANTINE;
    return strcmp(s, "abort") == 0 ? AGENT_ORPHANS_ABORT : AGENT_ORPHANS_FILE;
}

/* A job that ended for good is never resumed again, whatever its row says later. */
static void keep_ended(agent_daemon *d, daemon_tenant *t, const pgr_job *job)
{
    pgr_error err;
    if (d->cfg->state_dir == NULL || job->seq <= 0 ||
        agent_seqstore_keep_ended(d->cfg->state_dir, t->conf->id, job->seq, &err) == PGR_OK)
        return;
    pgr_log_ctx ctx = {"executor", t->conf->id, job->job_id};
    pgr_log_error(&ctx, "could not keep the ended job seq %lld: %s", job->seq, err.msg);
}

/* A final result: its body kept in the job's row, then sent, then the row marked reported
 * once Kafka acknowledged it. A result not acknowledged (the agent died, Kafka was away) is
 * sent again by the agent that serves the tenant next (daemon_intake_resume_tenant). */
static void report_result(agent_daemon *d, daemon_tenant *t, const agent_exec_opts *o,
                          const char *job_id, json_t *result)
{
    pgr_log_ctx ctx = {"executor", t->conf->id, job_id};
    pgr_error err;
    char *body = result != NULL ? json_dumps(result, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (body != NULL && agent_jobrec_result(o, job_id, body, &err) != PGR_OK)
        pgr_log_warn(&ctx, "could not keep the job's result (it is sent anyway): %s", err.msg);
    free(body);
    agent_failpoint("result_unsent"); /* tests: the result recorded, not yet sent */
    pgr_kafka_tracker *tr = pgr_kafka_tracker_new();
    bool sent =
        tr != NULL && daemon_events_send_tracked(d, "result", t->conf->id, job_id, result, tr);
    if (tr == NULL)
        json_decref(result);
    if (sent && pgr_kafka_tracker_wait(d->producer, tr, RESULT_ACK_MS, &err) == PGR_OK &&
        agent_jobrec_result(o, job_id, NULL, &err) != PGR_OK)
        pgr_log_warn(&ctx, "could not mark the result reported (it may be sent again): %s",
                     err.msg);
    pgr_kafka_tracker_free(tr);
}

static void worker_execute(agent_daemon *d, daemon_tenant *t, daemon_job *j, long long epoch)
{
    const pgr_job *job = j->job;
    daemon_events_steps c;
    daemon_events_steps_init(&c, d, t, job->job_id);
    agent_exec_opts o;
    pgr_error err;
    pgr_code rc;
    int problems = 0;

    agent_exec_opts_init(&o);
    o.dsn = t->conf->dsn;
    o.pool = &t->pool;
    o.tenant_id = t->conf->id;
    o.job_id = job->job_id;
    o.operator_name = job->operator_name;
    o.agent_id = d->cfg->agent_id;
    o.target = job->target;
    o.lock_timeout_ms = job->options.lock_timeout_ms;
    o.statement_timeout_ms = job->options.statement_timeout_ms;
    o.retries = job->options.retries;
    o.orphans = orphan_option(job->options.orphans);
    o.backup_dir = job->options.backup ? d->cfg->state_dir : NULL;
    o.cb = daemon_events_steps_cb;
    o.cb_user = &c;
    o.audit_barrier = daemon_audit_barrier; /* each step's records off the host before it runs */
    o.audit_barrier_user = &c;
    o.owner_role = d->cfg->owner_role;
    o.release_digests = j->release_digests[0] != '\0' ? j->release_digests : NULL;
    o.release_kids = j->release_kids;
    o.cancel = &t->cancel;
    int fenced = 0; /* pool: another agent took the tenant over while this job ran */
    o.fence_epoch = epoch;
    o.takeover_ms = d->cfg->takeover_ms;
    o.fenced = &fenced;
    char from[PGR_VERSION_LEN + 1] = "";
    o.from_version = from;
    /* options.verify_in_job: the checks of a verify job after the last step, in the job's
     * session and under its lock, before its end is recorded (the wave gate then sends this
     * tenant no verify job) */
    int verified = -1;
    if (strcmp(job->type, "apply") == 0 && job->options.verify_in_job)
        o.verified = &verified;
    pgr_error_clear(&err);
    long long t0 = pgr_clock_mono_ms();
    if (strcmp(job->type, "apply") == 0)
        rc = agent_exec_apply(job->migrations, &o, &err);
    else if (strcmp(job->type, "rollback") == 0)
        rc =
            agent_exec_rollback(job->migrations, job->target != NULL ? job->target : "0", &o, &err);
    else if (strcmp(job->type, "verify") == 0)
        rc = agent_verify_run(job->migrations, &o, NULL, NULL, &problems, &err);
    else
        rc = PGR_OK; /* cancel: nothing runs for this tenant now */
    /* a verify job's count, when its checks ran to the end (not after a failed look-up) */
    int checked = rc == PGR_OK && strcmp(job->type, "verify") == 0 ? problems : -1;
    if (rc == PGR_OK && problems > 0)
        rc = pgr_error_set(&err, PGR_ERR_DRIFT, "verify found %d problem(s)", problems);
    daemon_events_steps_flush(&c); /* the held `done`s come before the result */
    if (fenced == 0 && (strcmp(job->type, "verify") == 0 || strcmp(job->type, "cancel") == 0))
        daemon_tenant_job_end(d, t, job, rc, rc == PGR_OK ? NULL : err.msg, checked,
                              pgr_clock_mono_ms() - t0, epoch, &fenced);
    /* a job stopped by shutdown is not finished: it resumes at the next start */
    const char *outcome = fenced != 0      ? "interrupted" /* the new owner's */
                          : rc == PGR_OK   ? "succeeded"
                          : t->cancel == 2 ? "cancelled"
                          : t->cancel == 1 ? "interrupted"
                                           : "failed";
    json_t *result =
        json_pack("{s:s, s:s, s:s, s:s?, s:s?}", "job_type", job->type, "outcome", outcome, "code",
                  pgr_error_code_name(rc), "message", rc == PGR_OK ? NULL : err.msg, "from_version",
                  from[0] != '\0' ? from : NULL);
    char labels[96];
    snprintf(labels, sizeof(labels), "type=\"%s\",outcome=\"%s\"", job->type, outcome);
    pgr_metrics_add(d->metrics, "pgrollout_agent_jobs_total",
                    "jobs this agent ran to an end, by type and outcome", labels, 1);
    if (fenced != 0 && epoch == t->epoch) /* not this agent's own newer take-over */
        t->fence_lost = 1;
    /* only with a final outcome: a job stopped meanwhile checks again when it resumes */
    bool final = strcmp(outcome, "succeeded") == 0 || strcmp(outcome, "failed") == 0;
    if (result != NULL && verified >= 0 && final)
        json_object_set_new(result, "verified", json_boolean(verified));
    if (final)
        report_result(d, t, &o, job->job_id, result);
    else
        daemon_events_send(d, "result", t->conf->id, job->job_id, result);
    if (strcmp(outcome, "interrupted") != 0)
        keep_ended(d, t, job);
}
