/*
 * ctldb.h - the coordinator's control-database session across a restart of that database:
 * reconnect with backoff (and take the rollout's advisory lock again), and consume Kafka
 * messages at least once: a message's offset is committed only after it was stored, and a
 * message that could not be stored because the connection was lost is held and stored again
 * after the reconnect (storage is idempotent: events by digest, audit records by tenant and seq).
 * Also the one rollout lock per rollout, and reading numbers out of the session's results.
 */
#ifndef COORD_CTLDB_H
#define COORD_CTLDB_H

#include "coord.h"
#include "pgr/clock.h"

#include <stdbool.h>

/* Reconnection state of one coordinator process (coord_ctldb_init). */
typedef struct coord_ctldb {
    long long retry_at;  /* monotonic ms before which no reconnect is tried */
    int backoff_ms;      /* 0 while connected */
    long long lost_at;   /* when the current outage was noticed */
    const char *rollout; /* the rollout whose advisory lock the session holds, or NULL */
    bool lock_lost;      /* another coordinator took the rollout during the outage */
    int reconnects;      /* outages survived */
    /* asynchronous commits are gathered and sent at most every COORD_CTLDB_COMMIT_EVERY_MS: one
     * OffsetCommit per event cost the broker more CPU than any other request of a rollout */
    rd_kafka_topic_partition_list_t *pending;
    rd_kafka_t *pending_rk;
    long long flushed_at;
} coord_ctldb;

#define COORD_CTLDB_COMMIT_EVERY_MS 100

/* rollout: the rollout this process runs (its lock is taken again on every reconnect), or NULL
 * (audit collector). The string must outlive g. */
void coord_ctldb_init(coord_ctldb *g, const char *rollout);

/* Session settings of every control-database session (bounded lock waits). */
pgr_code coord_ctldb_session_setup(coord *c, pgr_error *err) PGR_MUSTCHECK;

/* One coordinator per rollout: a session advisory lock on the rollout's name. PGR_ERR_LOCKED
 * unless this session holds it now. */
pgr_code coord_ctldb_lock_rollout(coord *c, const char *name, pgr_error *err) PGR_MUSTCHECK;

/* A number column of a control-database result as an int: 0 unless it is one from 0 to
 * INT32_MAX (NULL included). */
int coord_ctldb_int(const PGresult *r, int row, int col);

/* True when c->db is usable. After a lost connection it reconnects (PQreset, session settings,
 * the rollout lock), at most once per backoff interval: 200 ms doubling to 5 s. Never blocks
 * longer than one connection attempt. Sets g->lock_lost (and returns false) when another
 * coordinator holds the rollout now: this one must stop. */
bool coord_ctldb_ready(coord *c, coord_ctldb *g);

/* Stores one message in the control database; idempotent (a message stored twice is stored
 * once). A lost connection is seen through the connection's state, not returned. */
typedef void (*coord_ctldb_store_fn)(coord *c, const rd_kafka_message_t *m, void *user);

typedef enum coord_ctldb_consumed {
    COORD_CTLDB_CONSUMED_NONE,   /* nothing to read */
    COORD_CTLDB_CONSUMED_STORED, /* stored (or refused for good) and its offset committed */
    COORD_CTLDB_CONSUMED_HELD    /* not stored: held in *held, tried again by the next call */
} coord_ctldb_consumed;

/* Takes the held message, or polls rk (timeout_ms) for the next one, and stores it with fn. The
 * offset is committed (when async: gathered, and sent asynchronously at most every
 * COORD_CTLDB_COMMIT_EVERY_MS; one rk per g) only when the connection survived the store;
 * a lost connection holds the message for the next call, after coord_ctldb_ready reconnected.
 * Other failures are fn's to report (an alert, a warning): the message is not read again.
 * *held must start NULL; the caller destroys a message still held when it stops (not
 * committed: read again later). */
coord_ctldb_consumed coord_ctldb_consume(coord *c, coord_ctldb *g, rd_kafka_t *rk,
                                         rd_kafka_message_t **held, int timeout_ms, bool async,
                                         coord_ctldb_store_fn fn, void *user);

/* Adds the offset after m to l (one entry per partition, the highest): what a commit of every
 * message up to m names. */
void coord_ctldb_offsets_note(rd_kafka_topic_partition_list_t *l, const rd_kafka_message_t *m);

/* Commits the gathered asynchronous offsets now (synchronously) and frees them: before the
 * consumer closes. A crash before it only re-reads stored messages, which are stored once. */
void coord_ctldb_flush(coord_ctldb *g);

#endif
