/*
 * coord.c - the coordinator's session (coord.h): configuration, keys, the control database
 * connection with its schema, and the Kafka clients with their topics.
 */
#include "coord.h"
#include "schema.h"

#include "pgr/crypto.h"
#include "pgr/log.h"
#include "pgr/pg.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

/* err, with what failed in front of its message, as code: the class of the failure decides the
 * exit code of the command (coord.h). */
static pgr_code open_failed(pgr_error *err, pgr_code code, const char *what)
{
    pgr_error_prefix(err, "%s", what);
    if (err != NULL)
        err->code = code;
    return code;
}

pgr_code coord_open(coord *c, const char *config_path, bool signing, pgr_error *err)
{
    memset(c, 0, sizeof(*c));
    pgr_error_clear(err);
    if (pgr_config_load(config_path, &c->cfg, err) != PGR_OK)
        return open_failed(err, PGR_ERR_CONFIG, "configuration");
    if (c->cfg->control_dsn == NULL)
        return pgr_error_set(err, PGR_ERR_CONFIG, "%s: coordinator.control_dsn is required",
                             config_path);
    if (signing && (c->cfg->secret_key == NULL || c->cfg->agent_keyring == NULL))
        return pgr_error_set(err, PGR_ERR_CONFIG,
                             "%s: coordinator.secret_key and coordinator.agent_keyring are "
                             "required",
                             config_path);
    if (pgr_crypto_init(err) != PGR_OK)
        return open_failed(err, PGR_ERR_CRYPTO, "crypto");
    if (signing && pgr_keys_load_secret(c->cfg->secret_key, &c->key, err) != PGR_OK)
        return open_failed(err, PGR_ERR_CONFIG, "coordinator key");
    if (signing && pgr_keyring_load(c->cfg->agent_keyring, &c->agents, err) != PGR_OK)
        return open_failed(err, PGR_ERR_CONFIG, "agent keyring");
    if (pgr_pg_connect(c->cfg->control_dsn, "pgrollout-coordinator", &c->db, err) != PGR_OK)
        return open_failed(err, PGR_ERR_DB, "control database");
    if (pgr_pg_exec(c->db, "SET lock_timeout = 5000; SET client_min_messages = warning", NULL,
                    err) != PGR_OK)
        return open_failed(err, PGR_ERR_DB, "control database");
    if (coord_schema_install(c->db, err) != PGR_OK)
        return open_failed(err, PGR_ERR_DB, "control database schema");
    pgr_kafka_topic_name(c->cfg, PGR_TOPIC_JOBS, c->topic_jobs, sizeof(c->topic_jobs));
    pgr_kafka_topic_name(c->cfg, PGR_TOPIC_EVENTS, c->topic_events, sizeof(c->topic_events));
    return PGR_OK;
}

pgr_code coord_metrics_start(coord *c, pgr_error *err)
{
    if (c->cfg == NULL || c->cfg->metrics_listen == NULL || c->metrics != NULL)
        return PGR_OK;
    if ((c->metrics = pgr_metrics_new()) == NULL)
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    return pgr_metrics_serve(c->metrics, c->cfg->metrics_listen, err);
}

void coord_close(coord *c)
{
    pgr_metrics_free(c->metrics);
    c->metrics = NULL;
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

/* Creates the three topics when missing: topics.partitions partitions (12), topics.replication
 * copies (the cluster's default.replication.factor; min.insync.replicas is the cluster's). */
static pgr_code ensure_topics(coord *c, pgr_error *err)
{
    char names[3][256];
    const char *list[3] = {names[0], names[1], names[2]};
    int parts[3];
    for (int i = 0; i < 3; i++)
        pgr_kafka_topic_name(c->cfg, (pgr_topic)i, names[i], sizeof(names[i]));
    if (pgr_kafka_topics_partitions(c->producer, list, 3, 5000, parts, NULL) == PGR_OK)
        return PGR_OK;
    rd_kafka_poll(c->producer, 100); /* serves the error callback: a refused identity? */
    if (pgr_kafka_refused(err) != PGR_OK)
        return PGR_ERR_KAFKA;
    rd_kafka_NewTopic_t *nt[3];
    char errstr[256];
    for (int i = 0; i < 3; i++)
        nt[i] = rd_kafka_NewTopic_new(names[i], c->cfg->topic_partitions, c->cfg->topic_replication,
                                      errstr, sizeof(errstr));
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

pgr_code coord_kafka(coord *c, pgr_error *err)
{
    char group[256];
    snprintf(group, sizeof(group), "pgrollout-coordinator-%s", c->cfg->coordinator_id);
    if (pgr_kafka_producer_new(c->cfg, &c->producer, &c->delivery_errors, err) != PGR_OK ||
        pgr_kafka_consumer_new(c->cfg, group, &c->consumer, err) != PGR_OK ||
        ensure_topics(c, err) != PGR_OK)
        return open_failed(err, PGR_ERR_KAFKA, "kafka");
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, c->topic_events, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(c->consumer, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return pgr_error_set(err, PGR_ERR_KAFKA, "kafka: subscribe: %s", rd_kafka_err2str(e));
    return PGR_OK;
}

pgr_code coord_audit_consumer(coord *c, rd_kafka_t **out, pgr_error *err)
{
    char group[256], topic[256];
    rd_kafka_t *rk = NULL;
    *out = NULL;
    snprintf(group, sizeof(group), "pgrollout-audit-collector-%s", c->cfg->coordinator_id);
    if (pgr_kafka_consumer_new(c->cfg, group, &rk, err) != PGR_OK)
        return PGR_ERR_KAFKA;
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    pgr_kafka_topic_name(c->cfg, PGR_TOPIC_AUDIT, topic, sizeof(topic));
    rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_destroy(rk);
        return pgr_error_set(err, PGR_ERR_KAFKA, "subscribe: %s", rd_kafka_err2str(e));
    }
    *out = rk;
    return PGR_OK;
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
