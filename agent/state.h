/*
 * state.h - the tenant's state schema "pgrollout": its creation, step rows and their check
 * before each attempt, job rows.
 */
#ifndef AGENT_STATE_H
#define AGENT_STATE_H
#include "session.h"

/* A pgrollout.steps row as text parameters, in this order: version, part, step, kind, object,
 * job id, duration (phase is the caller's). */
typedef struct agent_step_row {
    char step[16], duration[32], object[512];
    const char *v[7];
} agent_step_row;
void agent_state_step_row(const agent_exec *x, const pgr_migration *m, const pgr_step *s,
                          long long duration_ms, agent_step_row *row);
/* How a step row replaces the one of an earlier attempt (after INSERT INTO pgrollout.steps). */
#define AGENT_STEPS_UPSERT                                                                         \
    "ON CONFLICT (version, part, step) DO UPDATE SET phase = EXCLUDED.phase, job_id = "            \
    "EXCLUDED.job_id, duration_ms = EXCLUDED.duration_ms, finished_at = now()"
pgr_code agent_state_ensure(agent_exec *x, pgr_error *err) PGR_MUSTCHECK;
/* Creates schema `name` unless it exists. A schema pre-created for the agent's role
 * (docs/OPERATIONS.md, "Least privilege") then needs no CREATE on the database: PostgreSQL checks
 * that privilege even for CREATE SCHEMA IF NOT EXISTS of an existing schema. `name` is a constant
 * of ours. */
pgr_code agent_state_create_schema(agent_exec *x, const char *name, pgr_error *err) PGR_MUSTCHECK;
/* Before each attempt of a step: restores the session settings, fails (PGR_ERR_LOCKED) unless
 * this session still holds the runner lock, and reads the phase recorded for the step into
 * phase ("" when none; 32 bytes). One round trip. */
pgr_code agent_state_step_check(agent_exec *x, const char *version, const char *part, int step,
                                char *phase, pgr_error *err) PGR_MUSTCHECK;
pgr_code agent_state_record_step(agent_exec *x, const pgr_migration *m, const pgr_step *s,
                                 const char *phase, long long duration_ms,
                                 pgr_error *err) PGR_MUSTCHECK;
pgr_code agent_state_job(agent_exec *x, const char *type, const char *state, const char *error,
                         pgr_error *err) PGR_MUSTCHECK;

#endif
