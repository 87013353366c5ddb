/*
 * backup.h - pg_dump -Fc of the tenant database before the first step, checked and hashed.
 */
#ifndef AGENT_BACKUP_H
#define AGENT_BACKUP_H
#include "session.h"

pgr_code agent_backup_run(agent_exec *x, pgr_error *err) PGR_MUSTCHECK;

#endif
