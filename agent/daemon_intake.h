/*
 * daemon_intake.h - the path of a job message into the agent, and the recheck of stored and queued
 * jobs at start and after a keyring reload.
 */
#ifndef AGENT_DAEMON_INTAKE_H
#define AGENT_DAEMON_INTAKE_H
#include "daemon_int.h"

/* Verifies, records and queues one message from the jobs topic. A bad message is rejected
 * (security event + audit record) and skipped. Returns false only when a valid job could not be
 * recorded (tenant database unreachable): its offset must not be committed. */
bool daemon_intake_message(agent_daemon *d, const rd_kafka_message_t *m);

/* Queues the unfinished jobs recorded in each tenant database (restart resumption), each checked
 * as a new job is (keyring in force, tenant, job id); a job that fails is marked failed, audited
 * and reported by a security event. */
void daemon_intake_resume(agent_daemon *d);
/* The same for one tenant (a pool's tenant taken over). */
void daemon_intake_resume_tenant(agent_daemon *d, daemon_tenant *t);

/* After a keyring reload: every queued job not yet started is checked again the same way; one
 * signed by a key now revoked or removed leaves the queue, failed, audited and reported. */
void daemon_intake_recheck_queued(agent_daemon *d);

#endif
