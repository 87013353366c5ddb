/*
 * daemon_discover.h - tenants found, not typed: the databases of each `[tenant_sources]` server
 * whose names match its pattern are tenants of this agent, listed at start, every
 * agent.discover_interval_ms and on SIGHUP. A database that disappears marks its tenant gone (not
 * served, reported in heartbeats); one that comes back is served again.
 */
#ifndef AGENT_DAEMON_DISCOVER_H
#define AGENT_DAEMON_DISCOVER_H
#include "daemon_int.h"

/* Allocates the daemon's tenant slots: the [tenants] lines, and room for agent.max_tenants more
 * when there are tenant sources. False when out of memory. */
bool daemon_discover_init(agent_daemon *d);

/* Lists every source's databases and brings the tenants up to date. At start (starting: before
 * the daemon resumes and records agent_start for every tenant) found tenants are only added;
 * later, a new or returning tenant is recorded (tenant_found) and resumed like a restarted
 * agent's, or, in a pool, taken over once the group gives this agent its partition. A source that
 * cannot be listed changes nothing (a server down is not its tenants gone). */
void daemon_discover_refresh(agent_daemon *d, bool starting);

typedef enum daemon_discover_lookup_result {
    DAEMON_DISCOVER_NOT_OURS, /* no source has a database with that id: another agent's tenant */
    DAEMON_DISCOVER_LISTED,   /* a source has it: listed again, the tenant is known now */
    DAEMON_DISCOVER_UNSURE    /* a source could not be asked: wait, never skip its jobs */
} daemon_discover_lookup_result;

/* A jobs message names a tenant id this agent does not know. Its database may have been created
 * since the last listing (or this pool member has not listed it yet): the source whose template
 * could make the id is asked for that one database, and listed again when it is there. */
daemon_discover_lookup_result daemon_discover_lookup(agent_daemon *d, const char *id);

/* The ids of the tenants marked gone, as a new JSON array (for heartbeats). */
json_t *daemon_discover_gone(agent_daemon *d);

/* Frees what discovery allocated (the found tenants' own configuration). */
void daemon_discover_free(agent_daemon *d);

#endif
