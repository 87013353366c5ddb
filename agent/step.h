/*
 * step.h - what every step kind records and reports: step rows with their audit records, and step
 * events.
 */
#ifndef AGENT_STEP_H
#define AGENT_STEP_H
#include "audit.h"
#include "state.h"

#define AGENT_OBJECT_LEN 512 /* pgr_migration_step_describe of a step, for events */
/* An event about step s (kind, migration, step number, object into obj, phi); the caller adds
 * what the kind carries. */
void agent_step_event(agent_event *ev, agent_event_kind kind, const pgr_migration *m,
                      const pgr_step *s, int count, char obj[AGENT_OBJECT_LEN]);

/* Records a step as done (history row + audit record) in the open transaction. */
pgr_code agent_step_record_done(agent_exec *x, const pgr_migration *m, const pgr_step *s,
                                long long dur, const char *outcome, pgr_error *err) PGR_MUSTCHECK;

/* The audit record step_done of a finished step (not yet appended). */
json_t *agent_step_done_record(agent_exec *x, const pgr_migration *m, const pgr_step *s,
                               long long dur, const char *outcome);

/* Records a step as done in a transaction of its own (steps that ran outside one). */
pgr_code agent_step_finish(agent_exec *x, const pgr_migration *m, const pgr_step *s, long long dur,
                           pgr_error *err) PGR_MUSTCHECK;

#endif
