/*
 * audit.h - the tenant's hash-chained audit outbox: building records and appending them.
 */
#ifndef AGENT_AUDIT_H
#define AGENT_AUDIT_H
#include "state.h"

/* Appends a record to pgrollout.audit_outbox with the next seq and the chained hash, inside the
 * open transaction when there is one (emitted on COMMIT), else in its own. rec is consumed. */
pgr_code agent_audit_append(agent_exec *x, json_t *rec, pgr_error *err) PGR_MUSTCHECK;
/* Outside a transaction, one statement: records an index step done (row, with phase done) and
 * appends rec (taken), only when the index `name` exists valid and ready in the schema of
 * `table` (quoted, as agent_index_lookup finds it). *recorded says whether it did; false with
 * PGR_OK: the index is invalid or missing, nothing written. */
pgr_code agent_audit_index_done(agent_exec *x, json_t *rec, const agent_step_row *row,
                                const char *name, const char *table, bool *recorded,
                                pgr_error *err) PGR_MUSTCHECK;
/* A new record with action and the common fields (tenant, job, operator, agent). */
json_t *agent_audit_new(agent_exec *x, const char *action);
/* A job_end record: type, outcome (from rc), code, duration_ms; the executor's jobs and the
 * daemon's verify and cancel jobs add their own fields (verified, problems). */
json_t *agent_audit_job_end(agent_exec *x, const char *type, pgr_code rc, long long duration_ms);
/* Adds version/step/kind/object/phi/sql_sha256 of a step. */
void agent_audit_step_fields(json_t *rec, const pgr_migration *m, const pgr_step *s);

#endif
