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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The newest version control_ddl installs (its last INSERT must list it). */
#define CONTROL_SCHEMA_VERSION "4"

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
    "INSERT INTO pgrollout_control.schema_version VALUES (1), (2), (3), (4) ON CONFLICT DO "
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
             json_real_value(json_object_get(ev, "percent")));
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
    u->from_version = str(ev, "from_version");
    u->verified = result && job_type != NULL && strcmp(job_type, "apply") == 0 && outcome != NULL &&
                  strcmp(outcome, "succeeded") == 0 &&
                  json_is_true(json_object_get(ev, "verified"));
}

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

/* The states a run never leaves through events of its job (docs/PROTOCOL.md 9.7). */
#define RUN_FINAL_STATES "('succeeded', 'failed', 'rejected', 'rolled_back', 'cancelled')"

/* Stores the event and folds it into its run (terminal states stay terminal: a late progress
 * event never revives a finished run, nor stamps it verified). */
static pgr_code exec_event_stmt(coord *c, const char *const *params, PGresult **r)
{
    bool ready = c->event_stmt_pid != 0 && c->event_stmt_pid == PQbackendPID(c->db);
    if (!ready)
        ready = event_stmt_exists(c);
    pgr_code rc = pgr_pg_execp_prepared(
        c->db, "pgr_store_event",
        "WITH ins AS (INSERT INTO pgrollout_control.events (agent_id, tenant_id, job_id, type, "
        "payload, digest) VALUES ($9, $11, $1, $12, $13::jsonb, $14) ON CONFLICT (digest) DO "
        "NOTHING RETURNING 1), run AS (UPDATE pgrollout_control.tenant_runs SET state = CASE "
        "WHEN state IN " RUN_FINAL_STATES " THEN state ELSE $2 END, version = coalesce($3, "
        "version), from_version = coalesce($10, from_version), step = CASE WHEN $4 = '0' THEN step "
        "ELSE $4::int END, steps = CASE "
        "WHEN $5 = '0' THEN steps ELSE $5::int END, object = coalesce($6, object), percent = "
        "coalesce($7::float8, percent), error = coalesce($8, error), agent_id = $9, "
        "verified_at = CASE WHEN $15::bool AND state NOT IN " RUN_FINAL_STATES " THEN now() "
        "ELSE verified_at END, "
        "updated_at = now() WHERE job_id = $1 AND EXISTS (SELECT 1 FROM ins)) SELECT count(*) "
        "FROM ins",
        &ready, 15, params, r, NULL);
    c->event_stmt_pid = rc == PGR_OK ? PQbackendPID(c->db) : 0;
    return rc;
}

/* Stores an event of a job and folds it into the job's tenant run in one statement: a
 * connection lost in between can never leave the event stored but not folded (its redelivery
 * would be a duplicate, never folded). Returns whether the event was new. */
static bool store_job_event(coord *c, json_t *ev, const char *text, const char *digest)
{
    coord_run_update u;
    PGresult *r = NULL;
    coord_event_run_update(ev, &u);
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
                            u.verified ? "true" : "false"};
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
    bool fresh = rc == PGR_OK && strcmp(PQgetvalue(r, 0, 0), "1") == 0;
    PQclear(r);
    return fresh;
}

json_t *coord_event_parse(const char *payload, size_t len, const pgr_keyring_entry *e)
{
    json_t *ev = json_loadb(payload, len, 0, NULL);
    const char *type = str(ev, "type"), *tenant = str(ev, "tenant_id");
    if (type == NULL || str(ev, "agent_id") == NULL ||
        (tenant != NULL && !pgr_keyring_allows_tenant(e, tenant))) {
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
    char *payload = NULL, kid[PGR_KID_LEN];
    size_t plen = 0;
    pgr_envelope_reject why;
    const pgr_keyring_entry *e = NULL;
    pgr_error err;
    pgr_log_ctx ctx = {"events", NULL, NULL};

    if (pgr_envelope_open(m->payload, m->len, 1 << 20, PGR_DOMAIN_EVENT, c->agents, &payload, &plen,
                          &e, kid, &why, &err) != PGR_OK) {
        pgr_log_warn(&ctx, "event refused: %s (key \"%s\")", err.msg, kid);
        return NULL;
    }
    json_t *ev = coord_event_parse(payload, plen, e);
    free(payload);
    if (ev == NULL) {
        pgr_log_warn(&ctx, "event refused: malformed, or key \"%s\" may not speak for tenant", kid);
        return NULL;
    }
    const char *type = str(ev, "type"), *tenant = str(ev, "tenant_id");
    /* Kafka delivers at least once (a consumer that could not commit during a broker outage
     * reads again): the same signed message is stored once, keyed by its digest. */
    char *text = json_dumps(ev, JSON_COMPACT), digest[PGR_SHA256_HEX_LEN];
    PGresult *ins = NULL;
    if (strcmp(type, "security") == 0)
        attribute_refusal(c, ev); /* the job_id column and the run: ours, or none */
    pgr_sha256_hex(m->payload, m->len, digest);
    const char *params[] = {str(ev, "agent_id"), tenant, str(ev, "job_id"), type, text, digest};
    bool job = strcmp(type, "heartbeat") != 0 && str(ev, "job_id") != NULL;
    bool fresh = job ? store_job_event(c, ev, text, digest)
                     : pgr_pg_execp(c->db,
                                    "INSERT INTO pgrollout_control.events (agent_id, tenant_id, "
                                    "job_id, type, payload, digest) VALUES ($1, $2, $3, $4, "
                                    "$5::jsonb, $6) ON CONFLICT (digest) DO NOTHING",
                                    6, params, &ins, NULL) == PGR_OK &&
                           strcmp(PQcmdTuples(ins), "1") == 0;
    PQclear(ins);
    free(text);
    if (!fresh) {
        json_decref(ev);
        return NULL; /* a redelivery: already folded in */
    }
    /* a heartbeat lost with the connection here is repeated by the agent within seconds */
    if (strcmp(type, "heartbeat") == 0)
        heartbeat_tenants(c, ev, e);
    return ev;
}
