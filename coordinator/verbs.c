/*
 * verbs.c - an operator's actions on a rollout (verbs.h).
 */
#include "verbs.h"

#include "pgr/pg.h"

#include <string.h>

pgr_code coord_verbs_log(coord *c, const char *rollout, const char *action, const char *wave,
                         const char *op, const char *detail)
{
    const char *params[] = {rollout, action, wave, op, detail};
    return pgr_pg_execp(c->db,
                        "INSERT INTO pgrollout_control.operator_log (rollout_id, action, wave, "
                        "operator, detail) VALUES ($1, $2, $3, $4, $5)",
                        5, params, NULL, NULL);
}

static pgr_code approve(coord *c, const char *rollout, const char *wave, const char *op,
                        PGresult **r, pgr_error *err)
{
    return pgr_pg_execp(c->db,
                        "UPDATE pgrollout_control.rollout_waves SET approved_by = $3, "
                        "approved_at = now() WHERE rollout_id = $1 AND ($2::text IS NULL OR "
                        "name = $2) AND state <> 'passed' AND idx = (SELECT min(idx) FROM "
                        "pgrollout_control.rollout_waves WHERE rollout_id = $1 AND state <> "
                        "'passed' AND ($2::text IS NULL OR name = $2))",
                        3, (const char *[]){rollout, wave, op}, r, err);
}

static pgr_code set_state(coord *c, const char *rollout, const char *state, PGresult **r,
                          pgr_error *err)
{
    return pgr_pg_execp(c->db,
                        "UPDATE pgrollout_control.rollouts SET state = $2, updated_at = now() "
                        "WHERE rollout_id = $1 AND state IN ('running', 'paused')",
                        2, (const char *[]){rollout, state}, r, err);
}

pgr_code coord_verbs_apply(coord *c, const char *verb, const char *rollout, const char *wave,
                           const char *op, bool *done, pgr_error *err)
{
    PGresult *r = NULL;
    pgr_code rc =
        strcmp(verb, "approve") == 0
            ? approve(c, rollout, wave, op, &r, err)
            : set_state(c, rollout, strcmp(verb, "pause") == 0 ? "paused" : "aborted", &r, err);
    *done = rc == PGR_OK && strcmp(PQcmdTuples(r), "0") != 0;
    if (*done)
        PGR_IGNORE(coord_verbs_log(c, rollout, verb, wave, op, NULL));
    PQclear(r);
    return rc;
}
