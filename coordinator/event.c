/*
 * event.c - what an agent's event may say, and what it means for its run (event.h).
 */
#include "event.h"

#include "pgr/migration.h"
#include "pgr/uuid.h"

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
static const char *const REASONS[] = {
    "malformed",    "oversized", "unknown_key", "revoked_key", "bad_signature", "checksum_mismatch",
    "wrong_tenant", "expired",   "replay",      "stale_seq",   "release",       NULL};

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
    if (!opt_str(ev, "version", pgr_migration_version_valid))
        return "version";
    if (!opt_str(ev, "from_version", pgr_migration_version_valid))
        return "from_version";
    if (strcmp(type, "step") == 0 || strcmp(type, "progress") == 0)
        return step_rule(ev, strcmp(type, "progress") == 0);
    if (strcmp(type, "result") == 0)
        return result_rule(ev);
    if (strcmp(type, "security") == 0 && !one_of(str(ev, "reason"), REASONS))
        return "reason";
    return NULL;
}

json_t *coord_event_parse(const char *payload, size_t len, const pgr_keyring_entry *e,
                          const char **why)
{
    json_t *ev = json_loadb(payload, len, 0, NULL);
    const char *broken = ev == NULL ? "not JSON" : coord_event_rule_broken(ev);
    const char *tenant = broken == NULL ? str(ev, "tenant_id") : NULL;
    if (broken == NULL && tenant != NULL && !pgr_keyring_allows_tenant(e, tenant))
        broken = "tenant_id not allowed for the key";
    if (why != NULL)
        *why = broken;
    if (broken != NULL) {
        json_decref(ev);
        return NULL;
    }
    return ev;
}

void coord_event_run_update(json_t *ev, coord_event_update *u)
{
    const char *type = str(ev, "type");
    const char *job_type = str(ev, "job_type"), *outcome = str(ev, "outcome");
    snprintf(u->step, sizeof(u->step), "%lld",
             (long long)json_integer_value(json_object_get(ev, "step")));
    snprintf(u->steps, sizeof(u->steps), "%lld",
             (long long)json_integer_value(json_object_get(ev, "steps")));
    snprintf(u->percent, sizeof(u->percent), "%.1f",
             json_number_value(json_object_get(ev, "percent")));
    bool result = strcmp(type, "result") == 0, security = strcmp(type, "security") == 0;
    bool running = strcmp(type, "step") == 0 || strcmp(type, "progress") == 0;
    bool rb = result && job_type != NULL && strcmp(job_type, "rollback") == 0 && outcome != NULL &&
              strcmp(outcome, "succeeded") == 0;
    u->job_id = str(ev, "job_id");
    u->state = rb ? "rolled_back" : result ? outcome : security ? "rejected" : "running";
    u->version = str(ev, "version");
    u->object = str(ev, "object");
    u->has_percent = strcmp(type, "progress") == 0;
    u->error = running ? NULL : security ? str(ev, "reason") : str(ev, "message");
    u->agent_id = str(ev, "agent_id");
    /* the rollback target: only an apply job's result reports it (docs/PROTOCOL.md 9.5) */
    u->from_version = result && job_type != NULL && strcmp(job_type, "apply") == 0
                          ? str(ev, "from_version")
                          : NULL;
    u->verified = result && job_type != NULL && strcmp(job_type, "apply") == 0 && outcome != NULL &&
                  strcmp(outcome, "succeeded") == 0 &&
                  json_is_true(json_object_get(ev, "verified"));
}
