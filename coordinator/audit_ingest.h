/*
 * audit_ingest.h - verifying and storing audit records: one at a time (coord_audit_ingest, for
 * `pgrollout run`) or a batch at a time (the collector).
 */
#ifndef COORD_AUDIT_INGEST_H
#define COORD_AUDIT_INGEST_H

#include "coord.h"

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>

/* An audit payload's members; the strings belong to doc. */
typedef struct coord_audit_ingest_msg {
    json_t *doc;
    const char *tenant_id, *prev_hash, *hash, *record;
    long long seq;
} coord_audit_ingest_msg;

/* Checks a verified audit payload that arrived under the Kafka key tenant, signed by key e: its
 * members, the key's right to speak for the tenant, and hash = SHA-256(prev_hash || record) with
 * the record naming the same chain position. Returns NULL when it may be stored, else the alert
 * kind ("malformed", "untrusted_key", "broken_hash") with *detail saying why. msg->doc is set
 * either way (possibly NULL) and the caller decrefs it. */
const char *coord_audit_ingest_check(const char *payload, size_t len, const char *tenant,
                                     const pgr_keyring_entry *e, coord_audit_ingest_msg *msg,
                                     const char **detail);

/* hash == SHA-256(prev_hash bytes || record bytes) and the record names the same chain
 * position. Returns NULL when consistent, else what is wrong. */
const char *coord_audit_ingest_check_link(const char *tenant, long long seq, const char *prev,
                                          const char *hash, const char *record);

/* Verifies and stores one audit message (or records an alert). */
void coord_audit_ingest(coord *c, const rd_kafka_message_t *m);

/* Messages of the audit topic read but not yet committed. */
typedef struct coord_audit_ingest_batch coord_audit_ingest_batch;

/* capacity: the most messages one batch holds. NULL when out of memory. */
coord_audit_ingest_batch *coord_audit_ingest_batch_new(int capacity);

/* Destroys the messages still held without committing them (read again later). */
void coord_audit_ingest_batch_free(coord_audit_ingest_batch *b);

/* Messages held (read, not yet committed). */
int coord_audit_ingest_batch_count(const coord_audit_ingest_batch *b);

/* When the batch is empty: waits up to timeout_ms for a message, then takes whatever else is
 * already fetched, up to the capacity. Returns the number of messages held. */
int coord_audit_ingest_batch_fill(coord_audit_ingest_batch *b, rd_kafka_t *rk, int timeout_ms);

/* Verifies every held message (once; on all cores) and stores the records, and the alerts of
 * those refused, in one transaction. False when the connection was lost: nothing of the batch
 * is stored and the same batch is tried again after the reconnect. */
bool coord_audit_ingest_batch_store(coord *c, coord_audit_ingest_batch *b);

/* Commits the offsets of the held (stored) messages, asynchronously, and empties the batch. */
void coord_audit_ingest_batch_commit(coord_audit_ingest_batch *b, rd_kafka_t *rk);

/* `audit collect`: reads batches of c->consumer (subscribed to the audit topic), verifies and
 * stores each in one transaction, then commits its offsets: a crash re-reads, never skips; a
 * lost control database holds the batch until it is back. Runs until *stop is set (a signal
 * handler), or no message came for idle_exit_s seconds (when > 0). *stored: the messages
 * processed. */
pgr_code coord_audit_ingest_collect(coord *c, int idle_exit_s, const volatile sig_atomic_t *stop,
                                    long *stored, pgr_error *err) PGR_MUSTCHECK;

#endif
