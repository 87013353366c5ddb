/*
 * control.c - the control database (schema pgrollout_control, installed by the coordinator on
 * start): tenants seen in heartbeats and their job sequence, rollouts, tenant runs, the job
 * outbox (written before publishing, so a crash never loses a job) and received events.
 */
#include "coord.h"
#include "coord_cli.h"

#include "pgr/crypto.h"
#include "pgr/log.h"
#include "pgr/pg.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The newest version control_ddl installs (its last INSERT must list it). */
#define CONTROL_SCHEMA_VERSION "5"

static const char *const control_ddl =
    "CREATE SCHEMA IF NOT EXISTS pgrollout_control;"
    "CREATE TABLE IF NOT EXISTS pgrollout_control.schema_version (version int PRIMARY KEY);"
    "CREATE TABLE IF NOT EXISTS pgrollout_control.tenants ("
    " tenant_id text PRIMARY KEY, agent_id text, agent_kid text, last_seen timestamptz, tags text,"
    " next_seq bigint NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS pgrollout_control.rollouts ("
    " rollout_id text PRIMARY KEY, plan jsonb NOT NULL, state text NOT NULL, operator text,"
    " created_at timestamptz NOT NULL DEFAULT now(),"
    " updated_at timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE IF NOT EXISTS pgrollout_control.tenant_runs ("
    " rollout_id text NOT NULL, tenant_id text NOT NULL, job_id text UNIQUE, wave int NOT NULL"
    " DEFAULT 0, seq bigint, state text NOT NULL, version text, step int, steps int, object text,"
    " percent double precision, error text, agent_id text, job_type text, from_version text,"
    " updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (rollout_id, tenant_id));"
    "CREATE TABLE IF NOT EXISTS pgrollout_control.rollout_waves ("
    " rollout_id text NOT NULL, idx int NOT NULL, name text NOT NULL, state text NOT NULL,"
    " soak_until timestamptz, approved_by text, approved_at timestamptz,"
    " started_at timestamptz, finished_at timestamptz, PRIMARY KEY (rollout_id, idx));"
    "CREATE TABLE IF NOT EXISTS pgrollout_control.operator_log ("
    " id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), rollout_id text NOT NULL,"
    " action text NOT NULL, wave text, operator text NOT NULL, detail text);"
    "CREATE TABLE IF NOT EXISTS pgrollout_control.job_outbox ("
    " job_id text PRIMARY KEY, tenant_id text NOT NULL, envelope text NOT NULL,"
    " created_at timestamptz NOT NULL DEFAULT now(), sent_at timestamptz);"
    "CREATE TABLE IF NOT EXISTS pgrollout_control.events ("
    " id bigserial PRIMARY KEY, agent_id text, tenant_id text, job_id text, type text NOT NULL,"
    " payload jsonb NOT NULL, digest text UNIQUE,"
    " received_at timestamptz NOT NULL DEFAULT now());"
    /* the central audit record: append-only, each (tenant, seq) once */
    "CREATE TABLE IF NOT EXISTS pgrollout_control.audit_log ("
    " tenant_id text NOT NULL, seq bigint NOT NULL, prev_hash text NOT NULL,"
    " hash text NOT NULL, record text NOT NULL, kid text NOT NULL, envelope text NOT NULL,"
    " received_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (tenant_id, seq));"
    "CREATE TABLE IF NOT EXISTS pgrollout_control.audit_alerts ("
    " id bigserial PRIMARY KEY, tenant_id text, seq bigint, kind text NOT NULL,"
    " detail text NOT NULL, at timestamptz NOT NULL DEFAULT now());"
    "CREATE OR REPLACE FUNCTION pgrollout_control.audit_log_append_only() RETURNS trigger"
    " LANGUAGE plpgsql AS $f$ BEGIN RAISE EXCEPTION 'pgrollout_control.% is"
    " append-only: % refused', TG_TABLE_NAME, TG_OP; END $f$;"
    "CREATE OR REPLACE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON"
    " pgrollout_control.audit_log FOR EACH ROW EXECUTE FUNCTION"
    " pgrollout_control.audit_log_append_only();"
    "CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON"
    " pgrollout_control.audit_log FOR EACH STATEMENT EXECUTE FUNCTION"
    " pgrollout_control.audit_log_append_only();"
    "CREATE OR REPLACE TRIGGER operator_log_no_change BEFORE UPDATE OR DELETE ON"
    " pgrollout_control.operator_log FOR EACH ROW EXECUTE FUNCTION"
    " pgrollout_control.audit_log_append_only();"
    "CREATE OR REPLACE TRIGGER operator_log_no_truncate BEFORE TRUNCATE ON"
    " pgrollout_control.operator_log FOR EACH STATEMENT EXECUTE FUNCTION"
    " pgrollout_control.audit_log_append_only();"
    /* columns added after version 2: control databases created before get them here */
    "ALTER TABLE pgrollout_control.tenant_runs ADD COLUMN IF NOT EXISTS job_type text,"
    " ADD COLUMN IF NOT EXISTS from_version text, ADD COLUMN IF NOT EXISTS wave int NOT NULL"
    " DEFAULT 0;"
    "ALTER TABLE pgrollout_control.tenants ADD COLUMN IF NOT EXISTS tags text;"
    /* version 4: when the apply job's own check passed (the wave gate sends no verify job) */
    "ALTER TABLE pgrollout_control.tenant_runs ADD COLUMN IF NOT EXISTS verified_at timestamptz;"
    "ALTER TABLE pgrollout_control.events ADD COLUMN IF NOT EXISTS digest text UNIQUE;"
    /* every event finds its run by job id, every dispatch its wave's pending runs, every
     * publication the unsent jobs: without these each was a scan of the whole table (docs/
     * BENCHMARKS.md, 10,000 tenants) */
    "CREATE INDEX IF NOT EXISTS tenant_runs_job_id ON pgrollout_control.tenant_runs (job_id);"
    "CREATE INDEX IF NOT EXISTS tenant_runs_wave_state ON pgrollout_control.tenant_runs"
    " (rollout_id, wave, state, tenant_id);"
    "CREATE INDEX IF NOT EXISTS job_outbox_unsent ON pgrollout_control.job_outbox (created_at)"
    " WHERE sent_at IS NULL;"
    /* envelopes are base64 (compresses by a quarter at most): compressing each 27 KB job cost
     * more than the rest of writing it, and decompressing it again on publication */
    "ALTER TABLE pgrollout_control.job_outbox ALTER COLUMN envelope SET STORAGE EXTERNAL;"
    /* version 5: events bind to their run (the versions of each job), agents' event sequence
     * per key and scope (a tenant, or '' for agent-wide events), refused signed events */
    "ALTER TABLE pgrollout_control.job_outbox ADD COLUMN IF NOT EXISTS versions jsonb;"
    "CREATE TABLE IF NOT EXISTS pgrollout_control.event_seqs (kid text NOT NULL, scope text NOT"
    " NULL, seq bigint NOT NULL, PRIMARY KEY (kid, scope));"
    "CREATE TABLE IF NOT EXISTS pgrollout_control.security_alerts ("
    " id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), kid text NOT NULL,"
    " agent_id text, tenant_id text, job_id text, reason text NOT NULL, digest text NOT NULL);"
    "CREATE OR REPLACE TRIGGER security_alerts_no_change BEFORE UPDATE OR DELETE ON"
    " pgrollout_control.security_alerts FOR EACH ROW EXECUTE FUNCTION"
    " pgrollout_control.audit_log_append_only();"
    "CREATE OR REPLACE TRIGGER security_alerts_no_truncate BEFORE TRUNCATE ON"
    " pgrollout_control.security_alerts FOR EACH STATEMENT EXECUTE FUNCTION"
    " pgrollout_control.audit_log_append_only();"
    "INSERT INTO pgrollout_control.schema_version VALUES (1), (2), (3), (4), (5) ON CONFLICT DO "
    "NOTHING;";

static int fail(const char *cmd, const char *what, const pgr_error *err, int code)
{
    fprintf(stderr, "pgrollout %s: %s: %s\n", cmd, what, err->msg);
    return code;
}

int coord_open(coord *c, const char *config_path, const char *cmd, bool signing)
{
    pgr_error err;
    memset(c, 0, sizeof(*c));
    pgr_error_clear(&err);
    if (pgr_config_load(config_path, &c->cfg, &err) != PGR_OK)
        return fail(cmd, "configuration", &err, COORD_EXIT_USAGE);
    if (c->cfg->control_dsn == NULL) {
        fprintf(stderr, "pgrollout %s: %s: coordinator.control_dsn is required\n", cmd,
                config_path);
        return COORD_EXIT_USAGE;
    }
    if (signing && (c->cfg->secret_key == NULL || c->cfg->agent_keyring == NULL)) {
        fprintf(stderr,
                "pgrollout %s: %s: coordinator.secret_key and coordinator.agent_keyring "
                "are required\n",
                cmd, config_path);
        return COORD_EXIT_USAGE;
    }
    if (pgr_crypto_init(&err) != PGR_OK)
        return fail(cmd, "crypto", &err, COORD_EXIT_FAIL);
    if (signing && pgr_keys_load_secret(c->cfg->secret_key, &c->key, &err) != PGR_OK)
        return fail(cmd, "coordinator key", &err, COORD_EXIT_USAGE);
    if (signing && pgr_keyring_load(c->cfg->agent_keyring, &c->agents, &err) != PGR_OK)
        return fail(cmd, "agent keyring", &err, COORD_EXIT_USAGE);
    if (pgr_pg_connect(c->cfg->control_dsn, "pgrollout-coordinator", &c->db, &err) != PGR_OK)
        return fail(cmd, "control database", &err, COORD_EXIT_FAIL);
    if (pgr_pg_exec(c->db, "SET lock_timeout = 5000; SET client_min_messages = warning", NULL,
                    &err) != PGR_OK)
        return fail(cmd, "control database", &err, COORD_EXIT_FAIL);
    /* Installed already (the collector's restricted role cannot run DDL, and need not)? */
    PGresult *r = NULL;
    bool current = false;
    if (pgr_pg_exec(c->db,
                    "SELECT max(version) = " CONTROL_SCHEMA_VERSION " FROM "
                    "pgrollout_control.schema_version WHERE "
                    "to_regclass('pgrollout_control.schema_version') IS NOT NULL",
                    &r, NULL) == PGR_OK) {
        current = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        PQclear(r);
    }
    if (!current && pgr_pg_exec(c->db, control_ddl, NULL, &err) != PGR_OK)
        return fail(cmd, "control database schema", &err, COORD_EXIT_FAIL);
    pgr_kafka_topic_name(c->cfg, PGR_TOPIC_JOBS, c->topic_jobs, sizeof(c->topic_jobs));
    pgr_kafka_topic_name(c->cfg, PGR_TOPIC_EVENTS, c->topic_events, sizeof(c->topic_events));
    return 0;
}

void coord_close(coord *c)
{
    if (c->consumer != NULL) {
        rd_kafka_consumer_close(c->consumer);
        rd_kafka_destroy(c->consumer);
    }
    if (c->producer != NULL) {
        rd_kafka_flush(c->producer, 10000);
        rd_kafka_destroy(c->producer);
    }
    PQfinish(c->db);
    pgr_keyring_free(c->agents);
    pgr_config_free(c->cfg);
}

/* Creates the three topics (12 partitions, replication as the cluster default) when missing. */
static pgr_code ensure_topics(coord *c, pgr_error *err)
{
    char names[3][256];
    int have = 0, parts = 0;
    for (int i = 0; i < 3; i++) {
        pgr_kafka_topic_name(c->cfg, (pgr_topic)i, names[i], sizeof(names[i]));
        have += pgr_kafka_partitions(c->producer, names[i], 5000, &parts, NULL) == PGR_OK;
    }
    if (have == 3)
        return PGR_OK;
    rd_kafka_poll(c->producer, 100); /* serves the error callback: a refused identity? */
    if (pgr_kafka_refused(err) != PGR_OK)
        return PGR_ERR_KAFKA;
    rd_kafka_NewTopic_t *nt[3];
    char errstr[256];
    for (int i = 0; i < 3; i++) {
        pgr_kafka_topic_name(c->cfg, (pgr_topic)i, names[i], sizeof(names[i]));
        nt[i] = rd_kafka_NewTopic_new(names[i], 12, -1, errstr, sizeof(errstr));
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(c->producer);
    rd_kafka_CreateTopics(c->producer, nt, 3, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 10000);
    pgr_code rc = PGR_OK;
    const rd_kafka_CreateTopics_result_t *res =
        ev != NULL ? rd_kafka_event_CreateTopics_result(ev) : NULL;
    size_t n = 0;
    const rd_kafka_topic_result_t **tr =
        res != NULL ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
    if (res == NULL) {
        /* e.g. librdkafka's mock cluster (dev-kafka) has no CreateTopics: it auto-creates */
        pgr_log_ctx ctx = {"coordinator", NULL, NULL};
        pgr_log_warn(&ctx, "topics could not be created (no answer); relying on auto-creation");
    }
    for (size_t i = 0; rc == PGR_OK && i < n; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            rc = pgr_error_set(err, PGR_ERR_KAFKA, "could not create topic \"%s\": %s",
                               rd_kafka_topic_result_name(tr[i]),
                               rd_kafka_topic_result_error_string(tr[i]));
    }
    if (ev != NULL)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    for (int i = 0; i < 3; i++)
        rd_kafka_NewTopic_destroy(nt[i]);
    return rc;
}

int coord_kafka(coord *c, const char *cmd)
{
    pgr_error err;
    char group[256];
    snprintf(group, sizeof(group), "pgrollout-coordinator-%s", c->cfg->coordinator_id);
    if (pgr_kafka_producer_new(c->cfg, &c->producer, &c->delivery_errors, &err) != PGR_OK ||
        pgr_kafka_consumer_new(c->cfg, group, &c->consumer, &err) != PGR_OK ||
        ensure_topics(c, &err) != PGR_OK)
        return fail(cmd, "kafka", &err, COORD_EXIT_FAIL);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, c->topic_events, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(c->consumer, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "pgrollout %s: kafka: subscribe: %s\n", cmd, rd_kafka_err2str(e));
        return COORD_EXIT_FAIL;
    }
    return 0;
}

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Which agent and kid serve each tenant of a heartbeat the key may speak for: one statement
 * per heartbeat (a statement per tenant made 10,000 tenants' heartbeats the busiest load). */
static void heartbeat_tenants(coord *c, json_t *ev, const pgr_keyring_entry *e)
{
    json_t *ts = json_object_get(ev, "tenants"), *tags = json_object_get(ev, "tags");
    json_t *ids = json_array(), *tag = json_object();
    size_t i;
    json_t *t;
    json_array_foreach(ts, i, t)
    {
        const char *id = json_string_value(t);
        if (id == NULL || !pgr_keyring_allows_tenant(e, id))
            continue;
        json_array_append(ids, t);
        if (str(tags, id) != NULL)
            json_object_set(tag, id, json_object_get(tags, id));
    }
    char *idtext = json_dumps(ids, JSON_COMPACT), *tagtext = json_dumps(tag, JSON_COMPACT);
    const char *params[] = {idtext, str(ev, "agent_id"), e->key.kid, tagtext};
    if (idtext != NULL && tagtext != NULL && json_array_size(ids) > 0)
        PGR_IGNORE(pgr_pg_execp(c->db,
                                "INSERT INTO pgrollout_control.tenants (tenant_id, agent_id, "
                                "agent_kid, last_seen, tags) SELECT DISTINCT ON (t.id) t.id, $2, "
                                "$3, now(), $4::jsonb ->> t.id FROM jsonb_array_elements_text($1"
                                "::jsonb) AS t(id) ON CONFLICT (tenant_id) DO UPDATE SET agent_id "
                                "= $2, agent_kid = $3, last_seen = now(), tags = EXCLUDED.tags",
                                4, params, NULL, NULL));
    free(idtext);
    free(tagtext);
    json_decref(ids);
    json_decref(tag);
}

void coord_event_run_update(json_t *ev, coord_run_update *u)
{
    const char *type = str(ev, "type");
    const char *job_type = str(ev, "job_type"), *outcome = str(ev, "outcome");
    snprintf(u->step, sizeof(u->step), "%lld",
             (long long)json_integer_value(json_object_get(ev, "step")));
    snprintf(u->steps, sizeof(u->steps), "%lld",
             (long long)json_integer_value(json_object_get(ev, "steps")));
    snprintf(u->percent, sizeof(u->percent), "%.1f",
             json_number_value(json_object_get(ev, "percent")));
    bool result = strcmp(type, "result") == 0, security = strcmp(type, "security") == 0;
    bool running = strcmp(type, "step") == 0 || strcmp(type, "progress") == 0;
    bool rb = result && job_type != NULL && strcmp(job_type, "rollback") == 0 && outcome != NULL &&
              strcmp(outcome, "succeeded") == 0;
    u->job_id = str(ev, "job_id");
    u->state = rb ? "rolled_back" : result ? outcome : security ? "rejected" : "running";
    u->version = str(ev, "version");
    u->object = str(ev, "object");
    u->has_percent = strcmp(type, "progress") == 0;
    u->error = running ? NULL : security ? str(ev, "reason") : str(ev, "message");
    u->agent_id = str(ev, "agent_id");
    /* the rollback target: only an apply job's result reports it (docs/PROTOCOL.md 9.5) */
    u->from_version = result && job_type != NULL && strcmp(job_type, "apply") == 0
                          ? str(ev, "from_version")
                          : NULL;
    u->verified = result && job_type != NULL && strcmp(job_type, "apply") == 0 && outcome != NULL &&
                  strcmp(outcome, "succeeded") == 0 &&
                  json_is_true(json_object_get(ev, "verified"));
}

/* The states a run never leaves through events of its job (docs/PROTOCOL.md 9.7). */
#define RUN_FINAL_STATES "('succeeded', 'failed', 'rejected', 'rolled_back', 'cancelled')"

/* One statement per event (docs/PROTOCOL.md 9.7):
 *   bind  the event names a job of ours for its own tenant ($11 = the job's tenant in the outbox;
 *         coord_event_parse checked the key may speak for $11), and its versions are versions
 *         of that job's migrations; else `bad` names what did not agree and nothing is written;
 *   s     the key's event seq for this scope only grows (a replayed old event is refused);
 *   ins   the event is stored once (a redelivery has the same digest);
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
    "digest) SELECT $9, $11, $1, $12, $13::jsonb, $14 WHERE EXISTS (SELECT 1 FROM s) ON CONFLICT "
    "(digest) DO NOTHING RETURNING 1), "
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
    coord_run_update u;
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

json_t *coord_event_parse(const char *payload, size_t len, const pgr_keyring_entry *e,
                          const char **why)
{
    json_t *ev = json_loadb(payload, len, 0, NULL);
    const char *broken = ev == NULL ? "not JSON" : coord_event_rule_broken(ev);
    const char *tenant = broken == NULL ? str(ev, "tenant_id") : NULL;
    if (broken == NULL && tenant != NULL && !pgr_keyring_allows_tenant(e, tenant))
        broken = "tenant_id not allowed for the key";
    if (why != NULL)
        *why = broken;
    if (broken != NULL) {
        json_decref(ev);
        return NULL;
    }
    return ev;
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

json_t *coord_ingest_event(coord *c, const rd_kafka_message_t *m)
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
        return NULL;
    }
    pgr_sha256_hex(m->payload, m->len, digest);
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

static volatile sig_atomic_t reload_requested = 0;

static void on_sighup(int sig)
{
    PGR_UNUSED(sig);
    reload_requested = 1;
}

void coord_reload_on_sighup(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sighup;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
}

bool coord_reload_keyring(coord *c)
{
    if (!reload_requested || c->cfg->agent_keyring == NULL)
        return false;
    reload_requested = 0;
    pgr_log_ctx ctx = {"keyring", NULL, NULL};
    pgr_keyring *kr = NULL;
    pgr_error err;
    pgr_error_clear(&err);
    if (pgr_keyring_load(c->cfg->agent_keyring, &kr, &err) != PGR_OK) {
        pgr_log_error(&ctx, "reload refused, the previous agent keyring stays in force: %s",
                      err.msg);
        return false;
    }
    size_t revoked = 0;
    for (size_t i = 0; i < kr->count; i++)
        revoked += kr->items[i].revoked ? 1 : 0;
    pgr_keyring_free(c->agents);
    c->agents = kr;
    pgr_log_info(&ctx, "reloaded agent keyring %s: %zu key(s), %zu revoked", c->cfg->agent_keyring,
                 kr->count, revoked);
    return true;
}
