/*
 * status.c - status of one tenant database: its history against the migration files (pending,
 * applied, drift). Read-only: no lock taken.
 */
#include "status.h"

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
pgr_code agent_status_on(agent_exec *x, const pgr_migration_set *set, agent_status **out,
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

pgr_code agent_status_read(const pgr_migration_set *set, const agent_exec_opts *o,
                           agent_status **out, pgr_error *err)
{
    agent_exec x;
    pgr_code rc = agent_session_open(&x, o, false, err);
    if (rc == PGR_OK)
        rc = agent_status_on(&x, set, out, err);
    agent_session_close(&x, false);
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
