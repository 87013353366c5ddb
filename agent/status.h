/*
 * status.h - status of one tenant database on an open session (agent_status_read in executor.h
 * opens its own).
 */
#ifndef AGENT_STATUS_H
#define AGENT_STATUS_H
#include "session.h"

/* The status rows of every migration of set, read on the open session x; *out is freed with
 * agent_status_free. */
pgr_code agent_status_on(agent_exec *x, const pgr_migration_set *set, agent_status **out,
                         pgr_error *err) PGR_MUSTCHECK;

#endif
