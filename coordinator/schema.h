/*
 * schema.h - the control database's schema, pgrollout_control: tenants seen in heartbeats and
 * their job sequence, rollouts, their waves and tenant runs, the job outbox (written before
 * publishing, so a crash never loses a job), received events, the operator log, the central
 * audit record and the security alerts.
 */
#ifndef COORD_SCHEMA_H
#define COORD_SCHEMA_H

#include "pgr/error.h"

#include <libpq-fe.h>

/* Installs the schema, or upgrades it, unless schema_version already holds the newest version
 * (a restricted role, such as the audit collector's, cannot run DDL and need not). */
pgr_code coord_schema_install(PGconn *db, pgr_error *err) PGR_MUSTCHECK;

#endif
