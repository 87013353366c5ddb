/*
 * publish.c - the agent's audit outbox publisher. Records wait in pgrollout.audit_outbox of
 * each tenant database (written in the transaction of the change they describe); this sends
 * them in seq order, each signed (pgrollout/audit/v1), to the audit topic keyed by tenant, and
 * marks them published only after the broker acknowledged them. With Kafka down they simply
 * wait; a record sent twice (acknowledged but not yet marked) is absorbed by the collector,
 * which stores each (tenant, seq) once.
 */
#include "daemon_int.h"
#include "executor_int.h"

#include "pgr/log.h"
#include "pgr/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* True when nothing is left to publish (or the outbox does not exist yet). */
static bool publish_tenant(agent_daemon *d, daemon_tenant *t, char *topic)
{
    PGresult *r = NULL;
    pgr_error err;
    pgr_log_ctx ctx = {"audit", t->conf->id, NULL};

    /* a job's kept session if there is one; a session of our own goes back only if it was */
    PGconn *conn = agent_connpool_take(&t->pool);
    bool pooled = conn != NULL;
    if (!pooled && pgr_pg_connect(t->conf->dsn, "pgrollout-agent-audit", &conn, &err) != PGR_OK)
        return false; /* the database is down: the records wait, nothing is lost */
    char limit[16];
    snprintf(limit, sizeof(limit), "%d", PUBLISH_BATCH);
    const char *params[] = {limit};
    if (pgr_pg_execp(conn,
                     "SELECT seq, prev_hash, hash, record FROM pgrollout.audit_outbox WHERE "
                     "published_at IS NULL AND to_regclass('pgrollout.audit_outbox') IS NOT NULL "
                     "ORDER BY seq LIMIT $1",
                     1, params, &r, &err) != PGR_OK ||
        PQntuples(r) == 0) {
        bool empty = r != NULL;
        PQclear(r);
        release(t, conn, pooled);
        return empty;
    }
    int before = d->delivery_errors;
    bool ok = true;
    for (int i = 0; ok && i < PQntuples(r); i++) {
        char *payload = audit_payload(t->conf->id, r, i);
        char *env = payload != NULL
                        ? pgr_envelope_seal(PGR_DOMAIN_AUDIT, &d->key, payload, strlen(payload))
                        : NULL;
        ok = env != NULL &&
             pgr_kafka_send(d->producer, topic, t->conf->id, env, strlen(env), &err) == PGR_OK;
        free(payload);
        free(env);
    }
    /* acknowledged by the broker (acks=all, idempotent), then and only then marked */
    ok = ok && rd_kafka_flush(d->producer, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
         d->delivery_errors == before;
    if (ok) {
        const char *last[] = {PQgetvalue(r, PQntuples(r) - 1, 0)};
        if (pgr_pg_execp(conn,
                         "UPDATE pgrollout.audit_outbox SET published_at = now() WHERE "
                         "published_at IS NULL AND seq <= $1",
                         1, last, NULL, &err) != PGR_OK)
            pgr_log_warn(&ctx, "could not mark audit records published: %s", err.msg);
    }
    bool done = ok && PQntuples(r) < PUBLISH_BATCH;
    PQclear(r);
    release(t, conn, pooled);
    return done;
}

/* A connection per tenant and second cost the tenants' servers a backend start each (100
 * tenants: 100 a second, idle or not): the tenants this process wrote records for are visited
 * each second, every tenant only on the slower sweep (records of `pgrollout-agent apply`, or
 * left by a failure). */
void daemon_publish_audit(agent_daemon *d, bool all, long long now_ms)
{
    char topic[256];
    pgr_kafka_topic_name(d->cfg, PGR_TOPIC_AUDIT, topic, sizeof(topic));
    for (size_t i = 0; i < d->tenant_count; i++) {
        daemon_tenant *t = &d->tenants[i];
        if ((!all && !t->audit_dirty) || (t->busy && now_ms - t->audit_visit_ms < AUDIT_BUSY_MS))
            continue;
        t->audit_dirty = 0; /* a record written meanwhile sets it again */
        t->audit_visit_ms = now_ms;
        if (!publish_tenant(d, t, topic))
            t->audit_dirty = 1;
    }
}
