/*
 * kafka.h - librdkafka clients as pgrollout uses them: every [kafka] config key passes through
 * unchanged; producers are idempotent with acks=all and the Java-compatible murmur2
 * partitioner; message keys are tenant ids, so one tenant's traffic is ordered in one
 * partition. Topic names are "<prefix>jobs", "<prefix>events", "<prefix>audit".
 */
#ifndef PGR_KAFKA_H
#define PGR_KAFKA_H

#include "pgr/config.h"

#include <librdkafka/rdkafka.h>

typedef enum pgr_topic { PGR_TOPIC_JOBS = 0, PGR_TOPIC_EVENTS, PGR_TOPIC_AUDIT } pgr_topic;

/* "<prefix>jobs" etc. into out. */
void pgr_kafka_topic_name(const pgr_config *cfg, pgr_topic t, char *out, size_t outlen);

/* A configuration with every [kafka] key applied; errors name the key. */
pgr_code pgr_kafka_conf(const pgr_config *cfg, rd_kafka_conf_t **out, pgr_error *err) PGR_MUSTCHECK;

/* Idempotent producer (enable.idempotence, acks=all, murmur2_random partitioner). When
 * delivery_errors is not NULL, every message the broker finally refused increments it (the
 * counter must outlive the producer). */
pgr_code pgr_kafka_producer_new(const pgr_config *cfg, rd_kafka_t **out, int *delivery_errors,
                                pgr_error *err) PGR_MUSTCHECK;

/* Consumer in group_id with manual offset commits. */
pgr_code pgr_kafka_consumer_new(const pgr_config *cfg, const char *group_id, rd_kafka_t **out,
                                pgr_error *err) PGR_MUSTCHECK;

/* A rebalance callback of librdkafka (rd_kafka_conf_set_rebalance_cb). */
typedef void (*pgr_kafka_rebalance_cb)(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                                       rd_kafka_topic_partition_list_t *parts, void *opaque);

/* A consumer that shares the partitions of the topics it subscribes to with the other members
 * of group_id (cooperative-sticky); rebalance runs, with opaque, on the thread that polls it
 * and must assign or unassign incrementally. Manual offset commits. */
pgr_code pgr_kafka_group_consumer_new(const pgr_config *cfg, const char *group_id,
                                      pgr_kafka_rebalance_cb rebalance, void *opaque,
                                      rd_kafka_t **out, pgr_error *err) PGR_MUSTCHECK;

/* Produces a copy of value with key to topic (partitioned by the producer). */
pgr_code pgr_kafka_send(rd_kafka_t *rk, const char *topic, const char *key, const char *value,
                        size_t len, pgr_error *err) PGR_MUSTCHECK;

/* One attempt of pgr_kafka_send: a full local queue is an error at once (for a caller that holds
 * a lock other threads wait for; the message is dropped). */
pgr_code pgr_kafka_send_nowait(rd_kafka_t *rk, const char *topic, const char *key,
                               const char *value, size_t len, pgr_error *err) PGR_MUSTCHECK;

/* The delivery reports of a group of messages, for a sender that must know they were
 * acknowledged (acks=all) before it goes on: the audit barrier before a migration step. Whichever
 * thread serves the producer's callbacks updates it. Ownership: the caller's reference and one per
 * message in flight, so a report that arrives after the caller gave up (pgr_kafka_tracker_free)
 * still finds it. */
typedef struct pgr_kafka_tracker pgr_kafka_tracker;

/* A tracker with nothing sent; NULL when out of memory. */
pgr_kafka_tracker *pgr_kafka_tracker_new(void);

/* Releases the caller's reference (NULL is a no-op). */
void pgr_kafka_tracker_free(pgr_kafka_tracker *tr);

/* Like pgr_kafka_send, and the message's delivery report is counted in tr. */
/* One attempt of pgr_kafka_send_tracked (as pgr_kafka_send_nowait). */
pgr_code pgr_kafka_send_tracked_nowait(rd_kafka_t *rk, const char *topic, const char *key,
                                       const char *value, size_t len, pgr_kafka_tracker *tr,
                                       pgr_error *err) PGR_MUSTCHECK;

pgr_code pgr_kafka_send_tracked(rd_kafka_t *rk, const char *topic, const char *key,
                                const char *value, size_t len, pgr_kafka_tracker *tr,
                                pgr_error *err) PGR_MUSTCHECK;

/* Serves rk's callbacks until every message sent with tr has its delivery report, at most
 * timeout_ms. PGR_OK when all were acknowledged; PGR_ERR_KAFKA (retriable) when one was refused
 * or the time ran out. */
pgr_code pgr_kafka_tracker_wait(rd_kafka_t *rk, pgr_kafka_tracker *tr, int timeout_ms,
                                pgr_error *err) PGR_MUSTCHECK;

/* Number of partitions of topic (waits up to timeout_ms for metadata); PGR_ERR_KAFKA when it does
 * not exist. Never creates it: the metadata of every topic is asked for, not of this one, which a
 * broker with auto.create.topics.enable would create with its default partition count (the
 * coordinator creates the topics with 12, PROTOCOL 7.1). */
pgr_code pgr_kafka_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, int *count,
                              pgr_error *err) PGR_MUSTCHECK;

/* The same for n topics at once, from one metadata request: counts[i] of topics[i] (0 when it
 * does not exist); PGR_ERR_KAFKA naming the first missing one. */
pgr_code pgr_kafka_topics_partitions(rd_kafka_t *rk, const char *const *topics, int n,
                                     int timeout_ms, int *counts, pgr_error *err) PGR_MUSTCHECK;

/* An error when a broker refused this process's identity (SASL authentication failed, TLS
 * handshake or certificate verification failed): a configuration error that retrying does not
 * mend, so callers stop with it instead of waiting for a timeout. PGR_OK otherwise. */
pgr_code pgr_kafka_refused(pgr_error *err) PGR_MUSTCHECK;

/* The partition a key maps to: Java client compatible murmur2 (positive hash mod count). */
int pgr_kafka_partition_for(const char *key, int count);

/* m's key (the tenant id of every pgrollout message) as a string, cut to outlen - 1 bytes; ""
 * without a key. */
void pgr_kafka_message_key(const rd_kafka_message_t *m, char *out, size_t outlen);

#endif
