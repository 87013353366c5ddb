/*
 * daemon_audit.h - the audit outbox publisher and the audit barrier before each step of a daemon
 * job.
 */
#ifndef AGENT_DAEMON_AUDIT_H
#define AGENT_DAEMON_AUDIT_H
#include "daemon_int.h"

/* While a tenant's job runs, its records are published at most every AUDIT_BUSY_MS: the job
 * holds the tenant's kept session, so each visit would start a backend of its own (with TLS about
 * 4 ms of the server's CPU); the visit after the job takes the kept session and all its records. */
#define AUDIT_BUSY_MS 5000

/* Publishes unpublished audit records (signed, in seq order) and marks them published once the
 * broker acknowledged them: of the tenants marked audit_dirty, or of every tenant when all; a
 * tenant running a job only once its last visit or the job's start is AUDIT_BUSY_MS ago (at
 * shutdown no job runs any more). now_ms: the monotonic clock in milliseconds. */
void daemon_audit_publish(agent_daemon *d, bool all, long long now_ms);

/* How long one try of the barrier before a step waits for Kafka's acknowledgements, and how
 * long the barrier keeps trying (a Kafka outage pauses the job between two steps) before the
 * step fails, resumable. */
#define AUDIT_BARRIER_MS      5000
#define AUDIT_BARRIER_WAIT_MS 300000

/* The executor's audit barrier (agent_exec_opts.audit_barrier) of a daemon job; user is the
 * job's daemon_events_steps. Publishes the tenant's unpublished records through conn, the job's
 * session, and returns once Kafka acknowledged all of them (PGR_OK). With Kafka unreachable it
 * tries again until AUDIT_BARRIER_WAIT_MS passed or the job is stopped (logged); a database
 * error returns at once. Failures are retriable. */
pgr_code daemon_audit_barrier(struct pg_conn *conn, void *user, pgr_error *err);

#endif
