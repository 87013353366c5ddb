/*
 * stepexec.h - runs one step: the kind's code or the author's SQL (as the owner role), with
 * retries and backoff.
 */
#ifndef AGENT_STEPEXEC_H
#define AGENT_STEPEXEC_H
#include "session.h"

/* Resolves x->owner_role from x->o->owner_role (see agent_exec_opts). */
pgr_code agent_stepexec_owner_resolve(agent_exec *x, pgr_error *err) PGR_MUSTCHECK;

/* Runs a step with retries and backoff; skips it when already done. */
pgr_code agent_stepexec_run(agent_exec *x, const pgr_migration *m, const pgr_step *s, int count,
                            pgr_error *err) PGR_MUSTCHECK;

/* Before attempt + 1 of something that failed transiently: waits the backoff (base * 2^attempt,
 * at most 30 s, plus jitter) and reconnects when the connection was lost. False when the reconnect
 * was refused for good (another runner holds the tenant): *err then says why. */
bool agent_stepexec_backoff(agent_exec *x, int attempt, pgr_error *err) PGR_MUSTCHECK;

#endif
