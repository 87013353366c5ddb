/* daemon_int.h - the types the agent daemon's files share: the daemon, its tenants, their queued
 * jobs. Functions live in the daemon_*.h header of the file that defines them. */
#ifndef AGENT_DAEMON_INT_H
#define AGENT_DAEMON_INT_H

#include "connpool.h"
#include "daemon_eventseq.h"
#include "executor.h"

#include "pgr/config.h"
#include "pgr/crypto.h"
#include "pgr/envelope.h"
#include "pgr/job.h"
#include "pgr/kafka.h"
#include "pgr/metrics.h"

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#define DAEMON_REJECTIONS_INTERVAL_MS 5000

/* The envelope-level reasons (8.1 step 2), each counted apart. */
#define DAEMON_REJECTION_REASONS 5

/* Rejections of one tenant and reason not yet recorded. */
typedef struct daemon_rejection_window {
    long long count;
    char reason[24];
    char kid[PGR_KID_LEN]; /* claimed by the first message of the window */
    char detail[256];      /* the first message's */
    char first[PGR_SHA256_HEX_LEN], last[PGR_SHA256_HEX_LEN];
    long long last_record_ms; /* monotonic: when this reason was last recorded */
} daemon_rejection_window;

typedef struct daemon_job {
    pgr_job *job;
    char *envelope;                    /* as received, kept in pgrollout.jobs for resumption */
    char release_digests[16 * 65 + 1]; /* the manifests that allowed it ("" without) */
    char release_kids[16 * 17 + 1];    /* their signers */
    struct daemon_job *next;
} daemon_job;

typedef struct daemon_tenant {
    const pgr_tenant_conf *conf; /* a [tenants] line's, or `found` */
    /* A tenant found on a tenant source (daemon_discover.c), or NULL for a [tenants] line. Its
     * slot is never freed while the daemon runs (workers and the rejections thread point into
     * it); a tenant whose database went away is marked gone, and served again if it returns. */
    const pgr_tenantsrc *source;
    pgr_tenant_conf found;
    atomic_int gone;
    bool seen;         /* listed by its source's last refresh */
    daemon_job *queue; /* accepted, waiting to run (seq order) */
    bool busy;
    pthread_t thread;
    bool joinable;
    atomic_int done;
    atomic_int cancel;      /* 1: shutdown (resume later), 2: a cancel job (abort: stop for good) */
    atomic_int audit_dirty; /* this process wrote audit records that may be unpublished */
    long long audit_visit_ms; /* the publisher's last visit, or the start of the running job */
    agent_connpool pool;      /* the tenant's kept session (connpool.h) */
    daemon_rejection_window rejected[DAEMON_REJECTION_REASONS]; /* counted, not yet recorded */
    char recent[16][PGR_SHA256_HEX_LEN]; /* digests of job messages handled last: a copy sent
                                          * again is absorbed without a database round trip */
    unsigned recent_next;
    /* Pools (daemon_pool.c; without a pool every tenant is owned and taken from the start):
     * owned while this agent holds the jobs partition of the tenant; taken once it recorded
     * itself as the owner in the tenant database (epoch, the fencing token its jobs carry). */
    int partition;
    bool owned, taken;
    atomic_llong epoch;      /* read by workers (their job records) */
    atomic_int fence_lost;   /* a worker or the intake met a newer owner epoch: take it again if
                              * the group still gives this agent the partition */
    long long take_after_ms; /* monotonic: next try of a take-over that failed */
} daemon_tenant;

typedef struct agent_daemon {
    pgr_config *cfg;
    pgr_keypair key;
    pgr_keyring *coordinators;
    pgr_keyring *releases; /* [release] keyring, or NULL: no manifests required */
    pgr_metrics *metrics;  /* [metrics] listen, or NULL: off (pgr_metrics_* then do nothing) */
    rd_kafka_t *producer;
    rd_kafka_t *consumer;
    char topic_jobs[256];
    char topic_events[256];
    char topic_audit[256];
    daemon_tenant *tenants;      /* tenant_cap slots: a slot never moves (workers point into it) */
    _Atomic size_t tenant_count; /* grows on the main thread only, read by the rejections thread */
    size_t tenant_cap;
    bool *held;                 /* pool: the jobs partitions the group gives this agent now */
    long long discover_next_ms; /* monotonic: the next listing of the tenant sources */
    json_t *discover_warned;    /* what discovery warned about once (its text as key) */
    PGconn **source_conns;      /* a kept session per tenant source (main thread only) */
    int active;
    pthread_mutex_t mu; /* event sequence numbers, and their order on the topic */
    daemon_eventseq event_seq;
    atomic_int cancel;             /* set on SIGTERM: executors stop before their next step */
    pthread_mutex_t rejections_mu; /* rejected[] of every tenant (daemon_rejections.c) */
    pthread_t rejections_thread;
    bool rejections_running;
    atomic_int rejections_stop;
    int partitions; /* of the jobs topic */
} agent_daemon;

#endif
