/* kafka.c - librdkafka producer/consumer set-up with configuration pass-through. */
#include "pgr/kafka.h"

#include "pgr/clock.h"
#include "pgr/log.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A tracker travels to the thread that runs its delivery report through librdkafka's queue,
 * whose C11 locks ThreadSanitizer does not see: its build is told of that hand-over, so the
 * report's updates are not taken for races with the tracker's allocation. */
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define TRACKER_HAND_OVER(tr) __tsan_release(tr)
#define TRACKER_TAKE_OVER(tr) __tsan_acquire(tr)
#else
#define TRACKER_HAND_OVER(tr) ((void)(tr))
#define TRACKER_TAKE_OVER(tr) ((void)(tr))
#endif

void pgr_kafka_topic_name(const pgr_config *cfg, pgr_topic t, char *out, size_t outlen)
{
    static const char *const names[] = {"jobs", "events", "audit"};
    snprintf(out, outlen, "%s%s", cfg->topic_prefix, names[t]);
}

static pgr_code conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, pgr_error *err)
{
    char errstr[256];
    if (rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
        return pgr_error_set(err, PGR_ERR_CONFIG, "kafka.%s: %s", k, errstr);
    return PGR_OK;
}

/* Set once by the first refusal of our identity (any client of the process); never reset.
 * refused_cert: it was the broker's certificate that failed verification (wrong CA, or a host
 * name the certificate does not hold), not our credentials. */
static atomic_int refused = 0;
static bool refused_cert;
static char refused_reason[512];

/* librdkafka's error callback (its threads). Other errors are transient (broker down, timeouts):
 * librdkafka retries them, so they are only logged. */
static void on_error(rd_kafka_t *rk, int e, const char *reason, void *opaque)
{
    PGR_UNUSED(opaque);
    pgr_log_ctx ctx = {"kafka", NULL, NULL};
    /* Only a refusal the broker really answered: a plain disconnect while a broker restarts
     * also carries librdkafka's hint "broker might require SASL authentication", and an agent
     * waiting for its topic must not take that for wrong credentials and exit. */
    bool identity = (e == RD_KAFKA_RESP_ERR__AUTHENTICATION || e == RD_KAFKA_RESP_ERR__SSL ||
                     e == RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED) &&
                    reason != NULL &&
                    (strstr(reason, "authentication error") != NULL ||
                     strstr(reason, "SSL handshake failed") != NULL);
    pgr_log_warn(&ctx, "%s: %s", rd_kafka_name(rk), reason);
    int expected = 0;
    if (identity && atomic_compare_exchange_strong(&refused, &expected, 2)) {
        /* librdkafka 2.0 says "certificate verify failed" for an unknown CA and for a host
         * name mismatch alike (ssl.endpoint.identification.algorithm=https) */
        refused_cert = strstr(reason, "certificate verify failed") != NULL;
        snprintf(refused_reason, sizeof(refused_reason), "%s (%s)", rd_kafka_err2str(e), reason);
        atomic_store(&refused, 1);
    }
}

pgr_code pgr_kafka_refused(pgr_error *err)
{
    if (atomic_load(&refused) != 1)
        return PGR_OK;
    if (refused_cert)
        return pgr_error_set(err, PGR_ERR_KAFKA,
                             "the broker's TLS certificate could not be verified (check that "
                             "[kafka] ssl.ca.location holds the CA that signed it and that "
                             "bootstrap.servers names a host the certificate holds): %s",
                             refused_reason);
    return pgr_error_set(err, PGR_ERR_KAFKA,
                         "the broker refused this client's credentials or TLS: %s; check the "
                         "[kafka] security.protocol, sasl.* and ssl.* settings",
                         refused_reason);
}

pgr_code pgr_kafka_conf(const pgr_config *cfg, rd_kafka_conf_t **out, pgr_error *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_error_cb(conf, on_error);
    /* Verify that the broker's certificate names the host we connect to: librdkafka's default
     * since 2.0, set here so that no build depends on that default. [kafka] may still say
     * "none". Ignored if librdkafka was built without TLS (the key is then unknown to it). */
    char errstr[256];
    (void)rd_kafka_conf_set(conf, "ssl.endpoint.identification.algorithm", "https", errstr,
                            sizeof(errstr));
    for (size_t i = 0; i < cfg->kafka_count; i++) {
        if (conf_set(conf, cfg->kafka[i].key, cfg->kafka[i].value, err) != PGR_OK) {
            rd_kafka_conf_destroy(conf);
            return PGR_ERR_CONFIG;
        }
    }
    *out = conf;
    return PGR_OK;
}

static pgr_code client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, rd_kafka_t **out,
                           pgr_error *err)
{
    char errstr[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return pgr_error_set(err, PGR_ERR_KAFKA, "could not create Kafka client: %s", errstr);
    }
    *out = rk; /* on success conf belongs to the client */
    return PGR_OK;
}

struct pgr_kafka_tracker {
    atomic_int refs;        /* the caller's and one per message without a delivery report */
    atomic_int pending;     /* messages without a delivery report */
    atomic_int failed;      /* messages the broker finally refused */
    atomic_int first_error; /* rd_kafka_resp_err_t of the first refusal */
};

pgr_kafka_tracker *pgr_kafka_tracker_new(void)
{
    pgr_kafka_tracker *tr = calloc(1, sizeof(*tr));
    if (tr != NULL)
        atomic_init(&tr->refs, 1);
    return tr;
}

void pgr_kafka_tracker_free(pgr_kafka_tracker *tr)
{
    if (tr != NULL && atomic_fetch_sub(&tr->refs, 1) == 1)
        free(tr);
}

static void tracker_report(pgr_kafka_tracker *tr, rd_kafka_resp_err_t e)
{
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR && atomic_fetch_add(&tr->failed, 1) == 0)
        atomic_store(&tr->first_error, (int)e);
    atomic_fetch_sub(&tr->pending, 1);
    pgr_kafka_tracker_free(tr); /* the message's reference */
}

/* Callbacks run on whichever thread polls the producer: the daemon's loop, or a job's thread
 * waiting in pgr_kafka_tracker_wait. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    PGR_UNUSED(rk);
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && opaque != NULL)
        __atomic_fetch_add((int *)opaque, 1, __ATOMIC_RELAXED);
    if (m->_private != NULL) {
        TRACKER_TAKE_OVER(m->_private);
        tracker_report(m->_private, m->err);
    }
}

pgr_code pgr_kafka_producer_new(const pgr_config *cfg, rd_kafka_t **out, int *delivery_errors,
                                pgr_error *err)
{
    rd_kafka_conf_t *conf = NULL;
    pgr_code rc = pgr_kafka_conf(cfg, &conf, err);
    /* No linger unless [kafka] sets one: jobs are flushed at once anyway, and an event waiting
     * 5 ms (librdkafka's default) for company cost a tenth of the dispatch round trip
     * (docs/BENCHMARKS.md); messages queued while a request is in flight are still batched. */
    bool linger_set = false;
    for (size_t i = 0; i < cfg->kafka_count; i++)
        linger_set = linger_set || strcmp(cfg->kafka[i].key, "linger.ms") == 0 ||
                     strcmp(cfg->kafka[i].key, "queue.buffering.max.ms") == 0;
    if (rc == PGR_OK && !linger_set)
        rc = conf_set(conf, "linger.ms", "0", err);
    /* Safety settings are not negotiable: set after the pass-through so they win. */
    if (rc == PGR_OK)
        rc = conf_set(conf, "enable.idempotence", "true", err);
    if (rc == PGR_OK)
        rc = conf_set(conf, "acks", "all", err);
    if (rc == PGR_OK)
        rc = conf_set(conf, "partitioner", "murmur2_random", err);
    if (rc == PGR_OK) {
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        rd_kafka_conf_set_opaque(conf, delivery_errors);
    }
    if (rc != PGR_OK) {
        if (conf != NULL)
            rd_kafka_conf_destroy(conf);
        return rc;
    }
    return client_new(RD_KAFKA_PRODUCER, conf, out, err);
}

static pgr_code consumer_new(const pgr_config *cfg, const char *group_id,
                             pgr_kafka_rebalance_cb rebalance, void *opaque, rd_kafka_t **out,
                             pgr_error *err)
{
    rd_kafka_conf_t *conf = NULL;
    pgr_code rc = pgr_kafka_conf(cfg, &conf, err);
    /* A crashed process's group member holds its partitions until the session times out;
     * 10 s instead of librdkafka's 45 s lets a restarted coordinator or collector carry on
     * sooner (a [kafka] session.timeout.ms in the config still wins). */
    bool user_session = false;
    for (size_t i = 0; i < cfg->kafka_count; i++)
        user_session = user_session || strcmp(cfg->kafka[i].key, "session.timeout.ms") == 0;
    if (rc == PGR_OK && !user_session)
        rc = conf_set(conf, "session.timeout.ms", "10000", err);
    if (rc == PGR_OK)
        rc = conf_set(conf, "group.id", group_id, err);
    if (rc == PGR_OK)
        rc = conf_set(conf, "enable.auto.commit", "false", err);
    if (rc == PGR_OK)
        rc = conf_set(conf, "auto.offset.reset", "earliest", err);
    /* a member that joins or leaves moves only the partitions that must move: the others keep
     * serving their tenants through a rebalance */
    if (rc == PGR_OK && rebalance != NULL)
        rc = conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", err);
    if (rc == PGR_OK && rebalance != NULL) {
        rd_kafka_conf_set_rebalance_cb(conf, rebalance);
        rd_kafka_conf_set_opaque(conf, opaque);
    }
    if (rc != PGR_OK) {
        if (conf != NULL)
            rd_kafka_conf_destroy(conf);
        return rc;
    }
    rc = client_new(RD_KAFKA_CONSUMER, conf, out, err);
    if (rc == PGR_OK)
        rd_kafka_poll_set_consumer(*out);
    return rc;
}

pgr_code pgr_kafka_consumer_new(const pgr_config *cfg, const char *group_id, rd_kafka_t **out,
                                pgr_error *err)
{
    return consumer_new(cfg, group_id, NULL, NULL, out, err);
}

pgr_code pgr_kafka_group_consumer_new(const pgr_config *cfg, const char *group_id,
                                      pgr_kafka_rebalance_cb rebalance, void *opaque,
                                      rd_kafka_t **out, pgr_error *err)
{
    return consumer_new(cfg, group_id, rebalance, opaque, out, err);
}

/* opaque: a tracker (its delivery report is counted there), or NULL */
static rd_kafka_resp_err_t produce_once(rd_kafka_t *rk, const char *topic, const char *key,
                                        const char *value, size_t len, void *opaque)
{
    return rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY((void *)(uintptr_t)key, strlen(key)),
        RD_KAFKA_V_VALUE((void *)(uintptr_t)value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
}

/* Produces, waiting while librdkafka's local queue is full (up to 100 tries of 100 ms). */
static pgr_code produce(rd_kafka_t *rk, const char *topic, const char *key, const char *value,
                        size_t len, void *opaque, pgr_error *err)
{
    for (int tries = 0; tries < 100; tries++) {
        rd_kafka_resp_err_t e = produce_once(rk, topic, key, value, len, opaque);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            return PGR_OK;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return pgr_error_set(err, PGR_ERR_KAFKA, "could not produce to \"%s\": %s", topic,
                                 rd_kafka_err2str(e));
        rd_kafka_poll(rk, 100); /* local queue full: let deliveries drain */
    }
    return pgr_error_set(err, PGR_ERR_KAFKA, "could not produce to \"%s\": queue full", topic);
}

pgr_code pgr_kafka_send_nowait(rd_kafka_t *rk, const char *topic, const char *key,
                               const char *value, size_t len, pgr_error *err)
{
    rd_kafka_resp_err_t e = produce_once(rk, topic, key, value, len, NULL);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        return PGR_OK;
    return pgr_error_set(err, PGR_ERR_KAFKA, "could not produce to \"%s\": %s", topic,
                         rd_kafka_err2str(e));
}

pgr_code pgr_kafka_send(rd_kafka_t *rk, const char *topic, const char *key, const char *value,
                        size_t len, pgr_error *err)
{
    return produce(rk, topic, key, value, len, NULL, err);
}

/* wait: while librdkafka's local queue is full (produce), or not at all (produce_once). */
static pgr_code send_tracked(rd_kafka_t *rk, const char *topic, const char *key, const char *value,
                             size_t len, pgr_kafka_tracker *tr, bool wait, pgr_error *err)
{
    atomic_fetch_add(&tr->refs, 1);
    atomic_fetch_add(&tr->pending, 1);
    TRACKER_HAND_OVER(tr);
    pgr_code rc = PGR_OK;
    if (wait) {
        rc = produce(rk, topic, key, value, len, tr, err);
    } else {
        rd_kafka_resp_err_t e = produce_once(rk, topic, key, value, len, tr);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
            rc = pgr_error_set(err, PGR_ERR_KAFKA, "could not produce to \"%s\": %s", topic,
                               rd_kafka_err2str(e));
    }
    if (rc != PGR_OK) { /* no delivery report will come: the caller still holds its own ref */
        atomic_fetch_sub(&tr->pending, 1);
        atomic_fetch_sub(&tr->refs, 1);
    }
    return rc;
}

pgr_code pgr_kafka_send_tracked(rd_kafka_t *rk, const char *topic, const char *key,
                                const char *value, size_t len, pgr_kafka_tracker *tr,
                                pgr_error *err)
{
    return send_tracked(rk, topic, key, value, len, tr, true, err);
}

pgr_code pgr_kafka_send_tracked_nowait(rd_kafka_t *rk, const char *topic, const char *key,
                                       const char *value, size_t len, pgr_kafka_tracker *tr,
                                       pgr_error *err)
{
    return send_tracked(rk, topic, key, value, len, tr, false, err);
}

pgr_code pgr_kafka_tracker_wait(rd_kafka_t *rk, pgr_kafka_tracker *tr, int timeout_ms,
                                pgr_error *err)
{
    long long deadline = pgr_clock_mono_ms() + timeout_ms;
    /* a short poll: the report may be served by another thread, which this one then sees */
    while (atomic_load(&tr->pending) > 0 && pgr_clock_mono_ms() < deadline)
        rd_kafka_poll(rk, 1);
    pgr_code rc = PGR_OK;
    if (atomic_load(&tr->failed) > 0)
        rc = pgr_error_set(err, PGR_ERR_KAFKA, "the broker refused %d message(s): %s",
                           atomic_load(&tr->failed),
                           rd_kafka_err2str((rd_kafka_resp_err_t)atomic_load(&tr->first_error)));
    else if (atomic_load(&tr->pending) > 0)
        rc = pgr_error_set(err, PGR_ERR_KAFKA,
                           "%d message(s) not acknowledged by the broker within %d ms",
                           atomic_load(&tr->pending), timeout_ms);
    if (rc != PGR_OK && err != NULL)
        err->retriable = true;
    return rc;
}

pgr_code pgr_kafka_topics_partitions(rd_kafka_t *rk, const char *const *topics, int n,
                                     int timeout_ms, int *counts, pgr_error *err)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
    int missing = -1;
    for (int t = 0; t < n; t++) {
        counts[t] = 0;
        for (int i = 0; e == RD_KAFKA_RESP_ERR_NO_ERROR && i < md->topic_cnt; i++) {
            if (strcmp(md->topics[i].topic, topics[t]) == 0 && md->topics[i].err == 0)
                counts[t] = md->topics[i].partition_cnt;
        }
        if (counts[t] <= 0 && missing < 0)
            missing = t;
    }
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    if (missing < 0)
        return PGR_OK;
    if (pgr_kafka_refused(err) != PGR_OK)
        return PGR_ERR_KAFKA;
    return pgr_error_set(
        err, PGR_ERR_KAFKA, "no metadata for topic \"%s\": %s", topics[missing],
        rd_kafka_err2str(e != RD_KAFKA_RESP_ERR_NO_ERROR ? e : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
}

pgr_code pgr_kafka_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, int *count,
                              pgr_error *err)
{
    return pgr_kafka_topics_partitions(rk, &topic, 1, timeout_ms, count, err);
}

int pgr_kafka_partition_for(const char *key, int count)
{
    return rd_kafka_msg_partitioner_murmur2(NULL, key, strlen(key), count, NULL, NULL);
}

void pgr_kafka_message_key(const rd_kafka_message_t *m, char *out, size_t outlen)
{
    size_t n = m->key != NULL ? m->key_len : 0;
    if (outlen == 0)
        return;
    if (n > outlen - 1)
        n = outlen - 1;
    if (n > 0)
        memcpy(out, m->key, n);
    out[n] = '\0';
}
