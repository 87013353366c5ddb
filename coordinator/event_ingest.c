/*
 * event_ingest.c - verifying, storing and folding in the agents' events (event_ingest.h).
 */
#include "event_ingest.h"
#include "event.h"

#include "pgr/crypto.h"
#include "pgr/log.h"
#include "pgr/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* The ids of list (a heartbeat's array) that key e may speak for, as JSON text (NULL when none). */
static char *allowed_ids(json_t *list, const pgr_keyring_entry *e)
{
    json_t *ids = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(list, i, t)
    {
        const char *id = json_string_value(t);
        if (id != NULL && pgr_keyring_allows_tenant(e, id))
            json_array_append(ids, t);
    }
    char *text = json_array_size(ids) > 0 ? json_dumps(ids, JSON_COMPACT) : NULL;
    json_decref(ids);
    return text;
}

/* Which agent and kid serve each tenant of a heartbeat the key may speak for: one statement
 * per heartbeat (a statement per tenant made 10,000 tenants' heartbeats the busiest load). A
 * tenant served is not gone; one the agent that served it last no longer finds on its tenant
 * source is, from the first heartbeat that says so. */
static void heartbeat_tenants(coord *c, json_t *ev, const pgr_keyring_entry *e)
{
    json_t *tags = json_object_get(ev, "tags"), *tag = json_object();
    char *idtext = allowed_ids(json_object_get(ev, "tenants"), e);
    char *gonetext = allowed_ids(json_object_get(ev, "gone"), e);
    const char *key;
    json_t *v;
    json_object_foreach(tags, key, v)
    {
        if (json_is_string(v) && pgr_keyring_allows_tenant(e, key))
            json_object_set(tag, key, v);
    }
    char *tagtext = json_dumps(tag, JSON_COMPACT);
    const char *params[] = {idtext, str(ev, "agent_id"), e->key.kid, tagtext};
    if (idtext != NULL && tagtext != NULL)
        PGR_IGNORE(pgr_pg_execp(c->db,
                                "INSERT INTO pgrollout_control.tenants (tenant_id, agent_id, "
                                "agent_kid, last_seen, tags) SELECT DISTINCT ON (t.id) t.id, $2, "
                                "$3, now(), $4::jsonb ->> t.id FROM jsonb_array_elements_text($1"
                                "::jsonb) AS t(id) ON CONFLICT (tenant_id) DO UPDATE SET agent_id "
                                "= $2, agent_kid = $3, last_seen = now(), tags = EXCLUDED.tags, "
                                "gone_at = NULL",
                                4, params, NULL, NULL));
    /* only the agent that served the tenant last: another that still lists it gone (it has not
     * listed its source since the database came back, or cannot reach it) changes nothing */
    const char *gparams[] = {gonetext, str(ev, "agent_id")};
    if (gonetext != NULL)
        PGR_IGNORE(pgr_pg_execp(c->db,
                                "UPDATE pgrollout_control.tenants SET gone_at = now() WHERE "
                                "tenant_id IN (SELECT jsonb_array_elements_text($1::jsonb)) AND "
                                "agent_id = $2 AND gone_at IS NULL",
                                2, gparams, NULL, NULL));
    free(idtext);
    free(gonetext);
    free(tagtext);
    json_decref(tag);
}

/* The states a run never leaves through events of its job (docs/PROTOCOL.md 9.7). */
#define RUN_FINAL_STATES "('succeeded', 'failed', 'rejected', 'rolled_back', 'cancelled')"

/* One statement per event (docs/PROTOCOL.md 9.7):
 *   bind  the event names a job of ours for its own tenant ($11 = the job's tenant in the outbox;
 *         coord_event_parse checked the key may speak for $11), and its versions are versions
 *         of that job's migrations; else `bad` names what did not agree and nothing is written;
 *   s     the key's event seq for this scope only grows (a replayed old event is refused);
 *   ins   the event is stored once (a redelivery has the same digest), and a job's final result
 *         once (an agent sends again the results Kafka did not acknowledge);
 *   run   it is folded into the run of that job and tenant, unless the run is final (then no
 *         field changes at all) or the job type differs from the run's. */
static const char EVENT_SQL[] =
    "WITH bind AS (SELECT CASE WHEN $1::text IS NULL THEN NULL WHEN o.job_id IS NULL THEN "
    "'unknown_job' WHEN o.tenant_id IS DISTINCT FROM $11 THEN 'tenant' WHEN $3::text IS NOT "
    "NULL AND NOT coalesce(o.versions ? $3, true) THEN 'version' WHEN $10::text IS NOT NULL AND "
    "$10 <> '0' AND NOT coalesce(o.versions ? $10 OR $10 > (SELECT max(v) FROM "
    "jsonb_array_elements_text(o.versions) AS v), true) THEN 'from_version' END AS bad FROM "
    "(SELECT 1) AS one LEFT JOIN pgrollout_control.job_outbox o ON o.job_id = $1), "
    "s AS (INSERT INTO pgrollout_control.event_seqs AS q (kid, scope, seq) SELECT $16, "
    "coalesce($11, ''), $17::bigint WHERE (SELECT bad FROM bind) IS NULL ON CONFLICT (kid, scope) "
    "DO UPDATE SET seq = EXCLUDED.seq WHERE q.seq < EXCLUDED.seq RETURNING 1), "
    "ins AS (INSERT INTO pgrollout_control.events (agent_id, tenant_id, job_id, type, payload, "
    "digest) SELECT $9, $11, $1, $12, $13::jsonb, $14 WHERE EXISTS (SELECT 1 FROM s) AND NOT ("
    "$12 = 'result' AND $13::jsonb->>'outcome' IN ('succeeded', 'failed', 'cancelled') AND "
    "EXISTS (SELECT 1 FROM pgrollout_control.events e WHERE e.job_id = $1 AND e.type = 'result' "
    "AND e.payload->>'outcome' = $13::jsonb->>'outcome')) ON CONFLICT (digest) DO NOTHING "
    "RETURNING 1), "
    "run AS (UPDATE pgrollout_control.tenant_runs SET state = $2, version = coalesce($3, "
    "version), from_version = coalesce($10, from_version), step = CASE WHEN $4 = '0' THEN step "
    "ELSE $4::int END, steps = CASE WHEN $5 = '0' THEN steps ELSE $5::int END, object = "
    "coalesce($6, object), percent = coalesce($7::float8, percent), error = coalesce($8, error), "
    "agent_id = $9, verified_at = CASE WHEN $15::bool THEN now() ELSE verified_at END, "
    "updated_at = now() WHERE job_id = $1 AND tenant_id = $11 AND state NOT IN " RUN_FINAL_STATES
    " AND ($18::text IS NULL OR job_type IS NULL OR job_type = $18) AND EXISTS (SELECT 1 FROM "
    "ins) RETURNING 1) "
    "SELECT (SELECT bad FROM bind), (SELECT count(*) FROM s), (SELECT count(*) FROM ins), "
    "(SELECT count(*) FROM run)";

/* Whether this session has the event statement prepared (after a failure we cannot tell). */
static bool event_stmt_exists(coord *c)
{
    PGresult *r = NULL;
    bool yes =
        pgr_pg_exec(c->db, "SELECT 1 FROM pg_prepared_statements WHERE name = 'pgr_store_event'",
                    &r, NULL) == PGR_OK &&
        PQntuples(r) == 1;
    PQclear(r);
    return yes;
}

static pgr_code exec_event_stmt(coord *c, const char *const *params, PGresult **r)
{
    bool ready = c->event_stmt_pid != 0 && c->event_stmt_pid == PQbackendPID(c->db);
    if (!ready)
        ready = event_stmt_exists(c);
    pgr_code rc =
        pgr_pg_execp_prepared(c->db, "pgr_store_event", EVENT_SQL, &ready, 18, params, r, NULL);
    c->event_stmt_pid = rc == PGR_OK ? PQbackendPID(c->db) : 0;
    return rc;
}

/* Records a signed event that was refused: the key that signed it is named, so that an
 * operator can revoke it (docs/SECURITY.md). Printed without the event's own strings; ev may be
 * NULL (an event that did not parse: its columns stay NULL). */
static void security_alert(coord *c, json_t *ev, const char *kid, const char *reason,
                           const char *digest)
{
    pgr_log_ctx ctx = {"events", NULL, NULL};
    pgr_log_warn(&ctx, "SECURITY: event signed by key \"%s\" refused (%s), digest %s", kid, reason,
                 digest);
    pgr_metrics_add(c->metrics, "pgrollout_coordinator_security_alerts_total",
                    "signed agent events refused as misuse of a trusted key", NULL, 1);
    /* bounded: the reason text itself names members of the event */
    const char *label = strncmp(reason, "rule:", 5) == 0   ? "reason=\"rule\""
                        : strcmp(reason, "stale seq") == 0 ? "reason=\"stale_seq\""
                                                           : "reason=\"binding\"";
    pgr_metrics_add(c->metrics, "pgrollout_coordinator_events_refused_total",
                    "agent events refused, by reason", label, 1);
    const char *params[] = {
        kid, str(ev, "agent_id"), str(ev, "tenant_id"), str(ev, "job_id"), reason, digest};
    PGR_IGNORE(pgr_pg_execp(c->db,
                            "INSERT INTO pgrollout_control.security_alerts (kid, agent_id, "
                            "tenant_id, job_id, reason, digest) VALUES ($1, $2, $3, $4, $5, $6)",
                            6, params, NULL, NULL));
}

/* Whether an event with this digest is stored already (a redelivery, not a stale event). */
static bool event_stored(coord *c, const char *digest)
{
    PGresult *r = NULL;
    const char *params[] = {digest};
    bool yes = pgr_pg_execp(c->db, "SELECT 1 FROM pgrollout_control.events WHERE digest = $1", 1,
                            params, &r, NULL) == PGR_OK &&
               PQntuples(r) == 1;
    PQclear(r);
    return yes;
}

/* What the event statement found; see EVENT_SQL. */
static bool event_outcome(coord *c, json_t *ev, const char *kid, const char *digest, PGresult *r)
{
    const char *bad = PQgetisnull(r, 0, 0) ? NULL : PQgetvalue(r, 0, 0);
    bool seq_ok = strcmp(PQgetvalue(r, 0, 1), "1") == 0;
    bool fresh = strcmp(PQgetvalue(r, 0, 2), "1") == 0;
    char reason[64];
    if (bad != NULL && strcmp(bad, "unknown_job") == 0) {
        pgr_log_ctx ctx = {"events", NULL, NULL};
        pgr_log_warn(&ctx, "event of key \"%s\" names a job this coordinator never sent; dropped",
                     kid);
    } else if (bad != NULL) {
        snprintf(reason, sizeof(reason), "%s does not match the job", bad);
        security_alert(c, ev, kid, reason, digest);
    } else if (!seq_ok && !event_stored(c, digest)) {
        security_alert(c, ev, kid, "stale seq", digest);
    }
    return fresh;
}

/* Stores an event and folds it into the tenant run of its job in one statement: a connection
 * lost in between can never leave the event stored but not folded (its redelivery would be a
 * duplicate, never folded). Returns whether the event was new and bound. */
static bool store_event_row(coord *c, json_t *ev, const char *kid, const char *text,
                            const char *digest)
{
    coord_event_update u;
    PGresult *r = NULL;
    char seq[32];
    coord_event_run_update(ev, &u);
    snprintf(seq, sizeof(seq), "%lld", (long long)json_integer_value(json_object_get(ev, "seq")));
    const char *params[] = {u.job_id,
                            u.state,
                            u.version,
                            u.step,
                            u.steps,
                            u.object,
                            u.has_percent ? u.percent : NULL,
                            u.error,
                            u.agent_id,
                            u.from_version,
                            str(ev, "tenant_id"),
                            str(ev, "type"),
                            text,
                            digest,
                            u.verified ? "true" : "false",
                            kid,
                            seq,
                            str(ev, "job_type")};
    /* Prepared once per session: parsing and planning it was half of its server time. Every
     * new session (coord_ctldb_session_setup) forgets it, whatever its pid (a restarted server
     * may hand out the old one); a failure forgets it too and is tried once more, so that a
     * statement that vanished (a new session we did not notice) is prepared again instead of
     * the event being taken for a duplicate. */
    pgr_code rc = PGR_ERR_DB;
    for (int attempt = 0; attempt < 2 && rc != PGR_OK && !pgr_pg_conn_lost(c->db); attempt++) {
        PQclear(r);
        r = NULL;
        rc = exec_event_stmt(c, params, &r);
    }
    bool fresh = rc == PGR_OK && event_outcome(c, ev, kid, digest, r);
    PQclear(r);
    return fresh;
}

/* A security event names the job it refused only by what the agent could read, which an
 * attacker controls. It is folded into a run only when the refused message is, byte for byte,
 * the envelope this coordinator published for that tenant (digest match in the outbox); then
 * the run's job id comes from the outbox, not from the event. A replayed copy of our own job
 * ('replay') says nothing about the run: the original's own events do. */
static void attribute_refusal(coord *c, json_t *ev)
{
    const char *tenant = str(ev, "tenant_id"), *digest = str(ev, "envelope_sha256");
    const char *reason = str(ev, "reason");
    PGresult *r = NULL;
    json_object_del(ev, "job_id");
    if (tenant == NULL || digest == NULL || reason == NULL || strcmp(reason, "replay") == 0)
        return;
    const char *params[] = {tenant, digest};
    if (pgr_pg_execp(c->db,
                     "SELECT job_id FROM pgrollout_control.job_outbox WHERE tenant_id = $1 AND "
                     "encode(sha256(convert_to(envelope, 'UTF8')), 'hex') = $2",
                     2, params, &r, NULL) == PGR_OK &&
        PQntuples(r) == 1)
        json_object_set_new(ev, "job_id", json_string(PQgetvalue(r, 0, 0)));
    PQclear(r);
}

json_t *coord_event_ingest(coord *c, const rd_kafka_message_t *m)
{
    char *payload = NULL, kid[PGR_KID_LEN], digest[PGR_SHA256_HEX_LEN];
    size_t plen = 0;
    pgr_envelope_reject why;
    const pgr_keyring_entry *e = NULL;
    const char *broken = NULL;
    pgr_error err;
    pgr_log_ctx ctx = {"events", NULL, NULL};

    if (pgr_envelope_open(m->payload, m->len, 1 << 20, PGR_DOMAIN_EVENT, c->agents, &payload, &plen,
                          &e, kid, &why, &err) != PGR_OK) {
        pgr_log_warn(&ctx, "event refused: %s (key \"%s\")", err.msg, kid);
        char labels[64];
        snprintf(labels, sizeof(labels), "reason=\"%s\"", pgr_envelope_reject_name(why));
        pgr_metrics_add(c->metrics, "pgrollout_coordinator_events_refused_total",
                        "agent events refused, by reason", labels, 1);
        return NULL;
    }
    pgr_crypto_sha256_hex(m->payload, m->len, digest);
    json_t *ev = coord_event_parse(payload, plen, e, &broken);
    free(payload);
    if (ev == NULL) {
        /* signed by a key we trust, yet breaking the protocol: that key is misused */
        char reason[96];
        snprintf(reason, sizeof(reason), "rule: %s", broken);
        security_alert(c, NULL, e->key.kid, reason, digest); /* no member of it is trusted */
        return NULL;
    }
    const char *type = str(ev, "type");
    char labels[64];
    snprintf(labels, sizeof(labels), "type=\"%s\"", type); /* one of PROTOCOL 9.1's six */
    pgr_metrics_add(c->metrics, "pgrollout_coordinator_events_verified_total",
                    "agent events verified, by type", labels, 1);
    if (strcmp(type, "security") == 0)
        attribute_refusal(c, ev); /* the job_id column and the run: ours, or none */
    /* Kafka delivers at least once (a consumer that could not commit during a broker outage
     * reads again): the same signed message is stored once, keyed by its digest. */
    char *text = json_dumps(ev, JSON_COMPACT);
    bool fresh = text != NULL && store_event_row(c, ev, e->key.kid, text, digest);
    free(text);
    if (!fresh) {
        json_decref(ev);
        return NULL; /* a redelivery (already folded in), or refused */
    }
    /* a heartbeat lost with the connection here is repeated by the agent within seconds */
    if (strcmp(type, "heartbeat") == 0)
        heartbeat_tenants(c, ev, e);
    return ev;
}
