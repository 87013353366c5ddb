/*
 * daemon_events.h - the daemon's signed events: numbered, signed and produced in order; a job's
 * step and progress events, batched.
 */
#ifndef AGENT_DAEMON_EVENTS_H
#define AGENT_DAEMON_EVENTS_H
#include "daemon_int.h"

/* The step and progress events of one running job (daemon_events.c): an index build's `done` is
 * held up to 100 ms and sent with the following ones as one event (`also_done`); its `started`
 * goes out only once it has run 250 ms. */
typedef struct daemon_events_steps {
    agent_daemon *d;
    daemon_tenant *t;
    const char *job_id;
    long long last_progress_ms;
    int steps_started;  /* steps of this job that began (reported or not) */
    bool start_pending; /* an index build's `started`, held back until it has run 250 ms */
    json_t *held;       /* index builds' `done` bodies not sent yet, in order */
    long long held_since_ms;
} daemon_events_steps;

void daemon_events_steps_init(daemon_events_steps *s, agent_daemon *d, daemon_tenant *t,
                              const char *job_id);
/* The executor's event callback (agent_event_cb); user is the daemon_events_steps. */
void daemon_events_steps_cb(const agent_event *ev, void *user);
/* Sends what is held (before the job's result). */
void daemon_events_steps_flush(daemon_events_steps *s);

/* Signs an event payload (type + fields of body, which is consumed) and produces it. */
void daemon_events_send(agent_daemon *d, const char *type, const char *tenant, const char *job_id,
                        json_t *body);
/* The same, its delivery counted in tr (pgr_kafka_tracker_wait); false when it was not handed
 * to the producer. */
bool daemon_events_send_tracked(agent_daemon *d, const char *type, const char *tenant,
                                const char *job_id, json_t *body, pgr_kafka_tracker *tr);

#endif
