/*
 * step.c - what every step kind records and reports (step.h): the step row and its step_done
 * audit record, in the step's transaction or one of its own, and step events.
 */
#include "step.h"

json_t *agent_step_done_record(agent_exec *x, const pgr_migration *m, const pgr_step *s,
                               long long dur, const char *outcome)
{
    json_t *rec = agent_audit_new(x, "step_done");
    agent_audit_step_fields(rec, m, s);
    json_object_set_new(rec, "duration_ms", json_integer(dur));
    json_object_set_new(rec, "outcome", json_string(outcome));
    return rec;
}

/* Records the step done and audits it, in the open transaction. */
pgr_code agent_step_record_done(agent_exec *x, const pgr_migration *m, const pgr_step *s,
                                long long dur, const char *outcome, pgr_error *err)
{
    pgr_code rc = agent_state_record_step(x, m, s, "done", dur, err);
    return rc == PGR_OK ? agent_audit_append(x, agent_step_done_record(x, m, s, dur, outcome), err)
                        : rc;
}

pgr_code agent_step_finish(agent_exec *x, const pgr_migration *m, const pgr_step *s, long long dur,
                           pgr_error *err)
{
    pgr_code rc = agent_session_begin(x, err);
    if (rc == PGR_OK)
        rc = agent_step_record_done(x, m, s, dur, "done", err);
    if (rc == PGR_OK)
        return agent_session_commit(x, err);
    agent_session_rollback(x);
    return rc;
}

void agent_step_event(agent_event *ev, agent_event_kind kind, const pgr_migration *m,
                      const pgr_step *s, int count, char obj[AGENT_OBJECT_LEN])
{
    pgr_migration_step_describe(s, obj, AGENT_OBJECT_LEN);
    *ev = (agent_event){.kind = kind,
                        .version = m->version,
                        .name = m->name,
                        .step = s->index + 1,
                        .step_count = count,
                        .step_kind = pgr_migration_step_kind_name(s->kind),
                        .object = obj,
                        .phi = s->phi,
                        .percent = -1};
}
