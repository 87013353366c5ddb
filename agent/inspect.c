/*
 * inspect.c - status (history against the files, drift) and verify (every object the applied
 * migrations create exists and is valid) of one tenant database. Read-only: no lock taken.
 */
#include "executor_int.h"

#include "pgr/indexdef.h"
#include "pgr/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool state_installed(agent_exec *x)
{
    PGresult *r = NULL;
    bool yes = false;
    if (pgr_pg_exec(x->conn, "SELECT to_regclass('pgrollout.schema_migrations') IS NOT NULL", &r,
                    NULL) == PGR_OK) {
        yes = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        PQclear(r);
    }
    return yes;
}

static agent_status_row *status_add(agent_status *st, const char *version, const char *name,
                                    const char *state)
{
    agent_status_row *n = realloc(st->rows, (st->count + 1) * sizeof(*n));
    if (n == NULL)
        return NULL;
    st->rows = n;
    agent_status_row *row = &n[st->count++];
    memset(row, 0, sizeof(*row));
    snprintf(row->version, sizeof(row->version), "%s", version);
    row->name = strdup(name);
    row->state = strdup(state);
    return row;
}

static const char *row_state(const pgr_migration_set *set, PGresult *r, int i)
{
    const char *status = PQgetvalue(r, i, 2);
    if (set == NULL || strcmp(status, "rolled_back") == 0)
        return status;
    const pgr_migration *m = pgr_migration_set_find(set, PQgetvalue(r, i, 0));
    if (m == NULL)
        return "missing_file";
    return strcmp(m->checksum, PQgetvalue(r, i, 3)) != 0 ? "drift" : status;
}

static pgr_code status_history(agent_exec *x, const pgr_migration_set *set, agent_status *st,
                               pgr_error *err)
{
    PGresult *r = NULL;
    pgr_code rc = pgr_pg_exec(x->conn,
                              "SELECT version, name, status, checksum, coalesce(to_char(applied_at "
                              "AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''), "
                              "coalesce(operator, ''), coalesce(job_id, ''), "
                              "coalesce(duration_ms, 0) FROM pgrollout.schema_migrations "
                              "ORDER BY version",
                              &r, err);
    for (int i = 0; rc == PGR_OK && i < PQntuples(r); i++) {
        const char *state = row_state(set, r, i);
        agent_status_row *row = status_add(st, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), state);
        if (row == NULL) {
            rc = pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
            break;
        }
        st->drift = st->drift || strcmp(state, "drift") == 0 || strcmp(state, "missing_file") == 0;
        row->applied_at = strdup(PQgetvalue(r, i, 4));
        row->operator_name = strdup(PQgetvalue(r, i, 5));
        row->job_id = strdup(PQgetvalue(r, i, 6));
        row->duration_ms = strtoll(PQgetvalue(r, i, 7), NULL, 10);
    }
    PQclear(r);
    return rc;
}

static int row_cmp(const void *a, const void *b)
{
    return strcmp(((const agent_status_row *)a)->version, ((const agent_status_row *)b)->version);
}

/* The status rows of every migration, from the open session x. */
static pgr_code status_on(agent_exec *x, const pgr_migration_set *set, agent_status **out,
                          pgr_error *err)
{
    agent_status *st = calloc(1, sizeof(*st));
    pgr_code rc = st != NULL ? PGR_OK : pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    if (rc == PGR_OK && state_installed(x))
        rc = status_history(x, set, st, err);
    for (size_t i = 0; rc == PGR_OK && set != NULL && i < set->count; i++) {
        bool known = false;
        for (size_t j = 0; j < st->count && !known; j++)
            known = strcmp(st->rows[j].version, set->items[i]->version) == 0;
        if (!known &&
            status_add(st, set->items[i]->version, set->items[i]->name, "pending") == NULL)
            rc = pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    }
    if (rc == PGR_OK && st->count > 1)
        qsort(st->rows, st->count, sizeof(st->rows[0]), row_cmp);
    if (rc != PGR_OK) {
        agent_status_free(st);
        return rc;
    }
    *out = st;
    return PGR_OK;
}

pgr_code agent_exec_status(const pgr_migration_set *set, const agent_exec_opts *o,
                           agent_status **out, pgr_error *err)
{
    agent_exec x;
    pgr_code rc = agent_exec_open(&x, o, false, err);
    if (rc == PGR_OK)
        rc = status_on(&x, set, out, err);
    agent_exec_close(&x, false);
    return rc;
}

void agent_status_free(agent_status *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->count; i++) {
        free(s->rows[i].name);
        free(s->rows[i].state);
        free(s->rows[i].applied_at);
        free(s->rows[i].operator_name);
        free(s->rows[i].job_id);
    }
    free(s->rows);
    free(s);
}

typedef void (*verify_report)(const char *version, const char *object, const char *problem,
                              void *user);

static bool extension_present(agent_exec *x, const char *name)
{
    PGresult *r = NULL;
    const char *params[] = {name};
    bool yes = false;
    if (pgr_pg_execp(x->conn, "SELECT 1 FROM pg_extension WHERE extname = $1", 1, params, &r,
                     NULL) == PGR_OK) {
        yes = PQntuples(r) == 1;
        PQclear(r);
    }
    return yes;
}

/* The problem with one up step's object, or NULL when it is as the step left it. */
static const char *verify_step(agent_exec *x, const pgr_step *s, pgr_error *err)
{
    bool found = false, valid = false;
    char *def = NULL;
    int state = 0;

    switch (s->kind) {
    case PGR_STEP_INDEX:
        if (agent_index_lookup_first(x, s, &found, &valid, &def, err) != PGR_OK)
            return "could not be checked";
        bool same = found && pgr_indexdef_equal(s->sql, def);
        free(def);
        return !found   ? "index is missing"
               : !valid ? "index is INVALID"
               : !same  ? "index definition differs from the migration"
                        : NULL;
    case PGR_STEP_DROP_INDEX:
        if (agent_index_lookup_first(x, s, &found, &valid, NULL, err) != PGR_OK)
            return "could not be checked";
        return found ? "index should not exist" : NULL;
    case PGR_STEP_FOREIGN_KEY:
        if (agent_fk_state(x, s, &state, err) != PGR_OK)
            return "could not be checked";
        return state == 0   ? "constraint is missing"
               : state == 1 ? "constraint is NOT VALID (not validated)"
                            : NULL;
    case PGR_STEP_DROP_FOREIGN_KEY:
        if (agent_fk_state(x, s, &state, err) != PGR_OK)
            return "could not be checked";
        return state != 0 ? "constraint should not exist" : NULL;
    case PGR_STEP_EXTENSION:
        return extension_present(x, s->name) ? NULL : "extension is missing";
    case PGR_STEP_SQL:
        return NULL; /* arbitrary SQL leaves nothing pgrollout can check by name */
    }
    return NULL;
}

/* Problems of one applied migration; *unchecked counts the objects whose look-up failed (a lost
 * connection), which are reported as problems too. */
static int verify_migration(agent_exec *x, const pgr_migration *m, verify_report report, void *user,
                            int *unchecked)
{
    int problems = 0;
    agent_index_prefetch(x, m->up, m->up_count, true);
    for (size_t i = 0; i < m->up_count; i++) {
        char obj[512];
        pgr_error e;
        pgr_error_clear(&e);
        const char *p = verify_step(x, &m->up[i], &e);
        *unchecked += e.code != PGR_OK;
        if (p != NULL) {
            pgr_step_describe(&m->up[i], obj, sizeof(obj));
            if (report != NULL)
                report(m->version, obj, p, user);
            problems++;
        }
    }
    agent_index_forget(x);
    return problems;
}

/* The checks of verify on an open session (history, then each applied migration's objects). */
static pgr_code verify_on(agent_exec *x, const pgr_migration_set *set, verify_report report,
                          void *user, int *problems, int *unchecked, pgr_error *err)
{
    agent_status *st = NULL;
    *problems = 0;
    *unchecked = 0;
    pgr_code rc = status_on(x, set, &st, err);
    for (size_t i = 0; rc == PGR_OK && i < st->count; i++) {
        const agent_status_row *row = &st->rows[i];
        const pgr_migration *m = pgr_migration_set_find(set, row->version);
        if (strcmp(row->state, "pending") == 0 || strcmp(row->state, "rolled_back") == 0)
            continue;
        if (strcmp(row->state, "applied") != 0 || m == NULL) {
            if (report != NULL)
                report(row->version, row->name, row->state, user);
            (*problems)++;
            continue;
        }
        *problems += verify_migration(x, m, report, user, unchecked);
    }
    agent_status_free(st);
    return rc;
}

pgr_code agent_exec_verify(const pgr_migration_set *set, const agent_exec_opts *o,
                           verify_report report, void *user, int *problems, pgr_error *err)
{
    agent_exec x;
    int unchecked = 0;
    *problems = 0;
    /* one session for the history and the catalog checks (a backend start costs the server
     * about 5 ms of CPU) */
    pgr_code rc = agent_exec_open(&x, o, false, err);
    if (rc == PGR_OK)
        rc = verify_on(&x, set, report, user, problems, &unchecked, err);
    agent_exec_close(&x, false);
    return rc;
}

pgr_code agent_exec_check_applied(agent_exec *x, const pgr_migration_set *set, int *verified,
                                  pgr_error *err)
{
    int problems = 0, unchecked = 0;
    pgr_error e;
    pgr_error_clear(&e);
    agent_failpoint("check_applied");
    if (verify_on(x, set, NULL, NULL, &problems, &unchecked, &e) != PGR_OK || unchecked > 0)
        return PGR_OK; /* not checked: *verified stays -1 and the coordinator sends a verify job */
    *verified = problems == 0;
    if (problems > 0)
        return pgr_error_set(err, PGR_ERR_DRIFT, "applied, but verify found %d problem(s)",
                             problems);
    return PGR_OK;
}
