/*
 * daemon_events.c - the daemon's signed events (daemon_events_send), and what the executor reports
 * about a daemon job, as signed `step` and `progress` events (docs/PROTOCOL.md 9.3, 9.4). Each
 * event costs a signature, a Kafka message, the coordinator's verification and a row in the control
 * database, and a rollout of the White Cross migrations is mostly quick index builds (a few
 * milliseconds each at small scale). So:
 *   - an index build that is not the job's first step sends `started` only once it has run
 *     250 ms (with its first progress event when PostgreSQL reports one by then);
 *   - the `done` of an index build is held for up to 100 ms and sent with the ones that follow
 *     in one event (member `also_done`); any other event of the job sends what is held first,
 *     so the order of states is kept and nothing is held behind a long step.
 */
#include "daemon_events.h"

#include "pgr/clock.h"
#include "pgr/log.h"

#include <stdio.h>
#include <stdlib.h>

#include <string.h>

void daemon_events_send(agent_daemon *d, const char *type, const char *tenant, const char *job_id,
                        json_t *body)
{
    PGR_IGNORE(daemon_events_send_tracked(d, type, tenant, job_id, body, NULL));
}

bool daemon_events_send_tracked(agent_daemon *d, const char *type, const char *tenant,
                                const char *job_id, json_t *body, pgr_kafka_tracker *tr)
{
    char at[32];
    pgr_clock_format_utc(time(NULL), at);
    /* numbered, signed and handed to the producer under one lock: the events of a tenant reach
     * its partition in the order of their numbers, which the coordinator enforces */
    pthread_mutex_lock(&d->mu);
    long long seq = daemon_eventseq_next(&d->event_seq);
    json_t *ev =
        json_pack("{s:s, s:s, s:s?, s:s?, s:I, s:s}", "type", type, "agent_id", d->cfg->agent_id,
                  "tenant_id", tenant, "job_id", job_id, "seq", (json_int_t)seq, "at", at);
    /* the body adds members, never replaces these: a body read back from a tenant database (a
     * result sent again) cannot name another tenant, job, sender or seq */
    if (ev != NULL && body != NULL)
        json_object_update_missing(ev, body);
    json_decref(body);
    char *payload = ev != NULL ? json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(ev);
    char *env = payload != NULL
                    ? pgr_envelope_seal(PGR_DOMAIN_EVENT, &d->key, payload, strlen(payload))
                    : NULL;
    pgr_error err;
    const char *key = tenant != NULL ? tenant : d->cfg->agent_id;
    bool sent =
        env != NULL && (tr != NULL ? pgr_kafka_send_tracked_nowait(d->producer, d->topic_events,
                                                                   key, env, strlen(env), tr, &err)
                                   : pgr_kafka_send_nowait(d->producer, d->topic_events, key, env,
                                                           strlen(env), &err)) == PGR_OK;
    if (!sent) {
        /* best effort (docs/PROTOCOL.md 9): waiting here for a full queue to drain would stop
         * every thread that sends events, the intake included */
        pgr_log_ctx ctx = {"events", tenant, job_id};
        pgr_log_error(&ctx, "could not send %s event: %s", type,
                      env == NULL ? "out of memory" : err.msg);
    }
    pthread_mutex_unlock(&d->mu);
    free(payload);
    free(env);
    return sent;
}

/* How long an index build's `done` may wait for company. */
#define HOLD_MS 100

void daemon_events_steps_init(daemon_events_steps *s, agent_daemon *d, daemon_tenant *t,
                              const char *job_id)
{
    memset(s, 0, sizeof(*s));
    s->d = d;
    s->t = t;
    s->job_id = job_id;
}

static bool is_index(const agent_event *ev)
{
    return ev->step_kind != NULL && strcmp(ev->step_kind, "index") == 0;
}

/* The members of a step's state change (9.3), without the envelope fields. */
static json_t *step_body(const agent_event *ev)
{
    static const char *const states[] = {
        "", "", "started", "progress", "retry", "done", "skipped", "failed", "", "", "", ""};
    json_t *body = json_pack("{s:s?, s:i, s:i, s:s?, s:s?, s:s, s:b}", "version", ev->version,
                             "step", ev->step, "steps", ev->step_count, "kind", ev->step_kind,
                             "object", ev->object, "state", states[ev->kind], "phi", ev->phi);
    if (body != NULL && ev->kind == AGENT_EV_STEP_PROGRESS) {
        json_object_set_new(body, "phase", json_string(ev->phase));
        json_object_set_new(body, "percent", json_real(ev->percent));
    }
    if (body != NULL && ev->message != NULL)
        json_object_set_new(body, "message", json_string(ev->message));
    return body;
}

static void emit(daemon_events_steps *s, const char *type, json_t *body)
{
    daemon_events_send(s->d, type, s->t->conf->id, s->job_id, body);
}

void daemon_events_steps_flush(daemon_events_steps *s)
{
    size_t n = json_array_size(s->held);
    if (n == 0)
        return;
    /* the last one is the event; the earlier ones ride along, in order, without `state` */
    json_t *last = json_incref(json_array_get(s->held, n - 1));
    if (n > 1) {
        json_array_remove(s->held, n - 1);
        size_t i;
        json_t *item;
        json_array_foreach(s->held, i, item) json_object_del(item, "state");
        json_object_set(last, "also_done", s->held);
    }
    json_decref(s->held);
    s->held = NULL;
    emit(s, "step", last);
}

/* An index build's `done`: held, and sent with the others once the first has waited HOLD_MS. */
static void hold_done(daemon_events_steps *s, const agent_event *ev)
{
    if (s->held == NULL) {
        s->held = json_array();
        s->held_since_ms = pgr_clock_mono_ms();
    }
    json_array_append_new(s->held, step_body(ev));
    if (pgr_clock_mono_ms() - s->held_since_ms >= HOLD_MS)
        daemon_events_steps_flush(s);
}

/* Whether a step's `started` goes out now (see the top of this file). */
static bool start_now(daemon_events_steps *s, const agent_event *ev)
{
    bool first = s->steps_started++ == 0;
    s->start_pending = is_index(ev) && !first;
    return !s->start_pending;
}

/* Sends what is held, then this event: the states of one job stay in order. */
static void send_now(daemon_events_steps *s, const char *type, const agent_event *ev)
{
    daemon_events_steps_flush(s);
    emit(s, type, step_body(ev));
}

/* The build has run 250 ms (or longer): its held `started` goes out now, also when PostgreSQL
 * shows no progress yet (a build waiting for its table lock), and with it what is held. */
static void send_held_start(daemon_events_steps *s, const agent_event *ev)
{
    if (!s->start_pending)
        return;
    agent_event started = *ev;
    started.kind = AGENT_EV_STEP_START;
    started.message = NULL;
    s->start_pending = false;
    send_now(s, "step", &started);
}

static void on_progress(daemon_events_steps *s, const agent_event *ev)
{
    bool first = s->start_pending; /* the first progress goes out with the held `started` */
    send_held_start(s, ev);
    if (!first && pgr_clock_mono_ms() - s->last_progress_ms < 500)
        return; /* at most two progress events a second per job */
    s->last_progress_ms = pgr_clock_mono_ms();
    send_now(s, "progress", ev);
}

void daemon_events_steps_cb(const agent_event *ev, void *user)
{
    daemon_events_steps *s = user;
    switch (ev->kind) {
    case AGENT_EV_STEP_START:
        if (start_now(s, ev))
            send_now(s, "step", ev);
        return;
    case AGENT_EV_STEP_DONE:
    case AGENT_EV_STEP_SKIPPED:
    case AGENT_EV_STEP_FAILED:
    case AGENT_EV_STEP_RETRY:
        if (ev->kind == AGENT_EV_STEP_DONE && ev->step_kind != NULL) {
            char labels[64];
            snprintf(labels, sizeof(labels), "kind=\"%s\"", ev->step_kind);
            pgr_metrics_observe(s->d->metrics, "pgrollout_agent_step_duration_seconds",
                                "how long steps took, by kind", labels,
                                (double)ev->duration_ms / 1000.0);
        }
        s->start_pending = false; /* this state says the step began */
        if (ev->kind == AGENT_EV_STEP_DONE && is_index(ev))
            hold_done(s, ev);
        else
            send_now(s, "step", ev);
        return;
    case AGENT_EV_AUDIT:
        s->t->audit_dirty = 1; /* committed: the publisher visits this tenant next second */
        return;
    case AGENT_EV_STEP_PROGRESS:
        on_progress(s, ev);
        return;
    case AGENT_EV_STEP_TICK:
        send_held_start(s, ev);
        return;
    default:
        return;
    }
}
