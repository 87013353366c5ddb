/*
 * fk.h - foreign keys: orphan checks, NOT VALID then VALIDATE, resumable.
 */
#ifndef AGENT_FK_H
#define AGENT_FK_H
#include "session.h"

pgr_code agent_fk_run(agent_exec *x, const pgr_migration *m, const pgr_step *s, const char *phase,
                      pgr_error *err) PGR_MUSTCHECK;

/* Constraint state: 0 absent, 1 present NOT VALID, 2 validated. */
pgr_code agent_fk_state(agent_exec *x, const pgr_step *s, int *state, pgr_error *err) PGR_MUSTCHECK;

#endif
