/*
 * audit_read.c - the central audit record read back (audit_read.h).
 */
#include "audit_read.h"
#include "audit_ingest.h"

#include "pgr/envelope.h"
#include "pgr/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Re-verifies one stored row: envelope signature with the agent keyring (key trusted for the
 * tenant), the envelope's content equal to the stored columns, and the hash link. */
static const char *verify_row(coord *c, PGresult *r, int i, const char *expect_prev,
                              long long expect_seq)
{
    const char *tenant = PQgetvalue(r, i, 0), *env = PQgetvalue(r, i, 6);
    long long seq = strtoll(PQgetvalue(r, i, 1), NULL, 10);
    char *payload = NULL, kid[PGR_KID_LEN];
    size_t plen = 0;
    pgr_envelope_reject why;
    const pgr_keyring_entry *e = NULL;
    if (seq != expect_seq)
        return seq > expect_seq ? "gap: records are missing before this one"
                                : "records out of order";
    if (strcmp(PQgetvalue(r, i, 2), expect_prev) != 0)
        return "prev_hash differs from the previous record's hash";
    if (pgr_envelope_open(env, strlen(env), 1 << 20, PGR_DOMAIN_AUDIT, c->agents, &payload, &plen,
                          &e, kid, &why, NULL) != PGR_OK)
        return "signature does not verify with a trusted agent key";
    json_t *o = json_loads(payload, 0, NULL);
    free(payload);
    const char *rec = json_string_value(json_object_get(o, "record"));
    const char *hash = json_string_value(json_object_get(o, "hash"));
    bool same = rec != NULL && hash != NULL && strcmp(rec, PQgetvalue(r, i, 4)) == 0 &&
                strcmp(hash, PQgetvalue(r, i, 3)) == 0 &&
                json_integer_value(json_object_get(o, "seq")) == seq &&
                pgr_keyring_allows_tenant(e, tenant);
    json_decref(o);
    if (!same)
        return "stored record differs from what its agent signed";
    return coord_audit_ingest_check_link(tenant, seq, PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
                                         PQgetvalue(r, i, 4));
}

pgr_code coord_audit_read_chains(coord *c, const char *only_tenant, coord_audit_read_fn fn,
                                 void *user, coord_audit_read_counts *n, pgr_error *err)
{
    PGresult *r = NULL;
    const char *params[] = {only_tenant};
    memset(n, 0, sizeof(*n));
    if (pgr_pg_execp(c->db,
                     "SELECT tenant_id, seq, prev_hash, hash, record, kid, envelope FROM "
                     "pgrollout_control.audit_log WHERE $1::text IS NULL OR tenant_id = $1 "
                     "ORDER BY tenant_id, seq",
                     1, params, &r, err) != PGR_OK)
        return PGR_ERR_DB;
    int broken = 0, tenants = 0;
    char cur[129] = "", prev[65] = "";
    long long next = 1;
    bool tenant_broken = false;
    for (int i = 0; i < PQntuples(r); i++) {
        if (strcmp(cur, PQgetvalue(r, i, 0)) != 0) {
            snprintf(cur, sizeof(cur), "%s", PQgetvalue(r, i, 0));
            snprintf(prev, sizeof(prev), "%064d", 0);
            next = 1;
            tenant_broken = false;
            tenants++;
        }
        const char *bad = tenant_broken ? NULL : verify_row(c, r, i, prev, next);
        if (bad != NULL) {
            broken++;
            tenant_broken = true;
            fn(cur, PQgetvalue(r, i, 1), bad, user);
        }
        snprintf(prev, sizeof(prev), "%s", PQgetvalue(r, i, 3));
        next = strtoll(PQgetvalue(r, i, 1), NULL, 10) + 1;
    }
    n->records = PQntuples(r);
    n->tenants = tenants;
    n->broken = broken;
    PQclear(r);
    return PGR_OK;
}

/* The chain alerts the collector raised: a record that reached it but was not stored (a second
 * record claiming a stored seq: the tenant's chain head was moved back) or one that did not
 * link (a gap, a changed prev_hash) leaves nothing in audit_log that the walk above could find.
 * Each is reported like a broken record. */
pgr_code coord_audit_read_alerts(coord *c, const char *only_tenant, coord_audit_read_fn fn,
                                 void *user, int *count, pgr_error *err)
{
    PGresult *r = NULL;
    const char *params[] = {only_tenant};
    *count = 0;
    if (pgr_pg_execp(c->db,
                     "SELECT tenant_id, coalesce(seq, 0), kind, detail, to_char(at AT TIME ZONE "
                     "'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM pgrollout_control.audit_alerts "
                     "WHERE kind IN ('fork', 'gap', 'chain_break') AND ($1::text IS NULL OR "
                     "tenant_id = $1) ORDER BY tenant_id, seq, id",
                     1, params, &r, err) != PGR_OK)
        return PGR_ERR_DB;
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        char problem[512];
        snprintf(problem, sizeof(problem), "%s (collector alert of %s): %s", PQgetvalue(r, i, 2),
                 PQgetvalue(r, i, 4), PQgetvalue(r, i, 3));
        fn(PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), problem, user);
    }
    PQclear(r);
    *count = n;
    return PGR_OK;
}

pgr_code coord_audit_read_export(coord *c, const char *tenant, const char *since, const char *until,
                                 PGresult **out, pgr_error *err)
{
    const char *params[] = {tenant, since, until};
    return pgr_pg_execp(
        c->db,
        "SELECT record, kid, hash FROM pgrollout_control.audit_log WHERE tenant_id "
        "= $1 AND ($2::text IS NULL OR record::jsonb->>'at' >= $2) AND ($3::text IS "
        "NULL OR record::jsonb->>'at' < $3) ORDER BY seq",
        3, params, out, err);
}

pgr_code coord_audit_read_anchors(coord *c, PGresult **out, pgr_error *err)
{
    return pgr_pg_exec(c->db,
                       "SELECT DISTINCT ON (tenant_id) tenant_id, seq, hash FROM "
                       "pgrollout_control.audit_log ORDER BY tenant_id, seq DESC",
                       out, err);
}
