/*
 * verify.h - verify: the objects of applied migrations against their files (agent_verify_run
 * in executor.h), also on a job's own session.
 */
#ifndef AGENT_VERIFY_H
#define AGENT_VERIFY_H
#include "session.h"

/* The checks of verify on the job's own session, after a successful apply (opts.verified): sets
 * *verified to 1 or 0 (then returns PGR_ERR_DRIFT); leaves it when a look-up failed. */
pgr_code agent_verify_check_applied(agent_exec *x, const pgr_migration_set *set, int *verified,
                                    pgr_error *err) PGR_MUSTCHECK;

#endif
