/*
 * event.h - what an agent's event may say and what it means for its run (docs/PROTOCOL.md 9.7).
 * Events are signed by an agent key, but a key vouches for its own tenants only and the agent
 * that holds it may be compromised: every member the coordinator stores or folds into a run is
 * checked here against its list or its shape before anything is written. Pure functions: no
 * database, no Kafka (the fuzz target reaches them).
 */
#ifndef COORD_EVENT_H
#define COORD_EVENT_H

#include "pgr/keyring.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Parses a verified event payload signed by key e. Returns the document (caller decrefs), or NULL
 * unless it keeps every rule of coord_event_rule_broken and its "tenant_id", when a string, is
 * one e may speak for; *why (may be NULL) then says which member broke a rule. */
json_t *coord_event_parse(const char *payload, size_t len, const pgr_keyring_entry *e,
                          const char **why);

/* The member of an event that breaks its rule (docs/PROTOCOL.md 9.7: enumerated members in their
 * lists, versions and job ids in their shape, tenant_id on every event about a tenant, seq >= 1),
 * or NULL when none does. */
const char *coord_event_rule_broken(json_t *ev);

/* What an accepted event writes into its job's tenant run (docs/PROTOCOL.md 9.7); the strings
 * point into the event. */
typedef struct coord_event_update {
    const char *job_id, *state, *version, *object, *error, *agent_id, *from_version;
    char step[24], steps[24], percent[32];
    bool has_percent;
    bool verified; /* a succeeded apply whose agent checked its objects in the job (9.5) */
} coord_event_update;

/* Fills u from an event that coord_event_parse accepted. */
void coord_event_run_update(json_t *ev, coord_event_update *u);

#endif
