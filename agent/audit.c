/*
 * audit.c - the tenant's audit chain. Each record gets the next per-tenant seq and
 * prev_hash; hash = SHA-256(previous hash (32 bytes) || canonical record bytes), where the
 * canonical bytes are the record as compact JSON with sorted keys (docs/PROTOCOL.md). Records
 * are written to pgrollout.audit_outbox in the transaction of the change they describe.
 * They carry object names, counts, hashes, durations and operators: never row values (PHI).
 */
#include "audit.h"

#include "pgr/crypto.h"
#include "pgr/pg.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

json_t *agent_audit_new(agent_exec *x, const char *action)
{
    char at[40];
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(at + n, sizeof(at) - n, ".%03ldZ", ts.tv_nsec / 1000000L);
    json_t *rec = json_object();
    json_object_set_new(rec, "action", json_string(action));
    json_object_set_new(rec, "at", json_string(at));
    json_object_set_new(rec, "tenant_id", json_string(x->tenant));
    json_object_set_new(rec, "job_id", json_string(x->job_id));
    json_object_set_new(rec, "operator", json_string(x->operator_name));
    if (x->o->agent_id != NULL)
        json_object_set_new(rec, "agent_id", json_string(x->o->agent_id));
    /* who approved the change: every record of the job's acceptance and of each migration */
    bool change = strcmp(action, "job_accepted") == 0 || strncmp(action, "migration_", 10) == 0 ||
                  strncmp(action, "rollback_", 9) == 0;
    if (change && x->o->release_digests != NULL) {
        json_object_set_new(rec, "release_digests", json_string(x->o->release_digests));
        json_object_set_new(rec, "release_kids",
                            json_string(x->o->release_kids != NULL ? x->o->release_kids : ""));
    }
    return rec;
}

json_t *agent_audit_job_end(agent_exec *x, const char *type, pgr_code rc, long long duration_ms)
{
    json_t *rec = agent_audit_new(x, "job_end");
    json_object_set_new(rec, "type", json_string(type));
    json_object_set_new(rec, "outcome", json_string(rc == PGR_OK ? "succeeded" : "failed"));
    json_object_set_new(rec, "code", json_string(pgr_error_code_name(rc)));
    json_object_set_new(rec, "duration_ms", json_integer(duration_ms));
    return rec;
}

void agent_audit_step_fields(json_t *rec, const pgr_migration *m, const pgr_step *s)
{
    char obj[512], sha[PGR_SHA256_HEX_LEN];
    pgr_migration_step_describe(s, obj, sizeof(obj));
    json_object_set_new(rec, "version", json_string(m->version));
    json_object_set_new(rec, "migration", json_string(m->name));
    json_object_set_new(rec, "part", json_string(s->down ? "down" : "up"));
    json_object_set_new(rec, "step", json_integer(s->index + 1));
    json_object_set_new(rec, "kind", json_string(pgr_migration_step_kind_name(s->kind)));
    json_object_set_new(rec, "object", json_string(obj));
    json_object_set_new(rec, "phi", json_boolean(s->phi));
    /* The SQL itself is identified by its hash; for generated steps, the annotation's. */
    pgr_crypto_sha256_hex(s->sql, strlen(s->sql), sha);
    json_object_set_new(rec, "sql_sha256", json_string(sha));
}

/* The chain head, read and locked (FOR UPDATE) until the transaction ends. */
static pgr_code read_head(agent_exec *x, pgr_error *err)
{
    PGresult *r = NULL;
    if (pgr_pg_exec(x->conn, "SELECT seq, hash FROM pgrollout.audit_head WHERE id = 1 FOR UPDATE",
                    &r, err) != PGR_OK)
        return PGR_ERR_DB;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return pgr_error_set(err, PGR_ERR_INTERNAL,
                             "audit chain head pgrollout.audit_head is missing: refusing to "
                             "start a new chain");
    }
    x->head_seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    snprintf(x->head_hash, sizeof(x->head_hash), "%s", PQgetvalue(r, 0, 1));
    x->head_known = true;
    PQclear(r);
    return PGR_OK;
}

/* Links rec after the head x holds: sets its seq and prev_hash; *canon (malloc'd) receives its
 * canonical bytes, seqbuf and hash its seq and hash. */
static pgr_code audit_link(const agent_exec *x, json_t *rec, char **canon, char seqbuf[32],
                           char hash[PGR_SHA256_HEX_LEN], pgr_error *err)
{
    uint8_t prev[PGR_SHA256_LEN], d[PGR_SHA256_LEN];
    if (pgr_crypto_hex_decode(x->head_hash, prev, sizeof(prev)) != PGR_OK)
        return pgr_error_set(err, PGR_ERR_INTERNAL, "audit chain head is corrupt");
    long long seq = x->head_seq + 1;
    json_object_set_new(rec, "seq", json_integer(seq));
    json_object_set_new(rec, "prev_hash", json_string(x->head_hash));
    *canon = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    if (*canon == NULL)
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, prev, sizeof(prev));
    crypto_hash_sha256_update(&st, (const unsigned char *)*canon, strlen(*canon));
    crypto_hash_sha256_final(&st, d);
    pgr_crypto_hex_encode(d, sizeof(d), hash);
    snprintf(seqbuf, 32, "%lld", seq);
    return PGR_OK;
}

/* Both statements that append a record move the head and store the record the same way, with
 * $1 seq, $2 tenant, $3 prev_hash, $4 hash, $5 record: the head moves only from the expected
 * one (a concurrent writer waits for the row lock, then finds it moved), and the record is
 * stored only when the head moved. HEAD_MOVE is left open for a further condition. */
#define HEAD_MOVE                                                                                  \
    "h AS (UPDATE pgrollout.audit_head SET seq = $1::bigint, hash = $4::text WHERE id = 1 AND "    \
    "seq = $1::bigint - 1 AND hash = $3::text"
#define RECORD_INSERT                                                                              \
    "o AS (INSERT INTO pgrollout.audit_outbox (seq, tenant_id, prev_hash, hash, record) SELECT "   \
    "$1::bigint, $2::text, $3::text, $4::text, $5::text FROM h RETURNING 1)"

static void head_moved(agent_exec *x, const char *seqbuf, const char *hash)
{
    x->head_seq = strtoll(seqbuf, NULL, 10);
    snprintf(x->head_hash, sizeof(x->head_hash), "%s", hash);
}

/* Links rec after the head x holds and stores it with the new head, on the condition that the
 * head is still the one x holds (one round trip). *stale: it was not; nothing was written. */
static pgr_code link_and_store(agent_exec *x, json_t *rec, char **canonical_out, bool *stale,
                               pgr_error *err)
{
    char seqbuf[32], hash[PGR_SHA256_HEX_LEN], *canon = NULL;
    PGresult *r = NULL;
    *stale = false;
    pgr_code rc = audit_link(x, rec, &canon, seqbuf, hash, err);
    if (rc != PGR_OK)
        return rc;
    const char *params[] = {seqbuf, x->tenant, x->head_hash, hash, canon};
    rc = agent_session_stmt(x, AGENT_STMT_AUDIT_APPEND,
                            "WITH " HEAD_MOVE " RETURNING 1), " RECORD_INSERT
                            " SELECT count(*) FROM o",
                            5, params, &r, err);
    if (rc == PGR_OK) {
        *stale = strcmp(PQgetvalue(r, 0, 0), "1") != 0;
        PQclear(r);
    }
    if (rc != PGR_OK || *stale) {
        free(canon);
        return rc;
    }
    head_moved(x, seqbuf, hash);
    *canonical_out = canon;
    return PGR_OK;
}

/* One attempt of agent_audit_index_done with the head x holds. *valid: the index is valid;
 * *stored: the step and the record were stored (false with *valid: the head had moved). */
static pgr_code index_done_once(agent_exec *x, json_t *rec, const agent_step_row *row,
                                const char *name, const char *table, bool *valid, bool *stored,
                                pgr_error *err)
{
    char seqbuf[32], hash[PGR_SHA256_HEX_LEN], *canon = NULL;
    PGresult *r = NULL;
    pgr_code rc = audit_link(x, rec, &canon, seqbuf, hash, err);
    if (rc != PGR_OK)
        return rc;
    const char *params[] = {seqbuf,    x->tenant, x->head_hash, hash,      canon,
                            row->v[0], row->v[1], row->v[2],    row->v[3], row->v[4],
                            row->v[5], row->v[6], name,         table};
    /* the look-up is agent_index_lookup's (by name, in the schema of the step's table); the
     * step row, the chain head and the record are written together or not at all */
    rc = agent_session_stmt(
        x, AGENT_STMT_INDEX_DONE,
        "WITH v AS (SELECT 1 FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid WHERE "
        "c.relname = $13::text AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid "
        "= to_regclass($14::text)) AND i.indisvalid AND i.indisready), " HEAD_MOVE
        " AND EXISTS (SELECT 1 FROM v) RETURNING 1), s AS (INSERT INTO pgrollout.steps (version, "
        "part, step, kind, object, job_id, duration_ms, phase) SELECT $6::text, $7::text, "
        "$8::int, $9::text, $10::text, $11::text, $12::bigint, 'done' FROM h " AGENT_STEPS_UPSERT
        " RETURNING 1), " RECORD_INSERT " SELECT EXISTS (SELECT 1 FROM v), (SELECT count(*) FROM "
        "o) + (SELECT count(*) FROM s)",
        14, params, &r, err);
    if (rc == PGR_OK) {
        *valid = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        *stored = strcmp(PQgetvalue(r, 0, 1), "2") == 0;
        PQclear(r);
    }
    if (rc == PGR_OK && *stored) {
        head_moved(x, seqbuf, hash);
        agent_event ev = {.kind = AGENT_EV_AUDIT, .audit_json = canon};
        agent_session_emit(x, &ev);
    }
    free(canon);
    return rc;
}

pgr_code agent_audit_index_done(agent_exec *x, json_t *rec, const agent_step_row *row,
                                const char *name, const char *table, bool *recorded, pgr_error *err)
{
    bool valid = true, stored = false;
    pgr_code rc = PGR_OK;
    *recorded = false;
    /* a head moved by another session (the daemon's intake) is read again; twice is plenty */
    for (int attempt = 0; rc == PGR_OK && valid && !stored && attempt < 3; attempt++) {
        if (!x->head_known)
            rc = read_head(x, err);
        if (rc == PGR_OK)
            rc = index_done_once(x, rec, row, name, table, &valid, &stored, err);
        if (rc == PGR_OK && valid && !stored)
            x->head_known = false;
    }
    json_decref(rec);
    if (rc == PGR_OK && valid && !stored) {
        rc = pgr_error_set(err, PGR_ERR_DB, "the audit chain head kept moving");
        if (err != NULL)
            err->retriable = true; /* the retry adopts the built index (phase building) */
    }
    if (rc != PGR_OK)
        x->head_known = false;
    *recorded = rc == PGR_OK && stored;
    return rc;
}

static pgr_code audit_insert(agent_exec *x, json_t *rec, char **canonical_out, pgr_error *err)
{
    bool stale = true;
    pgr_code rc = PGR_OK;
    if (x->head_known)
        rc = link_and_store(x, rec, canonical_out, &stale, err);
    if (rc == PGR_OK && stale)
        rc = read_head(x, err);
    if (rc == PGR_OK && stale)
        rc = link_and_store(x, rec, canonical_out, &stale, err);
    if (rc == PGR_OK && stale) /* cannot be: the head is locked since read_head */
        rc = pgr_error_set(err, PGR_ERR_INTERNAL, "audit chain head moved while locked");
    if (rc != PGR_OK)
        x->head_known = false;
    return rc;
}

pgr_code agent_audit_append(agent_exec *x, json_t *rec, pgr_error *err)
{
    bool own = PQtransactionStatus(x->conn) == PQTRANS_IDLE;
    char *canon = NULL;
    pgr_code rc = PGR_OK;

    if (own)
        rc = agent_session_begin(x, err);
    if (rc == PGR_OK)
        rc = audit_insert(x, rec, &canon, err);
    json_decref(rec);
    if (rc == PGR_OK) {
        char **n = realloc(x->pending_audit, (x->pending_count + 1) * sizeof(*n));
        if (n == NULL) {
            free(canon);
            rc = pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
        } else {
            x->pending_audit = n;
            n[x->pending_count++] = canon;
        }
    }
    if (own && rc == PGR_OK)
        return agent_session_commit(x, err);
    if (own)
        agent_session_rollback(x);
    return rc;
}
