/*
 * event_rules.c - what an agent's event may say (docs/PROTOCOL.md 9.7). Events are signed by an
 * agent key, but a key vouches for its own tenants only and the agent that holds it may be
 * compromised: every member the coordinator stores or folds into a run is checked here against
 * its list or its shape before anything is written. Pure functions: no database, no Kafka (the
 * fuzz target reaches them).
 */
#include "coord.h"

#include "pgr/job.h"
#include "pgr/migration.h"

#include <string.h>

static bool one_of(const char *v, const char *const *list)
{
    for (size_t i = 0; v != NULL && list[i] != NULL; i++) {
        if (strcmp(v, list[i]) == 0)
            return true;
    }
    return false;
}

static const char *const EVENT_TYPES[] = {
    "heartbeat", "step", "progress", "result", "security", "keyring_reloaded", NULL};
static const char *const STEP_STATES[] = {"started", "retry", "done", "skipped", "failed", NULL};
static const char *const STEP_KINDS[] = {
    "sql", "index", "drop_index", "extension", "foreign_key", "drop_foreign_key", NULL};
static const char *const JOB_TYPES[] = {"apply", "rollback", "verify", "cancel", NULL};
static const char *const OUTCOMES[] = {"succeeded", "failed", "interrupted", "cancelled", NULL};
static const char *const CODES[] = {"ok",     "invalid", "io",     "nomem",     "config",
                                    "crypto", "perm",    "exists", "not_found", "db",
                                    "kafka",  "drift",   "locked", "internal",  NULL};
static const char *const REASONS[] = {"malformed",
                                      "oversized",
                                      "unknown_key",
                                      "revoked_key",
                                      "bad_signature",
                                      "checksum_mismatch",
                                      "wrong_tenant",
                                      "expired",
                                      "replay",
                                      "stale_seq",
                                      NULL};

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* A member that must be absent, null, or a string satisfying ok. */
static bool opt_str(json_t *ev, const char *k, bool (*ok)(const char *))
{
    json_t *v = json_object_get(ev, k);
    return v == NULL || json_is_null(v) || (json_is_string(v) && ok(json_string_value(v)));
}

static bool opt_int(json_t *ev, const char *k, json_int_t lo, json_int_t hi)
{
    json_t *v = json_object_get(ev, k);
    return v == NULL ||
           (json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi);
}

/* The members of a step or progress event (9.3, 9.4). */
static const char *step_rule(json_t *ev, bool progress)
{
    const char *state = str(ev, "state");
    if (progress ? (state == NULL || strcmp(state, "progress") != 0) : !one_of(state, STEP_STATES))
        return "state";
    if (!one_of(str(ev, "kind"), STEP_KINDS))
        return "kind";
    if (!opt_int(ev, "step", 0, 100000) || !opt_int(ev, "steps", 0, 100000))
        return "step";
    json_t *pct = json_object_get(ev, "percent");
    if (pct != NULL &&
        !(json_is_number(pct) && json_number_value(pct) >= 0.0 && json_number_value(pct) <= 100.0))
        return "percent";
    return NULL;
}

/* The members of a result event (9.5). */
static const char *result_rule(json_t *ev)
{
    if (!one_of(str(ev, "job_type"), JOB_TYPES))
        return "job_type";
    if (!one_of(str(ev, "outcome"), OUTCOMES))
        return "outcome";
    if (!one_of(str(ev, "code"), CODES))
        return "code";
    json_t *v = json_object_get(ev, "verified");
    if (v != NULL && !json_is_boolean(v))
        return "verified";
    return NULL;
}

const char *coord_event_rule_broken(json_t *ev)
{
    const char *type = str(ev, "type");
    if (!json_is_object(ev))
        return "not an object";
    if (!one_of(type, EVENT_TYPES))
        return "type";
    if (str(ev, "agent_id") == NULL)
        return "agent_id";
    json_t *seq = json_object_get(ev, "seq");
    if (!json_is_integer(seq) || json_integer_value(seq) < 1)
        return "seq";
    bool agent_wide = strcmp(type, "heartbeat") == 0 || strcmp(type, "keyring_reloaded") == 0;
    /* every event about a tenant names it: the run it changes must be that tenant's */
    if (!agent_wide && str(ev, "tenant_id") == NULL)
        return "tenant_id";
    if (agent_wide && str(ev, "job_id") != NULL)
        return "job_id";
    if (!opt_str(ev, "job_id", pgr_uuid_valid))
        return "job_id";
    if (!opt_str(ev, "version", pgr_version_valid))
        return "version";
    if (!opt_str(ev, "from_version", pgr_version_valid))
        return "from_version";
    if (strcmp(type, "step") == 0 || strcmp(type, "progress") == 0)
        return step_rule(ev, strcmp(type, "progress") == 0);
    if (strcmp(type, "result") == 0)
        return result_rule(ev);
    if (strcmp(type, "security") == 0 && !one_of(str(ev, "reason"), REASONS))
        return "reason";
    return NULL;
}
