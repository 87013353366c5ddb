/*
 * audit_ingest.h - verifying and storing audit records: one at a time (coord_audit_ingest in
 * coord.h, for `pgrollout run`) or a batch at a time (the collector).
 */
#ifndef COORD_AUDIT_INGEST_H
#define COORD_AUDIT_INGEST_H

#include "coord.h"

#include <stdbool.h>

/* hash == SHA-256(prev_hash bytes || record bytes) and the record names the same chain
 * position. Returns NULL when consistent, else what is wrong. */
const char *coord_audit_check_link(const char *tenant, long long seq, const char *prev,
                                   const char *hash, const char *record);

/* Messages of the audit topic read but not yet committed. */
typedef struct coord_audit_batch coord_audit_batch;

/* capacity: the most messages one batch holds. NULL when out of memory. */
coord_audit_batch *coord_audit_batch_new(int capacity);

/* Destroys the messages still held without committing them (read again later). */
void coord_audit_batch_free(coord_audit_batch *b);

/* Messages held (read, not yet committed). */
int coord_audit_batch_count(const coord_audit_batch *b);

/* When the batch is empty: waits up to timeout_ms for a message, then takes whatever else is
 * already fetched, up to the capacity. Returns the number of messages held. */
int coord_audit_batch_fill(coord_audit_batch *b, rd_kafka_t *rk, int timeout_ms);

/* Verifies every held message (once; on all cores) and stores the records, and the alerts of
 * those refused, in one transaction. False when the connection was lost: nothing of the batch
 * is stored and the same batch is tried again after the reconnect. */
bool coord_audit_batch_store(coord *c, coord_audit_batch *b);

/* Commits the offsets of the held (stored) messages, asynchronously, and empties the batch. */
void coord_audit_batch_commit(coord_audit_batch *b, rd_kafka_t *rk);

#endif
