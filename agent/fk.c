/*
 * fk.c - foreign keys with orphan checks. Phase 1, one transaction: lock child and parent
 * (SHARE ROW EXCLUSIVE, so no orphan can be written meanwhile), then the clean case in one scan
 * of the child: ADD CONSTRAINT without NOT VALID under a savepoint, which is PostgreSQL's own
 * orphan query and validates as it adds; done (audit fk_added, 0 orphans). Only when that finds
 * an orphan (foreign_key_violation): back to the savepoint, count orphans, then stop (abort:
 * nothing changed; the error gives the count and the first few child primary keys, ids only) or
 * move them (quarantine: copied to pgrollout_quarantine.<table> with job id and time, then
 * deleted), then ADD CONSTRAINT ... NOT VALID and record phase "not_valid". Phase 2, its own
 * transaction: VALIDATE CONSTRAINT (SHARE UPDATE EXCLUSIVE: writes go on).
 *
 * Why the clean case does not use NOT VALID + VALIDATE: the orphan count already scans the child
 * while writes are blocked, so a validating ADD blocks them no longer, and a second full scan
 * (VALIDATE) is saved: 64 ms of 1.2 s at benchmark scale 50 (docs/BENCHMARKS.md).
 */
#include "failpoint.h"
#include "fk.h"
#include "step.h"

#include "pgr/indexdef.h"
#include "pgr/pg.h"
#include "pgr/sqlgen.h"
#include "pgr/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ORPHAN_IDS_SHOWN 3

static const char *policy(const agent_exec *x, const pgr_step *s)
{
    if (x->o->orphans == AGENT_ORPHANS_QUARANTINE)
        return "quarantine";
    if (x->o->orphans == AGENT_ORPHANS_ABORT)
        return "abort";
    return s->orphans != NULL ? s->orphans : "abort";
}

/* Constraint state: 0 absent, 1 present NOT VALID, 2 validated. */
pgr_code agent_fk_state(agent_exec *x, const pgr_step *s, int *state, pgr_error *err)
{
    pgr_buf t;
    PGresult *r = NULL;
    pgr_buf_init(&t);
    pgr_code rc = pgr_sqlgen_qualified(x->conn, &t, s->table, err);
    const char *params[] = {s->name, t.data};
    if (rc == PGR_OK)
        rc = pgr_pg_execp(x->conn,
                          "SELECT convalidated FROM pg_constraint WHERE conname = $1 AND "
                          "conrelid = to_regclass($2) AND contype = 'f'",
                          2, params, &r, err);
    if (rc == PGR_OK) {
        *state = PQntuples(r) == 0 ? 0 : strcmp(PQgetvalue(r, 0, 0), "t") == 0 ? 2 : 1;
        PQclear(r);
    }
    pgr_buf_free(&t);
    return rc;
}

static pgr_code lock_tables(agent_exec *x, const pgr_step *s, pgr_error *err)
{
    pgr_buf sql;
    pgr_buf_init(&sql);
    pgr_code rc = pgr_buf_appendf(&sql, "LOCK TABLE ");
    if (rc == PGR_OK)
        rc = pgr_sqlgen_qualified(x->conn, &sql, s->table, err);
    if (rc == PGR_OK)
        rc = pgr_buf_appendf(&sql, ", ");
    if (rc == PGR_OK)
        rc = pgr_sqlgen_qualified(x->conn, &sql, s->ref_table, err);
    if (rc == PGR_OK)
        rc = pgr_buf_appendf(&sql, " IN SHARE ROW EXCLUSIVE MODE");
    if (rc == PGR_OK)
        rc = pgr_pg_exec(x->conn, sql.data, NULL, err);
    pgr_buf_free(&sql);
    return rc;
}

static pgr_code scalar_ll(agent_exec *x, const char *sql, long long *out, pgr_error *err)
{
    PGresult *r = NULL;
    pgr_code rc = pgr_pg_exec(x->conn, sql, &r, err);
    if (rc == PGR_OK) {
        *out = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
    return rc;
}

static pgr_code count_orphans(agent_exec *x, const pgr_step *s, long long *n, pgr_error *err)
{
    pgr_buf sql;
    pgr_buf_init(&sql);
    pgr_code rc = pgr_buf_appendf(&sql, "SELECT count(*) ");
    if (rc == PGR_OK)
        rc = pgr_sqlgen_orphan_from(x->conn, s, &sql, err);
    if (rc == PGR_OK)
        rc = scalar_ll(x, sql.data, n, err);
    pgr_buf_free(&sql);
    return rc;
}

/* "id1, id2, ..." of the first orphans by the child's single-column primary key; "" when the
 * key is not a single column. Primary keys are record identifiers, not PHI values. */
static void orphan_ids(agent_exec *x, const pgr_step *s, char *out, size_t outlen)
{
    pgr_buf t, sql;
    PGresult *r = NULL;
    out[0] = '\0';
    pgr_buf_init(&t);
    pgr_buf_init(&sql);
    if (pgr_sqlgen_qualified(x->conn, &t, s->table, NULL) != PGR_OK)
        goto out;
    const char *params[] = {t.data};
    if (pgr_pg_execp(x->conn,
                     "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = "
                     "i.indrelid AND a.attnum = i.indkey[0] WHERE i.indrelid = to_regclass($1) "
                     "AND i.indisprimary AND i.indnatts = 1",
                     1, params, &r, NULL) != PGR_OK ||
        PQntuples(r) != 1)
        goto out;
    if (pgr_buf_appendf(&sql, "SELECT string_agg(k, ', ') FROM (SELECT c.") != PGR_OK ||
        pgr_sqlgen_ident(x->conn, &sql, PQgetvalue(r, 0, 0), NULL) != PGR_OK ||
        pgr_buf_appendf(&sql, "::text AS k ") != PGR_OK ||
        pgr_sqlgen_orphan_from(x->conn, s, &sql, NULL) != PGR_OK ||
        pgr_buf_appendf(&sql, " ORDER BY 1 LIMIT %d) o", ORPHAN_IDS_SHOWN) != PGR_OK)
        goto out;
    PQclear(r);
    r = NULL;
    if (pgr_pg_exec(x->conn, sql.data, &r, NULL) == PGR_OK && PQntuples(r) == 1)
        snprintf(out, outlen, "%s", PQgetvalue(r, 0, 0));
out:
    PQclear(r);
    pgr_buf_free(&t);
    pgr_buf_free(&sql);
}

/* Text of a one-row, one-column query with the quoted child table as $1 ("" when NULL). */
static pgr_code child_query(agent_exec *x, const pgr_step *s, const char *sql, char **out,
                            pgr_error *err)
{
    pgr_buf t;
    PGresult *r = NULL;
    pgr_buf_init(&t);
    pgr_code rc = pgr_sqlgen_qualified(x->conn, &t, s->table, err);
    const char *params[] = {t.data};
    if (rc == PGR_OK)
        rc = pgr_pg_execp(x->conn, sql, 1, params, &r, err);
    if (rc == PGR_OK) {
        *out = strdup(PQgetisnull(r, 0, 0) ? "" : PQgetvalue(r, 0, 0));
        PQclear(r);
        if (*out == NULL)
            rc = pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    }
    pgr_buf_free(&t);
    return rc;
}

/* Deleting orphans would cascade (or null out) rows of tables referencing the child: those rows
 * would change without a copy. Refuse quarantine then. */
static pgr_code check_no_cascade(agent_exec *x, const pgr_step *s, pgr_error *err)
{
    char *refs = NULL;
    pgr_code rc = child_query(x, s,
                              "SELECT string_agg(conrelid::regclass::text || '.' || conname, ', ') "
                              "FROM pg_constraint WHERE contype = 'f' AND confrelid = "
                              "to_regclass($1) AND confdeltype IN ('c', 'n', 'd')",
                              &refs, err);
    if (rc == PGR_OK && refs[0] != '\0')
        rc = pgr_error_set(err, PGR_ERR_INVALID,
                           "cannot quarantine orphans of \"%s\": deleting them would cascade "
                           "to rows of other tables (%s) without a copy; nothing was changed",
                           s->table, refs);
    free(refs);
    return rc;
}

/* pgrollout_quarantine.<table>, or <schema>__<table> for a schema-qualified table. */
static pgr_code quarantine_name(agent_exec *x, const pgr_step *s, pgr_buf *out, pgr_error *err)
{
    char name[160];
    const char *dot = strchr(s->table, '.');
    if (dot != NULL)
        snprintf(name, sizeof(name), "%.*s__%s", (int)(dot - s->table), s->table, dot + 1);
    else
        snprintf(name, sizeof(name), "%s", s->table);
    pgr_code rc = pgr_buf_appendf(out, "pgrollout_quarantine.");
    return rc == PGR_OK ? pgr_sqlgen_ident(x->conn, out, name, err) : rc;
}

static pgr_code quarantine_sql(agent_exec *x, const pgr_step *s, const char *cols, pgr_buf *sql,
                               pgr_error *err)
{
    pgr_code rc = pgr_buf_appendf(sql, "CREATE TABLE IF NOT EXISTS ");
    if (rc == PGR_OK)
        rc = quarantine_name(x, s, sql, err);
    if (rc == PGR_OK)
        rc = pgr_buf_appendf(sql, " (LIKE ");
    if (rc == PGR_OK)
        rc = pgr_sqlgen_qualified(x->conn, sql, s->table, err);
    if (rc == PGR_OK)
        rc = pgr_buf_appendf(sql, ", pgr_job_id text, pgr_quarantined_at timestamptz); ");
    /* copy and delete in one statement: a row is either in the table or in quarantine; columns
     * by name, so a quarantine table of another shape fails instead of mixing values */
    if (rc == PGR_OK)
        rc = pgr_buf_appendf(sql, "WITH moved AS (DELETE ");
    if (rc == PGR_OK)
        rc = pgr_sqlgen_orphan_from(x->conn, s, sql, err);
    if (rc == PGR_OK)
        rc = pgr_buf_appendf(sql, " RETURNING c.*) INSERT INTO ");
    if (rc == PGR_OK)
        rc = quarantine_name(x, s, sql, err);
    if (rc == PGR_OK)
        rc = pgr_buf_appendf(sql,
                             " (%s, pgr_job_id, pgr_quarantined_at) SELECT %s, '%s', now() "
                             "FROM moved",
                             cols, cols, x->job_id);
    return rc;
}

static pgr_code quarantine(agent_exec *x, const pgr_step *s, long long *moved, pgr_error *err)
{
    char *cols = NULL;
    pgr_buf sql;
    PGresult *r = NULL;

    pgr_buf_init(&sql);
    pgr_code rc = check_no_cascade(x, s, err);
    if (rc == PGR_OK)
        rc = agent_state_create_schema(x, "pgrollout_quarantine", err);
    if (rc == PGR_OK)
        rc = child_query(x, s,
                         "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM "
                         "pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT "
                         "attisdropped AND attgenerated = ''",
                         &cols, err);
    if (rc == PGR_OK)
        rc = quarantine_sql(x, s, cols, &sql, err);
    if (rc == PGR_OK)
        rc = pgr_pg_exec(x->conn, sql.data, &r, err);
    if (rc == PGR_OK) {
        *moved = strtoll(PQcmdTuples(r), NULL, 10);
        PQclear(r);
    }
    free(cols);
    pgr_buf_free(&sql);
    return rc;
}

static pgr_code audit_orphans(agent_exec *x, const pgr_migration *m, const pgr_step *s,
                              const char *action, long long orphans, long long moved,
                              pgr_error *err)
{
    json_t *rec = agent_audit_new(x, action);
    agent_audit_step_fields(rec, m, s);
    json_object_set_new(rec, "orphan_policy", json_string(policy(x, s)));
    json_object_set_new(rec, "orphans", json_integer(orphans));
    json_object_set_new(rec, "quarantined", json_integer(moved));
    return agent_audit_append(x, rec, err);
}

/* Phase 1 after a validating ADD found orphans: count them, stop or quarantine them, then ADD
 * CONSTRAINT ... NOT VALID (phase 2 validates). Inside the open transaction, tables locked. */
static pgr_code phase_not_valid(agent_exec *x, const pgr_migration *m, const pgr_step *s,
                                long long t0, pgr_error *err)
{
    long long orphans = 0, moved = 0;
    char ids[512];
    pgr_buf add;

    pgr_code rc = count_orphans(x, s, &orphans, err);
    if (rc == PGR_OK && orphans > 0 && strcmp(policy(x, s), "abort") == 0) {
        orphan_ids(x, s, ids, sizeof(ids));
        agent_session_rollback(x);
        (void)audit_orphans(x, m, s, "orphans_found", orphans, 0, NULL);
        return pgr_error_set(err, PGR_ERR_INVALID,
                             "%lld orphan row(s) in \"%s\" reference no row of \"%s\" "
                             "(first ids: %s); nothing was changed; fix the data or apply with "
                             "--orphans quarantine",
                             orphans, s->table, s->ref_table, ids[0] != '\0' ? ids : "n/a");
    }
    if (rc == PGR_OK && orphans > 0)
        rc = quarantine(x, s, &moved, err);
    if (rc == PGR_OK && moved != orphans)
        rc = pgr_error_set(err, PGR_ERR_INTERNAL, "quarantined %lld of %lld orphan rows", moved,
                           orphans);
    pgr_buf_init(&add);
    if (rc == PGR_OK)
        rc = pgr_sqlgen_fk_add(x->conn, s, true, &add, err);
    if (rc == PGR_OK)
        rc = pgr_pg_exec(x->conn, add.data, NULL, err);
    pgr_buf_free(&add);
    if (rc == PGR_OK)
        rc = agent_state_record_step(x, m, s, "not_valid", pgr_clock_mono_ms() - t0, err);
    if (rc == PGR_OK)
        rc = audit_orphans(x, m, s, "fk_added_not_valid", orphans, moved, err);
    return rc;
}

/* ADD CONSTRAINT without NOT VALID under a savepoint. *added: it is there, validated; false
 * with PGR_OK: an orphan exists (foreign_key_violation) and the transaction is back at the
 * savepoint. */
static pgr_code try_add_validated(agent_exec *x, const pgr_step *s, bool *added, pgr_error *err)
{
    pgr_buf add;
    pgr_error e;
    *added = false;
    pgr_buf_init(&add);
    pgr_code rc = pgr_sqlgen_fk_add(x->conn, s, false, &add, err);
    if (rc == PGR_OK)
        rc = pgr_pg_exec(x->conn, "SAVEPOINT pgr_fk_validating", NULL, err);
    if (rc == PGR_OK) {
        pgr_error_clear(&e);
        pgr_code arc = pgr_pg_exec(x->conn, add.data, NULL, &e);
        if (arc == PGR_OK) {
            *added = true;
        } else if (strcmp(e.sqlstate, "23503") == 0) {
            rc = pgr_pg_exec(x->conn, "ROLLBACK TO SAVEPOINT pgr_fk_validating", NULL, err);
        } else {
            if (err != NULL)
                *err = e;
            rc = arc;
        }
    }
    pgr_buf_free(&add);
    return rc;
}

/* Phase 1, inside the open transaction: lock, then the clean case in one scan, else the orphan
 * path. */
static pgr_code phase_add(agent_exec *x, const pgr_migration *m, const pgr_step *s, long long t0,
                          pgr_error *err)
{
    bool added = false;
    pgr_code rc = lock_tables(x, s, err);
    if (rc == PGR_OK)
        rc = try_add_validated(x, s, &added, err);
    if (rc == PGR_OK && !added)
        return phase_not_valid(x, m, s, t0, err);
    if (rc == PGR_OK)
        rc = audit_orphans(x, m, s, "fk_added", 0, 0, err);
    if (rc == PGR_OK)
        rc = agent_step_record_done(x, m, s, pgr_clock_mono_ms() - t0, "validated", err);
    return rc;
}

static pgr_code phase_validate(agent_exec *x, const pgr_migration *m, const pgr_step *s,
                               long long t0, pgr_error *err)
{
    pgr_buf sql;
    pgr_buf_init(&sql);
    pgr_code rc = pgr_sqlgen_fk_validate(x->conn, s, &sql, err);
    if (rc == PGR_OK)
        rc = pgr_pg_exec(x->conn, sql.data, NULL, err);
    pgr_buf_free(&sql);
    long long dur = pgr_clock_mono_ms() - t0;
    if (rc == PGR_OK)
        rc = agent_step_record_done(x, m, s, dur, "validated", err);
    return rc;
}

/* Runs fn in its own transaction. */
static pgr_code in_txn(agent_exec *x, const pgr_migration *m, const pgr_step *s, long long t0,
                       pgr_code (*fn)(agent_exec *, const pgr_migration *, const pgr_step *,
                                      long long, pgr_error *),
                       pgr_error *err)
{
    pgr_code rc = agent_session_begin(x, err);
    if (rc == PGR_OK)
        rc = fn(x, m, s, t0, err);
    if (rc == PGR_OK)
        return agent_session_commit(x, err);
    agent_session_rollback(x);
    return rc;
}

/* Removes the words a constraint definition may or may not spell out (canonical form). */
static void strip_words(char *s)
{
    static const char *const words[] = {"notvalid", "onupdatenoaction", "ondeletenoaction"};
    for (size_t i = 0; s != NULL && i < sizeof(words) / sizeof(words[0]); i++) {
        size_t n = strlen(words[i]);
        char *p;
        while ((p = strstr(s, words[i])) != NULL)
            memmove(p, p + n, strlen(p + n) + 1);
    }
}

/* An existing constraint of the step's name must be the step's foreign key: same columns,
 * referenced table and columns, and actions. Compared in the canonical form of indexdef.h. */
static pgr_code check_same_fk(agent_exec *x, const pgr_step *s, pgr_error *err)
{
    pgr_buf want, t;
    PGresult *r = NULL;
    pgr_buf_init(&want);
    pgr_buf_init(&t);
    pgr_code rc = pgr_sqlgen_fk_add(x->conn, s, true, &want, err);
    if (rc == PGR_OK)
        rc = pgr_sqlgen_qualified(x->conn, &t, s->table, err);
    const char *params[] = {s->name, t.data};
    if (rc == PGR_OK)
        rc = pgr_pg_execp(x->conn,
                          "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $1 "
                          "AND conrelid = to_regclass($2)",
                          2, params, &r, err);
    if (rc == PGR_OK && PQntuples(r) == 1) {
        /* ours: "ALTER TABLE t ADD CONSTRAINT n FOREIGN KEY ... NOT VALID"; the server's:
         * "FOREIGN KEY ... [NOT VALID]", without NO ACTION clauses */
        const char *fk = strstr(want.data, "FOREIGN KEY");
        char *a = pgr_indexdef_canonical(fk != NULL ? fk : want.data);
        char *b = pgr_indexdef_canonical(PQgetvalue(r, 0, 0));
        strip_words(a);
        strip_words(b);
        if (a == NULL || b == NULL || strcmp(a, b) != 0)
            rc = pgr_error_set(err, PGR_ERR_DRIFT,
                               "drift: constraint \"%s\" on \"%s\" already exists with a "
                               "different definition",
                               s->name, s->table);
        free(a);
        free(b);
    }
    PQclear(r);
    pgr_buf_free(&want);
    pgr_buf_free(&t);
    return rc;
}

pgr_code agent_fk_run(agent_exec *x, const pgr_migration *m, const pgr_step *s, const char *phase,
                      pgr_error *err)
{
    long long t0 = pgr_clock_mono_ms();
    int state = 0;
    pgr_code rc = agent_fk_state(x, s, &state, err);
    PGR_UNUSED(phase);
    if (rc == PGR_OK && state != 0)
        rc = check_same_fk(x, s, err);
    /* The catalog, not our bookkeeping, decides: a crash right after COMMIT of phase 1 leaves
     * a NOT VALID constraint that only needs validating. */
    bool recorded = false; /* the clean case recorded the step in phase 1 */
    if (rc == PGR_OK && state == 0) {
        rc = in_txn(x, m, s, t0, phase_add, err);
        if (rc == PGR_OK)
            rc = agent_fk_state(x, s, &state, err);
        recorded = rc == PGR_OK && state == 2;
        if (rc == PGR_OK && state == 1)
            agent_failpoint("fk_after_not_valid");
    }
    if (rc == PGR_OK && !recorded)
        rc = in_txn(x, m, s, t0, phase_validate, err);
    return rc;
}
