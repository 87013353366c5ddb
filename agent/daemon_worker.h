/*
 * daemon_worker.h - the daemon's worker threads.
 */
#ifndef AGENT_DAEMON_WORKER_H
#define AGENT_DAEMON_WORKER_H
#include "daemon_int.h"

/* Joins finished workers, then, when start, starts queued jobs on idle tenants while slots are
 * free (agent.max_parallel). Main loop only. */
void daemon_worker_dispatch(agent_daemon *d, bool start);

#endif
