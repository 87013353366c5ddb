/*
 * daemon_tenant.c - the daemon's tenants: look-up, queued jobs, and the records the daemon writes
 * into a tenant's database itself (rejections, agent start and stop, the end of jobs that ran no
 * executor), through the executor's job records.
 */
#include "daemon_tenant.h"

#include "pgr/log.h"
#include "pgr/uuid.h"

#include <stdlib.h>
#include <string.h>

daemon_tenant *daemon_tenant_find(agent_daemon *d, const char *id)
{
    for (size_t i = 0; i < d->tenant_count; i++) {
        if (strcmp(d->tenants[i].conf->id, id) == 0)
            return &d->tenants[i];
    }
    return NULL;
}

void daemon_tenant_job_free(daemon_job *j)
{
    if (j == NULL)
        return;
    pgr_job_free(j->job);
    free(j->envelope);
    free(j);
}

/* The options that name a tenant, a job and its operator for the tenant's job records. */
void daemon_tenant_opts(agent_daemon *d, daemon_tenant *t, agent_exec_opts *o, const char *job_id,
                        const char *op)
{
    agent_exec_opts_init(o);
    o->dsn = t->conf->dsn;
    o->pool = &t->pool;
    o->tenant_id = t->conf->id;
    o->agent_id = d->cfg->agent_id;
    o->job_id = job_id != NULL && pgr_uuid_valid(job_id) ? job_id : NULL;
    o->operator_name = op != NULL ? op : "unknown";
    o->state_dir = d->cfg->state_dir; /* the last accepted job seq, also kept there */
    o->fence_epoch = t->epoch;        /* pool: the intake records nothing once taken over */
    o->takeover_ms = d->cfg->takeover_ms;
}

/* extra: members added to the record (counted rejections), or NULL; consumed. Returns whether
 * the record was written. */
bool daemon_tenant_record_rejection(agent_daemon *d, daemon_tenant *t, const char *tenant,
                                    const char *job_id, const char *reason, const char *kid,
                                    json_t *extra)
{
    pgr_log_ctx ctx = {"intake", tenant, job_id};
    agent_exec_opts o;
    pgr_error err;
    json_t *fields = json_pack("{s:s, s:s, s:s}", "reason", reason, "kid", kid != NULL ? kid : "",
                               "rejected_job_id", job_id != NULL ? job_id : "");
    if (fields != NULL && extra != NULL)
        json_object_update(fields, extra);
    json_decref(extra);
    daemon_tenant_opts(d, t, &o, NULL, "unknown");
    bool ok = agent_jobrec_audit(&o, "job_rejected", fields, &err) == PGR_OK;
    if (!ok)
        pgr_log_error(&ctx, "could not record the rejection: %s", err.msg);
    return ok;
}

void daemon_tenant_audit(agent_daemon *d, daemon_tenant *t, const char *action, json_t *extra)
{
    agent_exec_opts o;
    pgr_error err;
    t->audit_dirty = 1;
    json_t *fields = json_pack("{s:s}", "kid", d->key.kid);
    if (fields != NULL && extra != NULL)
        json_object_update(fields, extra);
    daemon_tenant_opts(d, t, &o, NULL, "agent");
    if (agent_jobrec_audit(&o, action, fields, &err) != PGR_OK) {
        pgr_log_ctx ctx = {"audit", t->conf->id, NULL};
        pgr_log_warn(&ctx, "could not record %s: %s", action, err.msg);
    }
}

void daemon_tenant_audit_all(agent_daemon *d, const char *action, json_t *extra)
{
    for (size_t i = 0; i < d->tenant_count; i++) {
        if (d->tenants[i].taken) /* not a pool's tenant that another agent serves, nor gone */
            daemon_tenant_audit(d, &d->tenants[i], action, extra);
    }
}

void daemon_tenant_job_end(agent_daemon *d, daemon_tenant *t, const pgr_job *job, pgr_code rc,
                           const char *error, int problems, long long duration_ms, long long epoch,
                           int *fenced)
{
    agent_exec_opts o;
    pgr_error err;
    daemon_tenant_opts(d, t, &o, job->job_id, job->operator_name);
    o.fence_epoch = epoch;
    o.fenced = fenced;
    if (agent_jobrec_end(&o, job, rc, error, problems, duration_ms, &err) != PGR_OK) {
        pgr_log_ctx ctx = {"intake", t->conf->id, job->job_id};
        pgr_log_warn(&ctx, "could not record the job's end: %s", err.msg);
    }
    /* after the commit: a publisher visit during the transaction found nothing to send and
     * cleared the mark (daemon_events.c marks after the commit too) */
    t->audit_dirty = 1;
}
