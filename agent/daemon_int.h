/* daemon_int.h - internals of the agent daemon shared by its files. */
#ifndef AGENT_DAEMON_INT_H
#define AGENT_DAEMON_INT_H

#include "connpool.h"
#include "eventseq.h"
#include "executor.h"
#include "rejections.h"

#include "pgr/config.h"
#include "pgr/envelope.h"
#include "pgr/job.h"
#include "pgr/kafka.h"

#include <jansson.h>
#include <pthread.h>
#include <signal.h>

typedef struct daemon_job {
    pgr_job *job;
    char *envelope; /* as received, kept in pgrollout.jobs for resumption */
    struct daemon_job *next;
} daemon_job;

typedef struct daemon_tenant {
    const pgr_tenant_conf *conf;
    daemon_job *queue; /* accepted, waiting to run (seq order) */
    bool busy;
    pthread_t thread;
    bool joinable;
    volatile int done;
    volatile int cancel; /* 1: shutdown (resume later), 2: a cancel job (abort: stop for good) */
    volatile int audit_dirty; /* this process wrote audit records that may be unpublished */
    long long audit_visit_ms; /* the publisher's last visit, or the start of the running job */
    agent_connpool pool;      /* the tenant's kept session (connpool.h) */
    daemon_rejection_window rejected[DAEMON_REJECTION_REASONS]; /* counted, not yet recorded */
    char recent[16][PGR_SHA256_HEX_LEN]; /* digests of job messages handled last: a copy sent
                                          * again is absorbed without a database round trip */
    unsigned recent_next;
} daemon_tenant;

typedef struct agent_daemon {
    pgr_config *cfg;
    pgr_keypair key;
    pgr_keyring *coordinators;
    rd_kafka_t *producer;
    rd_kafka_t *consumer;
    char topic_jobs[256];
    char topic_events[256];
    char topic_audit[256];
    daemon_tenant *tenants;
    size_t tenant_count;
    int active;
    pthread_mutex_t mu; /* event sequence numbers, and their order on the topic */
    agent_eventseq event_seq;
    volatile int cancel;           /* set on SIGTERM: executors stop before their next step */
    pthread_mutex_t rejections_mu; /* rejected[] of every tenant (rejections.c) */
    pthread_t rejections_thread;
    bool rejections_running;
    volatile int rejections_stop;
} agent_daemon;

/* The step and progress events of one running job (stepevents.c): an index build's `done` is
 * held up to 100 ms and sent with the following ones as one event (`also_done`); its `started`
 * goes out only once it has run 250 ms. */
typedef struct daemon_step_events {
    struct agent_daemon *d;
    daemon_tenant *t;
    const char *job_id;
    long long last_progress_ms;
    int steps_started;  /* steps of this job that began (reported or not) */
    bool start_pending; /* an index build's `started`, held back until it has run 250 ms */
    json_t *held;       /* index builds' `done` bodies not sent yet, in order */
    long long held_since_ms;
} daemon_step_events;

void daemon_step_events_init(daemon_step_events *s, struct agent_daemon *d, daemon_tenant *t,
                             const char *job_id);
/* The executor's event callback (agent_event_cb); user is the daemon_step_events. */
void daemon_step_events_cb(const agent_event *ev, void *user);
/* Sends what is held (before the job's result). */
void daemon_step_events_flush(daemon_step_events *s);

/* Signs an event payload (type + fields of body, which is consumed) and produces it. */
void daemon_event(agent_daemon *d, const char *type, const char *tenant, const char *job_id,
                  json_t *body);

/* Verifies, records and queues one message from the jobs topic. A bad message is rejected
 * (security event + audit record) and skipped. Returns false only when a valid job could not be
 * recorded (tenant database unreachable): its offset must not be committed. */
bool daemon_intake(agent_daemon *d, const rd_kafka_message_t *m);

/* Queues the unfinished jobs recorded in each tenant database (restart resumption), each checked
 * as a new job is (keyring in force, tenant, job id); a job that fails is marked failed, audited
 * and reported by a security event. */
void daemon_resume(agent_daemon *d);

/* After a keyring reload: every queued job not yet started is checked again the same way; one
 * signed by a key now revoked or removed leaves the queue, failed, audited and reported. */
void daemon_recheck_queued(agent_daemon *d);

/* Records count unauthenticated rejections of tenant t with one reason: one job_rejected audit
 * record and then one security event carrying the count and the first and last digests (any
 * thread; rejections.c calls it). Returns false, sending nothing, when the record could not be
 * written. */
bool daemon_reject_counted(agent_daemon *d, daemon_tenant *t, const char *reason, const char *kid,
                           const char *detail, long long count, const char *first,
                           const char *last);

daemon_tenant *daemon_tenant_find(agent_daemon *d, const char *id);

/* Runs one job with the executor (worker thread body). */
void daemon_execute(agent_daemon *d, daemon_tenant *t, daemon_job *j);

void daemon_job_free(daemon_job *j);

/* While a tenant's job runs, its records are published at most every AUDIT_BUSY_MS: the job
 * holds the tenant's kept session, so each visit would start a backend of its own (with TLS about
 * 4 ms of the server's CPU); the visit after the job takes the kept session and all its records. */
#define AUDIT_BUSY_MS 5000

/* Publishes unpublished audit records (signed, in seq order) and marks them published once the
 * broker acknowledged them: of the tenants marked audit_dirty, or of every tenant when all; a
 * tenant running a job only once its last visit or the job's start is AUDIT_BUSY_MS ago (at
 * shutdown no job runs any more). now_ms: the monotonic clock in milliseconds. */
void daemon_publish_audit(agent_daemon *d, bool all, long long now_ms);

/* How long one try of the barrier before a step waits for Kafka's acknowledgements, and how
 * long the barrier keeps trying (a Kafka outage pauses the job between two steps) before the
 * step fails, resumable. */
#define AUDIT_BARRIER_MS      5000
#define AUDIT_BARRIER_WAIT_MS 300000

/* The executor's audit barrier (agent_exec_opts.audit_barrier) of a daemon job; user is the
 * job's daemon_step_events. Publishes the tenant's unpublished records through conn, the job's
 * session, and returns once Kafka acknowledged all of them (PGR_OK). With Kafka unreachable it
 * tries again until AUDIT_BARRIER_WAIT_MS passed or the job is stopped (logged); a database
 * error returns at once. Failures are retriable. */
pgr_code daemon_audit_barrier(struct pg_conn *conn, void *user, pgr_error *err);

/* Records the end of a job that the executor does not track (verify, cancel): its final state
 * in pgrollout.jobs and its job_end audit record (outcome from rc, code, duration_ms; a verify
 * job's problems when problems >= 0), in one transaction. error: the message when rc failed. */
void daemon_job_end(agent_daemon *d, daemon_tenant *t, const pgr_job *job, pgr_code rc,
                    const char *error, int problems, long long duration_ms);

/* Writes an audit record (agent_start, agent_stop, keyring_reload) into every tenant's chain;
 * the fields of extra (may be NULL) are added to each record. */
void daemon_audit_all(agent_daemon *d, const char *action, json_t *extra);

#endif
