/*
 * ctldb.c - the control-database session survives a restart of the control database: a lost
 * connection is reset with backoff (the session's settings and the rollout's advisory lock come
 * back with it), and Kafka offsets are committed only for messages that were stored, so that
 * nothing read during the outage is skipped.
 */
#include "ctldb.h"

#include "pgr/log.h"
#include "pgr/parse.h"
#include "pgr/pg.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define BACKOFF_FIRST_MS 200
#define BACKOFF_MAX_MS   5000

void coord_ctldb_init(coord_ctldb *g, const char *rollout)
{
    memset(g, 0, sizeof(*g));
    g->rollout = rollout;
}

pgr_code coord_ctldb_session_setup(coord *c, pgr_error *err)
{
    c->event_stmt_pid = 0; /* a new session: nothing of ours is prepared in it */
    return pgr_pg_exec(c->db, "SET lock_timeout = 5000; SET client_min_messages = warning", NULL,
                       err);
}

/* pg_try_advisory_lock: true (held), false (another session holds it); *failed on an error. */
static bool try_rollout_lock(coord *c, const char *name, bool *failed)
{
    PGresult *r = NULL;
    bool got = false;
    *failed = pgr_pg_execp(c->db,
                           "SELECT pg_try_advisory_lock(hashtext('pgrollout-rollout'), "
                           "hashtext($1))",
                           1, (const char *[]){name}, &r, NULL) != PGR_OK;
    if (!*failed) {
        got = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        PQclear(r);
    }
    return got;
}

pgr_code coord_ctldb_lock_rollout(coord *c, const char *name, pgr_error *err)
{
    bool failed = false;
    if (try_rollout_lock(c, name, &failed))
        return PGR_OK;
    return pgr_error_set(err, PGR_ERR_LOCKED, "another coordinator is running rollout \"%s\"",
                         name);
}

int coord_ctldb_int(const PGresult *r, int row, int col)
{
    int64_t v = 0;
    return pgr_parse_int64(PQgetvalue(r, row, col), 0, INT32_MAX, &v, NULL) == PGR_OK ? (int)v : 0;
}

/* One reconnect attempt: new session, its settings, the rollout lock. */
static bool reconnect(coord *c, coord_ctldb *g)
{
    PQreset(c->db);
    if (PQstatus(c->db) != CONNECTION_OK || coord_ctldb_session_setup(c, NULL) != PGR_OK)
        return false;
    bool failed = false;
    if (g->rollout != NULL && !try_rollout_lock(c, g->rollout, &failed) && !failed) {
        g->lock_lost = true;
        fprintf(stderr,
                "pgrollout: control database reconnected, but another coordinator took rollout "
                "\"%s\" meanwhile: stopping\n",
                g->rollout);
    }
    return !failed && !g->lock_lost;
}

bool coord_ctldb_ready(coord *c, coord_ctldb *g)
{
    pgr_log_ctx ctx = {"coordinator", NULL, NULL};
    if (g->lock_lost)
        return false;
    if (!pgr_pg_conn_lost(c->db))
        return true;
    long long now = pgr_clock_mono_ms();
    if (g->backoff_ms == 0) {
        g->lost_at = now;
        g->backoff_ms = BACKOFF_FIRST_MS;
        pgr_log_warn(&ctx, "control database connection lost: reconnecting (Kafka offsets are "
                           "committed only for stored messages)");
    } else if (now < g->retry_at) {
        return false;
    }
    if (reconnect(c, g)) {
        pgr_log_warn(&ctx, "control database reconnected after %lld ms",
                     pgr_clock_mono_ms() - g->lost_at);
        g->backoff_ms = 0;
        g->reconnects++;
        return true;
    }
    g->retry_at = pgr_clock_mono_ms() + g->backoff_ms;
    g->backoff_ms = g->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : g->backoff_ms * 2;
    return false;
}

static void send_pending(coord_ctldb *g, int async)
{
    if (g->pending != NULL && g->pending->cnt > 0)
        rd_kafka_commit(g->pending_rk, g->pending, async);
    if (g->pending != NULL)
        rd_kafka_topic_partition_list_destroy(g->pending);
    g->pending = NULL;
    g->flushed_at = pgr_clock_mono_ms();
}

void coord_ctldb_offsets_note(rd_kafka_topic_partition_list_t *l, const rd_kafka_message_t *m)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    rd_kafka_topic_partition_t *p = rd_kafka_topic_partition_list_find(l, topic, m->partition);
    if (p == NULL)
        p = rd_kafka_topic_partition_list_add(l, topic, m->partition);
    if (p->offset < m->offset + 1)
        p->offset = m->offset + 1; /* the next message to read */
}

/* The next offset of m's partition joins the pending commit; sent when due. */
static void gather_commit(coord_ctldb *g, rd_kafka_t *rk, const rd_kafka_message_t *m)
{
    if (g->pending == NULL)
        g->pending = rd_kafka_topic_partition_list_new(4);
    g->pending_rk = rk;
    coord_ctldb_offsets_note(g->pending, m);
    if (pgr_clock_mono_ms() - g->flushed_at >= COORD_CTLDB_COMMIT_EVERY_MS)
        send_pending(g, 1);
}

void coord_ctldb_flush(coord_ctldb *g)
{
    send_pending(g, 0);
}

coord_ctldb_consumed coord_ctldb_consume(coord *c, coord_ctldb *g, rd_kafka_t *rk,
                                         rd_kafka_message_t **held, int timeout_ms, bool async,
                                         coord_ctldb_store_fn fn, void *user)
{
    if (g->pending != NULL && pgr_clock_mono_ms() - g->flushed_at >= COORD_CTLDB_COMMIT_EVERY_MS)
        send_pending(g, 1); /* what an idle loop still owes */
    if (*held == NULL) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, timeout_ms);
        if (m == NULL)
            return COORD_CTLDB_CONSUMED_NONE;
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_message_destroy(m);
            return COORD_CTLDB_CONSUMED_NONE;
        }
        *held = m;
    }
    if (!coord_ctldb_ready(c, g))
        return COORD_CTLDB_CONSUMED_HELD;
    fn(c, *held, user);
    /* connection lost: stored or not, it is stored again after the reconnect (idempotent) */
    if (pgr_pg_conn_lost(c->db))
        return COORD_CTLDB_CONSUMED_HELD;
    if (async)
        gather_commit(g, rk, *held);
    else
        rd_kafka_commit_message(rk, *held, 0);
    rd_kafka_message_destroy(*held);
    *held = NULL;
    return COORD_CTLDB_CONSUMED_STORED;
}
