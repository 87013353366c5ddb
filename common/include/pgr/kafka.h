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

/* Produces a copy of value with key to topic (partitioned by the producer). */
pgr_code pgr_kafka_send(rd_kafka_t *rk, const char *topic, const char *key, const char *value,
                        size_t len, pgr_error *err) PGR_MUSTCHECK;

/* Number of partitions of topic (waits up to timeout_ms for metadata). */
pgr_code pgr_kafka_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, int *count,
                              pgr_error *err) PGR_MUSTCHECK;

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
