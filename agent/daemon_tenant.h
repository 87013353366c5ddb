/*
 * daemon_tenant.h - the daemon's tenants: look-up, queued jobs, and the records the daemon writes
 * into a tenant's database itself.
 */
#ifndef AGENT_DAEMON_TENANT_H
#define AGENT_DAEMON_TENANT_H
#include "daemon_int.h"

daemon_tenant *daemon_tenant_find(agent_daemon *d, const char *id);

void daemon_tenant_job_free(daemon_job *j);

/* The options that name tenant t, a job (job_id, may be NULL) and its operator (op, NULL:
 * "unknown") for the tenant's job records (agent_jobrec_* in executor.h). */
void daemon_tenant_opts(agent_daemon *d, daemon_tenant *t, agent_exec_opts *o, const char *job_id,
                        const char *op);

/* Writes a job_rejected record of tenant t (the id tenant, the job job_id) into its chain: reason,
 * kid, rejected_job_id and the members of extra (consumed; may be NULL). Returns whether the
 * record was written (a failure is logged). */
bool daemon_tenant_record_rejection(agent_daemon *d, daemon_tenant *t, const char *tenant,
                                    const char *job_id, const char *reason, const char *kid,
                                    json_t *extra);

/* Records the end of a job that the executor does not track (verify, cancel): its final state
 * in pgrollout.jobs and its job_end audit record (outcome from rc, code, duration_ms; a verify
 * job's problems when problems >= 0), in one transaction. error: the message when rc failed.
 * epoch: the owner epoch the job ran under (pool; else 0): when another agent took the tenant
 * over since, nothing is written and *fenced (may be NULL) becomes 1. */
void daemon_tenant_job_end(agent_daemon *d, daemon_tenant *t, const pgr_job *job, pgr_code rc,
                           const char *error, int problems, long long duration_ms, long long epoch,
                           int *fenced);

/* Writes an audit record into one tenant's chain (a warning is logged when it cannot); the
 * fields of extra (may be NULL, not consumed) are added to it with the agent's kid. */
void daemon_tenant_audit(agent_daemon *d, daemon_tenant *t, const char *action, json_t *extra);

/* Writes an audit record (agent_start, agent_stop, keyring_reload) into the chain of every tenant
 * this agent serves; the fields of extra (may be NULL) are added to each record. */
void daemon_tenant_audit_all(agent_daemon *d, const char *action, json_t *extra);

#endif
