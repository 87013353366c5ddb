/*
 * audit.c - the tenant's audit chain. Each record gets the next per-tenant seq and
 * prev_hash; hash = SHA-256(previous hash (32 bytes) || canonical record bytes), where the
 * canonical bytes are the record as compact JSON with sorted keys (docs/PROTOCOL.md). Records
 * are written to pgrollout.audit_outbox in the transaction of the change they describe.
 * They carry object names, counts, hashes, durations and operators: never row values (PHI).
 */
#include "executor_int.h"

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
    return rec;
}

void agent_audit_step_fields(json_t *rec, const pgr_migration *m, const pgr_step *s)
{
    char obj[512], sha[PGR_SHA256_HEX_LEN];
    pgr_step_describe(s, obj, sizeof(obj));
    json_object_set_new(rec, "version", json_string(m->version));
    json_object_set_new(rec, "migration", json_string(m->name));
    json_object_set_new(rec, "part", json_string(s->down ? "down" : "up"));
    json_object_set_new(rec, "step", json_integer(s->index + 1));
    json_object_set_new(rec, "kind", json_string(pgr_step_kind_name(s->kind)));
    json_object_set_new(rec, "object", json_string(obj));
    json_object_set_new(rec, "phi", json_boolean(s->phi));
    /* The SQL itself is identified by its hash; for generated steps, the annotation's. */
    pgr_sha256_hex(s->sql, strlen(s->sql), sha);
    json_object_set_new(rec, "sql_sha256", json_string(sha));
}

static pgr_code audit_insert(agent_exec *x, json_t *rec, char **canonical_out, pgr_error *err)
{
    PGresult *r = NULL;
    uint8_t prev[PGR_SHA256_LEN];
    char seqbuf[32], hash[PGR_SHA256_HEX_LEN];

    if (pgr_pg_exec(x->conn, "SELECT seq, hash FROM pgrollout.audit_head WHERE id = 1 FOR UPDATE",
                    &r, err) != PGR_OK)
        return PGR_ERR_DB;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return pgr_error_set(err, PGR_ERR_INTERNAL,
                             "audit chain head pgrollout.audit_head is missing: refusing to "
                             "start a new chain");
    }
    long long seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10) + 1;
    char prev_hex[PGR_SHA256_HEX_LEN];
    snprintf(prev_hex, sizeof(prev_hex), "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    if (pgr_hex_decode(prev_hex, prev, sizeof(prev)) != PGR_OK)
        return pgr_error_set(err, PGR_ERR_INTERNAL, "audit chain head is corrupt");
    json_object_set_new(rec, "seq", json_integer(seq));
    json_object_set_new(rec, "prev_hash", json_string(prev_hex));
    char *canon = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    if (canon == NULL)
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    crypto_hash_sha256_state st;
    uint8_t d[PGR_SHA256_LEN];
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, prev, sizeof(prev));
    crypto_hash_sha256_update(&st, (const unsigned char *)canon, strlen(canon));
    crypto_hash_sha256_final(&st, d);
    pgr_hex_encode(d, sizeof(d), hash);
    snprintf(seqbuf, sizeof(seqbuf), "%lld", seq);
    const char *params[] = {seqbuf, x->tenant, prev_hex, hash, canon};
    /* the record and the new chain head in one statement (one round trip per record) */
    pgr_code rc = pgr_pg_execp(x->conn,
                               "WITH o AS (INSERT INTO pgrollout.audit_outbox (seq, tenant_id, "
                               "prev_hash, hash, record) VALUES ($1, $2, $3, $4, $5)) UPDATE "
                               "pgrollout.audit_head SET seq = $1, hash = $4 WHERE id = 1",
                               5, params, NULL, err);
    if (rc != PGR_OK) {
        free(canon);
        return rc;
    }
    *canonical_out = canon;
    return PGR_OK;
}

pgr_code agent_audit_append(agent_exec *x, json_t *rec, pgr_error *err)
{
    bool own = PQtransactionStatus(x->conn) == PQTRANS_IDLE;
    char *canon = NULL;
    pgr_code rc = PGR_OK;

    if (own)
        rc = agent_exec_begin(x, err);
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
        return agent_exec_commit(x, err);
    if (own)
        agent_exec_rollback_txn(x);
    return rc;
}
