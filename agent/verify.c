/*
 * verify.c - verify of one tenant database: every object the applied migrations create exists and
 * is valid, as its step left it. Read-only: no lock taken; also runs on a job's own session.
 */
#include "verify.h"
#include "failpoint.h"
#include "fk.h"
#include "index.h"
#include "status.h"

#include "pgr/indexdef.h"
#include "pgr/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
            pgr_migration_step_describe(&m->up[i], obj, sizeof(obj));
            if (report != NULL)
                report(m->version, obj, p, user);
            problems++;
        }
    }
    agent_session_forget_prefetch(x);
    return problems;
}

/* The checks of verify on an open session (history, then each applied migration's objects). */
static pgr_code verify_on(agent_exec *x, const pgr_migration_set *set, verify_report report,
                          void *user, int *problems, int *unchecked, pgr_error *err)
{
    agent_status *st = NULL;
    *problems = 0;
    *unchecked = 0;
    pgr_code rc = agent_status_on(x, set, &st, err);
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

pgr_code agent_verify_run(const pgr_migration_set *set, const agent_exec_opts *o,
                          verify_report report, void *user, int *problems, pgr_error *err)
{
    agent_exec x;
    int unchecked = 0;
    *problems = 0;
    /* one session for the history and the catalog checks (a backend start costs the server
     * about 5 ms of CPU) */
    pgr_code rc = agent_session_open(&x, o, false, err);
    if (rc == PGR_OK)
        rc = verify_on(&x, set, report, user, problems, &unchecked, err);
    agent_session_close(&x, false);
    return rc;
}

pgr_code agent_verify_check_applied(agent_exec *x, const pgr_migration_set *set, int *verified,
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
