/*
 * daemon_audit.c - the agent's audit outbox publisher. Records wait in pgrollout.audit_outbox of
 * each tenant database (written in the transaction of the change they describe); this sends
 * them in seq order, each signed (pgrollout/audit/v1), to the audit topic keyed by tenant, and
 * marks them published only after the broker acknowledged them. With Kafka down they simply
 * wait; a record sent twice (acknowledged but not yet marked) is absorbed by the collector,
 * which stores each (tenant, seq) once. The same path serves the barrier a daemon job passes
 * before each step: the step's SQL runs only once every record before it is off the host.
 */
#include "daemon_audit.h"
#include "daemon_events.h"

#include "pgr/clock.h"
#include "pgr/log.h"
#include "pgr/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PUBLISH_BATCH 500

/* The audit message payload: the chain fields and the canonical record bytes as a string. */
static char *audit_payload(const char *tenant, PGresult *r, int i)
{
    json_t *o =
        json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "type", "audit", "tenant_id", tenant, "seq",
                  (json_int_t)strtoll(PQgetvalue(r, i, 0), NULL, 10), "prev_hash",
                  PQgetvalue(r, i, 1), "hash", PQgetvalue(r, i, 2), "record", PQgetvalue(r, i, 3));
    char *s = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return s;
}

/* The sweep over every tenant (every 30 s) keeps no session of its own: it would hold a
 * backend per tenant. */
static void release(daemon_tenant *t, PGconn *conn, bool pooled)
{
    if (pooled)
        agent_connpool_give(&t->pool, conn);
    else
        PQfinish(conn);
}

/* Sends the unpublished records of t that conn reads (up to PUBLISH_BATCH, in seq order), each
 * signed, waits up to wait_ms for the broker to acknowledge every one of them (acks=all,
 * idempotent), then and only then marks them published. *more: a full batch went out, more may
 * wait. The one path of both the publisher's visits and the barrier before a step. */
static pgr_code publish_batch(agent_daemon *d, daemon_tenant *t, PGconn *conn, const char *topic,
                              int wait_ms, bool *more, pgr_error *err)
{
    PGresult *r = NULL;
    char limit[16];
    *more = false;
    snprintf(limit, sizeof(limit), "%d", PUBLISH_BATCH);
    const char *params[] = {limit};
    if (pgr_pg_execp(conn,
                     "SELECT seq, prev_hash, hash, record FROM pgrollout.audit_outbox WHERE "
                     "published_at IS NULL AND to_regclass('pgrollout.audit_outbox') IS NOT NULL "
                     "ORDER BY seq LIMIT $1",
                     1, params, &r, err) != PGR_OK)
        return PGR_ERR_DB;
    int n = PQntuples(r);
    pgr_kafka_tracker *tr = n > 0 ? pgr_kafka_tracker_new() : NULL;
    pgr_code rc = n > 0 && tr == NULL ? pgr_error_set(err, PGR_ERR_NOMEM, "out of memory") : PGR_OK;
    for (int i = 0; rc == PGR_OK && i < n; i++) {
        char *payload = audit_payload(t->conf->id, r, i);
        char *env = payload != NULL
                        ? pgr_envelope_seal(PGR_DOMAIN_AUDIT, &d->key, payload, strlen(payload))
                        : NULL;
        rc = env == NULL ? pgr_error_set(err, PGR_ERR_NOMEM, "could not seal an audit record")
                         : pgr_kafka_send_tracked(d->producer, topic, t->conf->id, env, strlen(env),
                                                  tr, err);
        free(payload);
        free(env);
    }
    if (rc == PGR_OK && n > 0)
        rc = pgr_kafka_tracker_wait(d->producer, tr, wait_ms, err);
    pgr_kafka_tracker_free(tr);
    if (rc == PGR_OK && n > 0) {
        const char *last[] = {PQgetvalue(r, n - 1, 0)};
        rc = pgr_pg_execp(conn,
                          "UPDATE pgrollout.audit_outbox SET published_at = now() WHERE "
                          "published_at IS NULL AND seq <= $1",
                          1, last, NULL, err);
    }
    *more = rc == PGR_OK && n == PUBLISH_BATCH;
    PQclear(r);
    return rc;
}

/* True when nothing is left to publish (or the outbox does not exist yet). */
static bool publish_tenant(agent_daemon *d, daemon_tenant *t, char *topic)
{
    pgr_error err;
    pgr_log_ctx ctx = {"audit", t->conf->id, NULL};
    bool more = false;

    /* a job's kept session if there is one; a session of our own goes back only if it was */
    PGconn *conn = agent_connpool_take(&t->pool);
    bool pooled = conn != NULL;
    if (!pooled && pgr_pg_connect(t->conf->dsn, "pgrollout-agent-audit", &conn, &err) != PGR_OK)
        return false; /* the database is down: the records wait, nothing is lost */
    pgr_code rc = publish_batch(d, t, conn, topic, 5000, &more, &err);
    /* sent and acknowledged but not marked: sent again next time, absorbed by the collector */
    if (rc != PGR_OK && rc != PGR_ERR_KAFKA && !pgr_pg_conn_lost(conn))
        pgr_log_warn(&ctx, "could not publish audit records: %s", err.msg);
    release(t, conn, pooled);
    return rc == PGR_OK && !more;
}

/* One try of the barrier: every unpublished record, in batches, acknowledged within
 * AUDIT_BARRIER_MS. */
static pgr_code barrier_once(daemon_events_steps *s, PGconn *conn, const char *topic,
                             pgr_error *err)
{
    bool more = true;
    pgr_code rc = PGR_OK;
    long long deadline = pgr_clock_mono_ms() + AUDIT_BARRIER_MS;
    while (rc == PGR_OK && more) {
        long long left = deadline - pgr_clock_mono_ms();
        rc = left > 0 ? publish_batch(s->d, s->t, conn, topic, (int)left, &more, err)
                      : pgr_error_set(err, PGR_ERR_KAFKA, "no acknowledgement within %d ms",
                                      AUDIT_BARRIER_MS);
    }
    return rc;
}

pgr_code daemon_audit_barrier(struct pg_conn *conn, void *user, pgr_error *err)
{
    daemon_events_steps *s = user;
    pgr_log_ctx ctx = {"audit", s->t->conf->id, s->job_id};
    const char *topic = s->d->topic_audit;
    long long give_up = pgr_clock_mono_ms() + AUDIT_BARRIER_WAIT_MS;
    pgr_code rc = barrier_once(s, conn, topic, err);
    /* Kafka unreachable: the job pauses before the step (nothing of it runs) until the records
     * are out, the job is stopped, or AUDIT_BARRIER_WAIT_MS passed; a database error goes back
     * to the step's retries at once (they reconnect) */
    if (rc == PGR_ERR_KAFKA)
        pgr_log_error(&ctx, "audit records not delivered to Kafka, the next step waits: %s",
                      err != NULL ? err->msg : "");
    while (rc == PGR_ERR_KAFKA && s->t->cancel == 0 && pgr_clock_mono_ms() < give_up) {
        pgr_clock_sleep_ms(200);
        rc = barrier_once(s, conn, topic, err);
        if (rc == PGR_OK)
            pgr_log_info(&ctx, "audit records delivered, the job goes on");
    }
    return rc; /* whether to retry the step is the executor's to say (stepexec.c) */
}

/* A connection per tenant and second cost the tenants' servers a backend start each (100
 * tenants: 100 a second, idle or not): the tenants this process wrote records for are visited
 * each second, every tenant only on the slower sweep (records of `pgrollout-agent apply`, or
 * left by a failure). */
void daemon_audit_publish(agent_daemon *d, bool all, long long now_ms)
{
    for (size_t i = 0; i < d->tenant_count; i++) {
        daemon_tenant *t = &d->tenants[i];
        if (!t->taken) /* a pool's tenant that another agent serves publishes them */
            continue;
        if ((!all && !t->audit_dirty) || (t->busy && now_ms - t->audit_visit_ms < AUDIT_BUSY_MS))
            continue;
        t->audit_dirty = 0; /* a record written meanwhile sets it again */
        t->audit_visit_ms = now_ms;
        if (!publish_tenant(d, t, d->topic_audit))
            t->audit_dirty = 1;
    }
}
