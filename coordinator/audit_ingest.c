/*
 * audit_ingest.c - verifies and stores the agents' audit records in the control database. One
 * message at a time for `pgrollout run` (interleaved with its events), and in batches for
 * `pgrollout audit collect`: signatures checked on every core, the records of a batch stored in
 * one transaction through a libpq pipeline (one round trip per chunk instead of per record),
 * Kafka offsets committed once per batch after that transaction. Each (tenant, seq) is stored
 * once whichever way it arrives, so a batch read again after a crash stores nothing twice.
 */
#include "audit_ingest.h"
#include "ctldb.h"

#include "pgr/clock.h"
#include "pgr/crypto.h"
#include "pgr/pg.h"
#include "pgr/term.h"

#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Inserts a record unless its (tenant, seq) is stored, and returns in the same round trip
 * whether it inserted, the hash stored at this seq (another record's, when the insert found
 * one: the statement does not see its own row) and the hash at seq - 1. $8 is seq - 1. */
static const char STORE_SQL[] =
    "WITH ins AS (INSERT INTO pgrollout_control.audit_log (tenant_id, seq, prev_hash, hash, "
    "record, kid, envelope) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, seq) DO "
    "NOTHING RETURNING 1) SELECT (SELECT count(*) FROM ins), (SELECT hash FROM "
    "pgrollout_control.audit_log WHERE tenant_id = $1 AND seq = $2::bigint), (SELECT hash FROM "
    "pgrollout_control.audit_log WHERE tenant_id = $1 AND seq = $8::bigint)";

static const char ALERT_SQL[] = "INSERT INTO pgrollout_control.audit_alerts (tenant_id, seq, kind, "
                                "detail) VALUES ($1, $2, $3, $4)";

/* One AUDIT ALERT line on stderr, escaped for the terminal: the tenant id and the detail come
 * from a Kafka message (its key or its payload), which may hold escape sequences. */
static void print_alert(const char *kind, const char *tenant, long long seq, const char *detail)
{
    pgr_term_printf(stderr, "AUDIT ALERT %s: tenant %s seq %lld: %s", kind, tenant, seq, detail);
}

static void alert(coord *c, const char *tenant, long long seq, const char *kind, const char *detail)
{
    char seqbuf[32];
    snprintf(seqbuf, sizeof(seqbuf), "%lld", seq);
    const char *params[] = {tenant, seq > 0 ? seqbuf : NULL, kind, detail};
    PGR_IGNORE(pgr_pg_execp(c->db, ALERT_SQL, 4, params, NULL, NULL));
    print_alert(kind, tenant != NULL ? tenant : "?", seq, detail);
}

/* hash == SHA-256(prev_hash bytes || record bytes), and the record names the same chain
 * position. Returns NULL when consistent, else what is wrong. */
const char *coord_audit_ingest_check_link(const char *tenant, long long seq, const char *prev,
                                          const char *hash, const char *record)
{
    uint8_t p[32], d[32];
    char hex[65];
    if (pgr_crypto_hex_decode(prev, p, 32) != PGR_OK)
        return "prev_hash is not 64 hex digits";
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, p, 32);
    crypto_hash_sha256_update(&st, (const unsigned char *)record, strlen(record));
    crypto_hash_sha256_final(&st, d);
    pgr_crypto_hex_encode(d, 32, hex);
    if (strcmp(hex, hash) != 0)
        return "hash does not match SHA-256(prev_hash || record)";
    json_t *r = json_loads(record, 0, NULL);
    const char *rt = json_string_value(json_object_get(r, "tenant_id"));
    const char *rp = json_string_value(json_object_get(r, "prev_hash"));
    bool ok = r != NULL && json_integer_value(json_object_get(r, "seq")) == seq && rt != NULL &&
              strcmp(rt, tenant) == 0 && rp != NULL && strcmp(rp, prev) == 0;
    json_decref(r);
    return ok ? NULL : "record's tenant_id/seq/prev_hash differ from its chain position";
}

/* The chain problem a STORE_SQL result shows, or NULL: kind in *kind, what in the return. */
static const char *store_outcome(const PGresult *r, long long seq, const char *prev,
                                 const char *hash, const char **kind)
{
    bool inserted = strcmp(PQgetvalue(r, 0, 0), "1") == 0;
    bool prev_found = !PQgetisnull(r, 0, 2);
    *kind = NULL;
    if (!inserted && !PQgetisnull(r, 0, 1) && strcmp(PQgetvalue(r, 0, 1), hash) != 0)
        *kind = "fork";
    else if (inserted && !prev_found && seq > 1)
        *kind = "gap";
    else if (inserted && prev_found && strcmp(PQgetvalue(r, 0, 2), prev) != 0)
        *kind = "chain_break";
    if (*kind == NULL)
        return NULL;
    if (strcmp(*kind, "fork") == 0)
        return "two different records claim this seq";
    return strcmp(*kind, "gap") == 0 ? "the previous record has not been received"
                                     : "prev_hash differs from the previous record's hash";
}

static void store(coord *c, const char *tenant, long long seq, const char *prev, const char *hash,
                  const char *record, const char *kid, const char *envelope)
{
    char seqbuf[32], prevseq[32];
    PGresult *r = NULL;
    snprintf(seqbuf, sizeof(seqbuf), "%lld", seq);
    snprintf(prevseq, sizeof(prevseq), "%lld", seq - 1);
    const char *params[] = {tenant, seqbuf, prev, hash, record, kid, envelope, prevseq};
    if (pgr_pg_execp(c->db, STORE_SQL, 8, params, &r, NULL) != PGR_OK) {
        if (pgr_pg_conn_lost(c->db))
            return; /* stored again once the connection is back (ctldb.c) */
        alert(c, tenant, seq, "store_failed", "the record could not be stored");
        return;
    }
    const char *kind = NULL, *detail = store_outcome(r, seq, prev, hash, &kind);
    if (detail != NULL)
        alert(c, tenant, seq, kind, detail);
    PQclear(r);
}

const char *coord_audit_ingest_check(const char *payload, size_t len, const char *tenant,
                                     const pgr_keyring_entry *e, coord_audit_ingest_msg *msg,
                                     const char **detail)
{
    memset(msg, 0, sizeof(*msg));
    json_t *o = json_loadb(payload, len, 0, NULL);
    msg->doc = o;
    msg->tenant_id = json_string_value(json_object_get(o, "tenant_id"));
    msg->prev_hash = json_string_value(json_object_get(o, "prev_hash"));
    msg->hash = json_string_value(json_object_get(o, "hash"));
    msg->record = json_string_value(json_object_get(o, "record"));
    msg->seq = json_integer_value(json_object_get(o, "seq"));
    const char *t = msg->tenant_id;
    if (t == NULL || msg->prev_hash == NULL || msg->hash == NULL || msg->record == NULL ||
        msg->seq < 1 || strcmp(t, tenant) != 0) {
        *detail = "not an audit record of this tenant";
        return "malformed";
    }
    if (!pgr_keyring_allows_tenant(e, t)) {
        *detail = "the signing agent key is not trusted for this tenant";
        return "untrusted_key";
    }
    *detail = coord_audit_ingest_check_link(t, msg->seq, msg->prev_hash, msg->hash, msg->record);
    return *detail != NULL ? "broken_hash" : NULL;
}

/* One audit message: verified (verify_item), then stored or refused. */
typedef struct audit_item {
    rd_kafka_message_t *m; /* owned by the batch; NULL on the single path */
    char tenant[129];
    char kid[PGR_KID_LEN];
    char *payload;  /* the verified payload; a.* point into a.doc */
    char *envelope; /* NUL-terminated copy of the message, stored with the record */
    coord_audit_ingest_msg a;
    const char *kind, *detail;           /* refused (an alert) when kind != NULL */
    const char *link_kind, *link_detail; /* chain problem the store found */
    char seq[24], prevseq[24];
    bool verified;
    pgr_error err; /* the envelope's refusal, which detail points into */
} audit_item;

/* Everything checked before a record is stored, without touching the database (runs on any
 * thread): the envelope, the key's right to the tenant, the hash link. */
static void verify_item(const pgr_keyring *kr, const rd_kafka_message_t *m, audit_item *it)
{
    pgr_envelope_reject why;
    const pgr_keyring_entry *e = NULL;
    size_t plen = 0;
    it->verified = true;
    pgr_kafka_message_key(m, it->tenant, sizeof(it->tenant));
    if (pgr_envelope_open(m->payload, m->len, 1 << 20, PGR_DOMAIN_AUDIT, kr, &it->payload, &plen,
                          &e, it->kid, &why, &it->err) != PGR_OK) {
        it->kind = pgr_envelope_reject_name(why);
        it->detail = it->err.msg;
        return;
    }
    it->kind = coord_audit_ingest_check(it->payload, plen, it->tenant, e, &it->a, &it->detail);
    if (it->kind != NULL)
        return;
    it->envelope = strndup(m->payload, m->len);
    snprintf(it->seq, sizeof(it->seq), "%lld", it->a.seq);
    snprintf(it->prevseq, sizeof(it->prevseq), "%lld", it->a.seq - 1);
}

static void item_release(audit_item *it)
{
    json_decref(it->a.doc);
    free(it->payload);
    free(it->envelope);
    memset(it, 0, sizeof(*it));
}

/* Stores a verified item on its own (its own statement), or records why it was refused. */
static void store_item(coord *c, const audit_item *it)
{
    if (it->kind != NULL)
        alert(c, it->tenant, it->a.seq, it->kind, it->detail);
    else
        store(c, it->a.tenant_id, it->a.seq, it->a.prev_hash, it->a.hash, it->a.record, it->kid,
              it->envelope);
}

/* One message of the audit topic. */
void coord_audit_ingest(coord *c, const rd_kafka_message_t *m)
{
    audit_item it;
    memset(&it, 0, sizeof(it));
    verify_item(c->agents, m, &it);
    store_item(c, &it);
    item_release(&it);
}

/* ---- batches (the collector) ---------------------------------------------------------- */

#define STORE_STMT         "pgr_audit_store"
#define PIPELINE_CHUNK     250 /* statements per sync: its results fit the socket buffers */
#define VERIFY_THREADS_MAX 8
#define VERIFY_MIN_SPLIT   64 /* fewer messages are verified on the calling thread */
#define VERIFY_GRAIN       8  /* messages a thread takes at a time */

struct coord_audit_ingest_batch {
    audit_item *items;
    int n, cap;
    int prepared_pid; /* the backend whose session has STORE_STMT prepared */
};

coord_audit_ingest_batch *coord_audit_ingest_batch_new(int capacity)
{
    coord_audit_ingest_batch *b = calloc(1, sizeof(*b));
    if (b != NULL)
        b->items = calloc((size_t)capacity, sizeof(audit_item));
    if (b == NULL || b->items == NULL) {
        free(b);
        return NULL;
    }
    b->cap = capacity;
    return b;
}

static void batch_clear(coord_audit_ingest_batch *b)
{
    for (int i = 0; i < b->n; i++) {
        rd_kafka_message_destroy(b->items[i].m);
        item_release(&b->items[i]);
    }
    b->n = 0;
}

void coord_audit_ingest_batch_free(coord_audit_ingest_batch *b)
{
    if (b == NULL)
        return;
    batch_clear(b);
    free(b->items);
    free(b);
}

int coord_audit_ingest_batch_count(const coord_audit_ingest_batch *b)
{
    return b->n;
}

int coord_audit_ingest_batch_fill(coord_audit_ingest_batch *b, rd_kafka_t *rk, int timeout_ms)
{
    if (b->n > 0)
        return b->n;
    while (b->n < b->cap) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, b->n == 0 ? timeout_ms : 0);
        if (m == NULL)
            break;
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_message_destroy(m);
            if (b->n == 0)
                break;
            continue;
        }
        b->items[b->n++].m = m;
    }
    return b->n;
}

typedef struct verify_work {
    const pgr_keyring *kr;
    audit_item *items;
    atomic_int next; /* the first message no thread has taken */
    int to;
} verify_work;

/* Takes VERIFY_GRAIN messages at a time until none is left: the threads end together even when
 * the server storing the previous chunk takes a core from one of them (fixed halves left a
 * core idle while the other half finished). */
static void *verify_work_run(void *arg)
{
    verify_work *w = arg;
    for (;;) {
        int lo = atomic_fetch_add(&w->next, VERIFY_GRAIN);
        if (lo >= w->to)
            return NULL;
        int hi = lo + VERIFY_GRAIN > w->to ? w->to : lo + VERIFY_GRAIN;
        for (int i = lo; i < hi; i++)
            if (!w->items[i].verified)
                verify_item(w->kr, w->items[i].m, &w->items[i]);
    }
}

/* Ed25519 verification is most of a record's cost (about 50 us): spread items [from, to) over
 * the cores. */
static void verify_items(coord *c, coord_audit_ingest_batch *b, int from, int to)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int n = to - from, nt = n < VERIFY_MIN_SPLIT ? 1 : (int)(cores < 1 ? 1 : cores);
    nt = nt > VERIFY_THREADS_MAX ? VERIFY_THREADS_MAX : nt;
    verify_work w = {.kr = c->agents, .items = b->items, .to = to};
    atomic_init(&w.next, from);
    pthread_t th[VERIFY_THREADS_MAX];
    bool started[VERIFY_THREADS_MAX] = {false};
    json_object_seed(0); /* seeded before any thread makes objects (no-op once seeded) */
    for (int t = 1; t < nt; t++)
        started[t] = pthread_create(&th[t], NULL, verify_work_run, &w) == 0;
    verify_work_run(&w); /* this thread takes its share too, all if no thread started */
    for (int t = 1; t < nt; t++)
        if (started[t])
            pthread_join(th[t], NULL);
}

static bool send_item(PGconn *db, const audit_item *it)
{
    if (it->kind != NULL) {
        char seq[24];
        snprintf(seq, sizeof(seq), "%lld", it->a.seq);
        const char *p[] = {it->tenant, it->a.seq > 0 ? seq : NULL, it->kind, it->detail};
        return PQsendQueryParams(db, ALERT_SQL, 4, NULL, p, NULL, NULL, 0) == 1;
    }
    const coord_audit_ingest_msg *a = &it->a;
    const char *p[] = {a->tenant_id, it->seq, a->prev_hash, a->hash,
                       a->record,    it->kid, it->envelope, it->prevseq};
    return PQsendQueryPrepared(db, STORE_STMT, 8, p, NULL, NULL, 0) == 1;
}

/* Reads one statement's result (and the NULL that ends it); false unless it succeeded. */
static bool read_item(PGconn *db, audit_item *it)
{
    PGresult *r = PQgetResult(db);
    if (r == NULL)
        return false;
    ExecStatusType st = PQresultStatus(r);
    bool ok = it->kind != NULL ? st == PGRES_COMMAND_OK : st == PGRES_TUPLES_OK;
    if (ok && it->kind == NULL)
        it->link_detail = store_outcome(r, it->a.seq, it->a.prev_hash, it->a.hash, &it->link_kind);
    PQclear(r);
    while ((r = PQgetResult(db)) != NULL)
        PQclear(r);
    return ok;
}

/* Sends items [from, to) and a sync. The sync goes out even after a failed send, so that the
 * server answers what was sent and pipeline_leave can read it. */
static bool send_chunk(PGconn *db, const coord_audit_ingest_batch *b, int from, int to)
{
    bool sent = true;
    for (int i = from; i < to && sent; i++)
        sent = send_item(db, &b->items[i]);
    return PQpipelineSync(db) == 1 && sent;
}

/* Reads the results of items [from, to) and of the sync after them. */
static bool read_chunk(PGconn *db, coord_audit_ingest_batch *b, int from, int to)
{
    bool ok = true;
    for (int i = from; i < to; i++)
        ok = read_item(db, &b->items[i]) && ok;
    PGresult *r = PQgetResult(db);
    ok = ok && r != NULL && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
    PQclear(r);
    return ok;
}

/* Leaves pipeline mode even with results unread (a chunk given up half-way). */
static bool pipeline_leave(PGconn *db)
{
    for (int guard = 0; guard < 4 * PIPELINE_CHUNK && PQpipelineStatus(db) != PQ_PIPELINE_OFF;
         guard++) {
        if (PQexitPipelineMode(db) == 1)
            return true;
        PGresult *r = PQgetResult(db);
        if (r == NULL && PQstatus(db) == CONNECTION_BAD)
            return false;
        PQclear(r);
    }
    return PQpipelineStatus(db) == PQ_PIPELINE_OFF;
}

static int chunk_end(const coord_audit_ingest_batch *b, int from)
{
    return from + PIPELINE_CHUNK > b->n ? b->n : from + PIPELINE_CHUNK;
}

/* BEGIN, then every item through the pipeline, chunk by chunk: while the server stores one
 * chunk, this process verifies the next. The transaction is left open (or failed). */
static bool pipeline_batch(coord *c, coord_audit_ingest_batch *b)
{
    PGconn *db = c->db;
    verify_items(c, b, 0, chunk_end(b, 0));
    if (pgr_pg_exec(db, "BEGIN", NULL, NULL) != PGR_OK || PQenterPipelineMode(db) != 1)
        return false;
    bool ok = true;
    for (int from = 0; ok && from < b->n; from = chunk_end(b, from)) {
        int to = chunk_end(b, from);
        ok = send_chunk(db, b, from, to);
        verify_items(c, b, to, chunk_end(b, to));
        ok = ok && read_chunk(db, b, from, to);
    }
    return pipeline_leave(db) && ok;
}

static bool prepare(PGconn *db, coord_audit_ingest_batch *b)
{
    if (PQbackendPID(db) == b->prepared_pid)
        return true;
    PGresult *r = PQprepare(db, STORE_STMT, STORE_SQL, 8, NULL);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (ok)
        b->prepared_pid = PQbackendPID(db);
    return ok;
}

/* Chain alerts (found by the stores) in the batch's transaction, then COMMIT. */
static bool finish_batch(coord *c, coord_audit_ingest_batch *b)
{
    bool ok = true;
    for (int i = 0; i < b->n && ok; i++) {
        audit_item *it = &b->items[i];
        if (it->link_kind != NULL) {
            const char *p[] = {it->tenant, it->seq, it->link_kind, it->link_detail};
            ok = pgr_pg_execp(c->db, ALERT_SQL, 4, p, NULL, NULL) == PGR_OK;
        }
    }
    return ok && pgr_pg_exec(c->db, "COMMIT", NULL, NULL) == PGR_OK;
}

static void print_alerts(const coord_audit_ingest_batch *b)
{
    for (int i = 0; i < b->n; i++) {
        const audit_item *it = &b->items[i];
        const char *kind = it->kind != NULL ? it->kind : it->link_kind;
        if (kind != NULL)
            print_alert(kind, it->tenant, it->a.seq,
                        it->kind != NULL ? it->detail : it->link_detail);
    }
}

/* The batch transaction failed for another reason than the connection (a deadlock with another
 * collector, a constraint): each record is stored on its own, as coord_audit_ingest does. */
static void store_one_by_one(coord *c, coord_audit_ingest_batch *b)
{
    for (int i = 0; i < b->n && !pgr_pg_conn_lost(c->db); i++)
        store_item(c, &b->items[i]);
}

bool coord_audit_ingest_batch_store(coord *c, coord_audit_ingest_batch *b)
{
    for (int i = 0; i < b->n; i++)
        b->items[i].link_kind = b->items[i].link_detail = NULL;
    if (prepare(c->db, b) && pipeline_batch(c, b) && finish_batch(c, b)) {
        print_alerts(b);
        pgr_metrics_add(c->metrics, "pgrollout_coordinator_audit_records_total",
                        "audit records the collector checked and stored (or alerted on)", NULL,
                        b->n);
        for (int i = 0; i < b->n; i++) {
            const char *kind = b->items[i].kind != NULL ? b->items[i].kind : b->items[i].link_kind;
            char labels[64];
            snprintf(labels, sizeof(labels), "kind=\"%s\"", kind != NULL ? kind : "");
            if (kind != NULL)
                pgr_metrics_add(c->metrics, "pgrollout_coordinator_audit_chain_alerts_total",
                                "chain alerts of the audit collector, by kind", labels, 1);
        }
        return true;
    }
    b->prepared_pid = 0; /* prepared again: a new session may have reused the old pid */
    if (pgr_pg_conn_lost(c->db))
        return false; /* rolled back with the session: the batch is stored after the reconnect */
    if (PQpipelineStatus(c->db) != PQ_PIPELINE_OFF) {
        /* results that never came: a new session, and the batch tried again */
        PQreset(c->db);
        PGR_IGNORE(coord_ctldb_session_setup(c, NULL));
        return false;
    }
    PGR_IGNORE(pgr_pg_exec(c->db, "ROLLBACK", NULL, NULL));
    verify_items(c, b, 0, b->n);
    store_one_by_one(c, b);
    return !pgr_pg_conn_lost(c->db);
}

void coord_audit_ingest_batch_commit(coord_audit_ingest_batch *b, rd_kafka_t *rk)
{
    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(4);
    for (int i = 0; i < b->n; i++)
        coord_ctldb_offsets_note(offs, b->items[i].m);
    if (offs->cnt > 0)
        rd_kafka_commit(rk, offs, 1);
    rd_kafka_topic_partition_list_destroy(offs);
    batch_clear(b);
}

/* ---- the collector ---------------------------------------------------------------- */

#define COLLECT_BATCH 1000

/* Reads a batch, verifies and stores it in one transaction, then commits its offsets: a crash
 * re-reads, never skips (each (tenant, seq) is stored once); a lost control database holds the
 * batch until it is back. Offsets are committed asynchronously (a broker round trip per record
 * capped ingest at about 2,000 a second). */
pgr_code coord_audit_ingest_collect(coord *c, int idle_exit_s, const volatile sig_atomic_t *stop,
                                    long *stored, pgr_error *err)
{
    const char *fp = getenv("PGR_FAILPOINT");
    bool failpoint = fp != NULL && strcmp(fp, "collector_after_store") == 0;
    coord_ctldb g;
    time_t last = time(NULL);
    coord_audit_ingest_batch *b = coord_audit_ingest_batch_new(COLLECT_BATCH);
    *stored = 0;
    if (b == NULL)
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    coord_ctldb_init(&g, NULL);
    while (!*stop && (idle_exit_s <= 0 || time(NULL) - last < idle_exit_s)) {
        if (coord_audit_ingest_batch_count(b) == 0) /* SIGHUP: no message held */
            PGR_IGNORE(coord_reload_keyring(c));
        if (coord_audit_ingest_batch_count(b) == 0 &&
            coord_audit_ingest_batch_fill(b, c->consumer, 200) == 0)
            continue;
        last = time(NULL);
        if (!coord_ctldb_ready(c, &g) || !coord_audit_ingest_batch_store(c, b)) {
            pgr_clock_sleep_ms(100);
            continue;
        }
        *stored += coord_audit_ingest_batch_count(b);
        /* crash test: past the 20th message, stored but its offset not committed (a restart
         * must absorb the replay) */
        if (failpoint && *stored > 20)
            raise(SIGKILL);
        coord_audit_ingest_batch_commit(b, c->consumer);
    }
    coord_audit_ingest_batch_free(b); /* what is still held is not committed: read again later */
    return PGR_OK;
}
