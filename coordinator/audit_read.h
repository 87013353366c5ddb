/*
 * audit_read.h - the central audit record read back from the control database: every stored
 * chain verified again (signatures with the agent keyring, hash links, the stored columns
 * against what the agent signed), the chain alerts of the collector, the records of a tenant
 * for an auditor, and each chain's latest hash (its anchor).
 */
#ifndef COORD_AUDIT_READ_H
#define COORD_AUDIT_READ_H

#include "coord.h"

#include <libpq-fe.h>

/* Called for each broken chain: the tenant id and seq as stored, and what is wrong. */
typedef void (*coord_audit_read_fn)(const char *tenant, const char *seq, const char *problem,
                                    void *user);

typedef struct coord_audit_read_counts {
    int records, tenants, broken;
} coord_audit_read_counts;

/* Walks the stored chains (of only_tenant, or all) in order and calls fn with the first broken
 * record of each broken chain; *n counts records, tenants and broken chains. */
pgr_code coord_audit_read_chains(coord *c, const char *only_tenant, coord_audit_read_fn fn,
                                 void *user, coord_audit_read_counts *n,
                                 pgr_error *err) PGR_MUSTCHECK;

/* Calls fn for each chain alert of the collector (of only_tenant, or all); *count: how many. */
pgr_code coord_audit_read_alerts(coord *c, const char *only_tenant, coord_audit_read_fn fn,
                                 void *user, int *count, pgr_error *err) PGR_MUSTCHECK;

/* The records of tenant (record, kid, hash), in seq order, whose "at" is from since (when not
 * NULL) and before until (when not NULL). */
pgr_code coord_audit_read_export(coord *c, const char *tenant, const char *since, const char *until,
                                 PGresult **out, pgr_error *err) PGR_MUSTCHECK;

/* The latest record of every tenant chain (tenant_id, seq, hash), by tenant. */
pgr_code coord_audit_read_anchors(coord *c, PGresult **out, pgr_error *err) PGR_MUSTCHECK;

#endif
