/*
 * daemon_pool.c - which tenants this agent serves (daemon_pool.h). In a pool, Kafka decides who
 * holds each jobs partition; the tenant database decides who may write: the agent that takes a
 * tenant over raises its owner epoch, and a job or intake of an older epoch stops before it
 * writes anything more (session.c). So an agent that lost its partitions while paused (SIGSTOP,
 * a frozen VM) and wakes up later cannot act on a tenant that another agent serves.
 */
#include "daemon_pool.h"
#include "daemon_intake.h"
#include "daemon_tenant.h"

#include "pgr/clock.h"
#include "pgr/log.h"

#include <stdlib.h>
#include <string.h>

#define TAKE_RETRY_MS 5000

bool daemon_pool_init(agent_daemon *d, int partitions)
{
    d->partitions = partitions;
    for (size_t i = 0; i < d->tenant_count; i++) {
        daemon_tenant *t = &d->tenants[i];
        t->partition = pgr_kafka_partition_for(t->conf->id, partitions);
    }
    if (d->cfg->pool != NULL)
        d->held = calloc((size_t)partitions, sizeof(*d->held));
    return d->cfg->pool == NULL || d->held != NULL;
}

void daemon_pool_place(agent_daemon *d, daemon_tenant *t)
{
    if (d->partitions > 0)
        t->partition = pgr_kafka_partition_for(t->conf->id, d->partitions);
    bool alone = d->cfg->pool == NULL;
    t->owned = alone || (d->held != NULL && d->partitions > 0 && d->held[t->partition]);
    t->taken = alone;
    t->take_after_ms = 0;
}

bool daemon_pool_serves(const daemon_tenant *t)
{
    return t->owned && t->taken;
}

static bool in_list(const rd_kafka_topic_partition_list_t *parts, const char *topic, int p)
{
    for (int i = 0; i < parts->cnt; i++) {
        if (parts->elems[i].partition == p && strcmp(parts->elems[i].topic, topic) == 0)
            return true;
    }
    return false;
}

static void drop_queue(daemon_tenant *t)
{
    while (t->queue != NULL) {
        daemon_job *j = t->queue;
        t->queue = j->next;
        daemon_tenant_job_free(j);
    }
}

/* A lost tenant: its running job stops before the next step (interrupted, not failed) and its
 * queued jobs are dropped; all stay recorded in the tenant database for the new owner. */
void daemon_pool_let_go(daemon_tenant *t)
{
    t->owned = t->taken = false;
    if (t->busy && t->cancel == 0)
        t->cancel = 1;
    drop_queue(t);
}

static void change(agent_daemon *d, const rd_kafka_topic_partition_list_t *parts, bool gained)
{
    pgr_log_ctx ctx = {"pool", NULL, NULL};
    size_t n = 0;
    for (int i = 0; i < parts->cnt && d->held != NULL; i++) {
        int p = parts->elems[i].partition;
        if (p >= 0 && p < d->partitions && strcmp(parts->elems[i].topic, d->topic_jobs) == 0)
            d->held[p] = gained;
    }
    for (size_t i = 0; i < d->tenant_count; i++) {
        daemon_tenant *t = &d->tenants[i];
        if (!in_list(parts, d->topic_jobs, t->partition))
            continue;
        n++;
        if (gained && !t->owned && t->gone == 0) {
            t->owned = true;
            t->taken = false;
            t->take_after_ms = 0;
        } else if (!gained) {
            daemon_pool_let_go(t);
        }
    }
    if (parts->cnt > 0) /* a cooperative rebalance also hands out empty changes */
        pgr_log_info(&ctx, "%s %d partition(s) of %s: %zu tenant(s) on them",
                     gained ? "gained" : "lost", parts->cnt, d->topic_jobs, n);
}

void daemon_pool_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                           rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    agent_daemon *d = opaque;
    bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    bool gained = e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t fail = RD_KAFKA_RESP_ERR_NO_ERROR;
    change(d, parts, gained);
    if (cooperative)
        error = gained ? rd_kafka_incremental_assign(rk, parts)
                       : rd_kafka_incremental_unassign(rk, parts);
    else
        fail = rd_kafka_assign(rk, gained ? parts : NULL);
    if (error != NULL || fail != RD_KAFKA_RESP_ERR_NO_ERROR) {
        pgr_log_ctx ctx = {"pool", NULL, NULL};
        pgr_log_error(&ctx, "could not %s partitions: %s", gained ? "assign" : "unassign",
                      error != NULL ? rd_kafka_error_string(error) : rd_kafka_err2str(fail));
    }
    if (error != NULL)
        rd_kafka_error_destroy(error);
}

static void take(agent_daemon *d, daemon_tenant *t, long long now_ms)
{
    pgr_log_ctx ctx = {"pool", t->conf->id, NULL};
    agent_exec_opts o;
    pgr_error err;
    long long epoch = 0;
    t->epoch = 0; /* the take-over itself is not fenced */
    daemon_tenant_opts(d, t, &o, NULL, "agent");
    if (agent_jobrec_take_over(&o, d->cfg->pool, &epoch, &err) != PGR_OK) {
        pgr_log_warn(&ctx, "could not take the tenant over (retrying in %d s): %s",
                     TAKE_RETRY_MS / 1000, err.msg);
        pgr_metrics_add(d->metrics, "pgrollout_agent_tenant_db_errors_total",
                        "tenant database operations that failed, by where", "where=\"takeover\"",
                        1);
        t->take_after_ms = now_ms + TAKE_RETRY_MS;
        return;
    }
    t->epoch = epoch;
    t->taken = true;
    t->audit_dirty = 1;
    drop_queue(t); /* queued from an earlier take: the tenant's records say what is left */
    pgr_log_info(&ctx, "serving the tenant (pool %s, owner epoch %lld)", d->cfg->pool, epoch);
    daemon_intake_resume_tenant(d, t);
}

void daemon_pool_take(agent_daemon *d, long long now_ms)
{
    for (size_t i = 0; i < d->tenant_count; i++) {
        daemon_tenant *t = &d->tenants[i];
        /* another agent raised the epoch while the group still gives us the partition (it took
         * the tenant while we were paused, before the group moved it back): take it again */
        if (atomic_exchange(&t->fence_lost, 0) != 0 && d->cfg->pool != NULL && t->owned &&
            t->taken) {
            pgr_log_ctx ctx = {"pool", t->conf->id, NULL};
            pgr_log_warn(&ctx, "another agent took the tenant over; taking it back (the group "
                               "gives this agent its partition)");
            t->taken = false;
        }
        if (t->owned && !t->taken && now_ms >= t->take_after_ms)
            take(d, t, now_ms);
    }
}
