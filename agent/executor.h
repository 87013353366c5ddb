/*
 * executor.h - applies, rolls back and verifies migrations on one tenant database.
 *
 * The same code serves `pgrollout-agent apply` on the command line and signed Kafka jobs in the
 * daemon: a job goes in (migrations + options), events come out through a callback (job and
 * step start/done/failed, index build progress, audit records). Rules are DESIGN.md section 6:
 * one runner per database (advisory lock), lock_timeout/statement_timeout on every session,
 * retries with backoff for lock timeouts, deadlocks and lost connections, CREATE INDEX
 * CONCURRENTLY with recovery of invalid leftovers, foreign keys with orphan checks, NOT VALID
 * then VALIDATE, resumable after a crash at any point, and an audit record for every action.
 */
#ifndef AGENT_EXECUTOR_H
#define AGENT_EXECUTOR_H

#include "pgr/error.h"
#include "pgr/job.h"
#include "pgr/migration.h"

#include <jansson.h>

#include <stdatomic.h>
#include <stdbool.h>

struct pg_conn; /* libpq's PGconn */

typedef enum agent_event_kind {
    AGENT_EV_JOB_START,
    AGENT_EV_MIGRATION_START,
    AGENT_EV_STEP_START,
    AGENT_EV_STEP_PROGRESS,
    AGENT_EV_STEP_RETRY,
    AGENT_EV_STEP_DONE,
    AGENT_EV_STEP_SKIPPED,
    AGENT_EV_STEP_FAILED,
    AGENT_EV_MIGRATION_DONE,
    AGENT_EV_JOB_DONE,
    AGENT_EV_AUDIT,
    /* an index build still runs: at each progress poll (every 250 ms), whether or not
     * PostgreSQL reports progress yet (it does not while the build waits for its table lock) */
    AGENT_EV_STEP_TICK,
} agent_event_kind;

typedef struct agent_event {
    agent_event_kind kind;
    const char *tenant_id;
    const char *job_id;
    const char *version; /* migration, when the event concerns one */
    const char *name;
    int step; /* 1-based step number, 0 when none */
    int step_count;
    const char *step_kind;
    const char *object; /* "index idx_x on users" */
    bool phi;
    const char *phase; /* index build phase (progress) */
    long long blocks_done, blocks_total, tuples_done, tuples_total;
    double percent; /* -1 when unknown */
    long long duration_ms;
    int attempt;            /* retries */
    const char *message;    /* failure or detail, never PHI */
    const char *audit_json; /* AGENT_EV_AUDIT: the canonical record bytes */
} agent_event;

typedef void (*agent_event_cb)(const agent_event *ev, void *user);

typedef enum agent_orphans {
    AGENT_ORPHANS_FILE = 0,
    AGENT_ORPHANS_ABORT,
    AGENT_ORPHANS_QUARANTINE
} agent_orphans;

typedef struct agent_exec_opts {
    const char *dsn;           /* libpq connection string; "" = PG* environment */
    const char *tenant_id;     /* for records and events; defaults to the database name */
    const char *job_id;        /* UUID; generated when NULL */
    const char *operator_name; /* who approved; defaults to $USER */
    const char *agent_id;
    const char *target;     /* apply: highest version to apply (NULL = all) */
    const char *backup_dir; /* pg_dump -Fc here before the first step (NULL = no backup) */
    int lock_timeout_ms;
    int statement_timeout_ms;
    int retries;
    int retry_base_ms;     /* first backoff delay (doubles each retry, plus jitter) */
    agent_orphans orphans; /* overrides the file's orphan policy when not FILE */
    agent_event_cb cb;
    void *cb_user;
    const atomic_int *cancel; /* set non-zero to stop before the next step (may be NULL) */
    char *from_version;       /* out (may be NULL, 15 bytes): highest applied version before the
                                 job ran ("0" when none), so a rollback can return there */
    int *verified; /* apply, in/out (may be NULL): when set, the checks of verify run after the
                      last step, under the job's lock and before its end is recorded; *verified
                      becomes 1 (nothing found), 0 (problems: the job fails with PGR_ERR_DRIFT)
                      or stays -1 (the check could not run, or the job failed before it) */
    struct agent_connpool *pool; /* the daemon's kept session of the tenant (may be NULL) */
    /* The daemon's audit barrier (NULL for `pgrollout-agent apply`, which has no Kafka): called
     * on the job's session, outside a transaction, before each attempt of each step, after the
     * step's step_start record. It returns PGR_OK only once every audit record of the tenant
     * written so far is acknowledged by Kafka (acks=all); otherwise the step does not run and
     * is retried like a lost connection (docs/SECURITY.md, "Hostile migration author"). */
    pgr_code (*audit_barrier)(struct pg_conn *conn, void *user, pgr_error *err);
    void *audit_barrier_user;
    /* The role the author's SQL runs as (SET ROLE, RESET ROLE after): NULL for tenant_owner when
     * that role exists and the agent's role, not a superuser, is a member of it; "none" (or "")
     * for the agent's own role. A role named here must exist and have the agent's role as a
     * member, or the job fails. It keeps ordinary statements off the agent's state; SQL that
     * runs RESET ROLE itself gets past it (the audit barrier is the guarantee). */
    const char *owner_role;
    /* the release manifests (digests) and release keys (kids) that allowed the job, added to its
     * job_accepted and migration records (comma-separated; NULL without releases) */
    const char *release_digests, *release_kids;
    /* Intake only: the directory where the last accepted job seq of each tenant is kept beside
     * pgrollout.jobs (seqstore.h); NULL keeps it only in the tenant database. */
    const char *state_dir;
    /* Agent pools (docs/OPERATIONS.md, "Run agents in a pool"): the epoch this agent wrote into
     * pgrollout.owner when it took the tenant over, or 0 (no pool: no fencing). The runner lock
     * then waits up to takeover_ms for a previous owner's session, ends it if it still holds
     * the lock, and every step and job intake checks the epoch is still this one; if not, the
     * job stops without writing anything more, and *fenced (may be NULL) becomes 1. */
    long long fence_epoch;
    int takeover_ms;
    int *fenced;
} agent_exec_opts;

/* Fills defaults: lock timeout 5000 ms, statement timeout 0, 5 retries, base 200 ms. */
void agent_exec_opts_init(agent_exec_opts *o);

/* Applies pending migrations of set (version order) up to o->target.
 * Returns PGR_OK (applied or nothing to do), PGR_ERR_DRIFT, PGR_ERR_LOCKED, or the step error. */
pgr_code agent_exec_apply(const pgr_migration_set *set, const agent_exec_opts *o,
                          pgr_error *err) PGR_MUSTCHECK;

/* Rolls back applied migrations above to_version ("0" = all), newest first, down steps each. */
pgr_code agent_exec_rollback(const pgr_migration_set *set, const char *to_version,
                             const agent_exec_opts *o, pgr_error *err) PGR_MUSTCHECK;

/* One migration's state on a tenant, for status. */
typedef struct agent_status_row {
    char version[PGR_VERSION_LEN + 1];
    char *name;
    char *state; /* applied, pending, running, failed, rolled_back, drift, missing_file */
    char *applied_at;
    char *operator_name;
    char *job_id;
    long long duration_ms;
} agent_status_row;

typedef struct agent_status {
    agent_status_row *rows;
    size_t count;
    bool drift;
} agent_status;

/* Reads schema_migrations (set may be NULL: no drift/pending information). */
pgr_code agent_status_read(const pgr_migration_set *set, const agent_exec_opts *o,
                           agent_status **out, pgr_error *err) PGR_MUSTCHECK;
void agent_status_free(agent_status *s);

/* Checks every object the applied migrations create: indexes exist, are valid and match their
 * definition; foreign keys validated; extensions present. Each mismatch is reported through
 * `report` and counted in *problems. */
pgr_code agent_verify_run(const pgr_migration_set *set, const agent_exec_opts *o,
                          void (*report)(const char *version, const char *object,
                                         const char *problem, void *user),
                          void *user, int *problems, pgr_error *err) PGR_MUSTCHECK;

/* --- the daemon's records of the jobs it receives (jobrec.c) ---------------------------------
 * Each call opens a session on the tenant of o (no runner lock: the intake only appends records,
 * and a job may be running), installs the tenant state when missing, writes, and closes. o names
 * the tenant, the job (job_id, operator_name) and agent.state_dir. */

#define AGENT_REFUSAL_LEN 256 /* the text of a refusal the tenant's records explain */

/* Appends an audit record with action and the members of fields (consumed; may be NULL). */
pgr_code agent_jobrec_audit(const agent_exec_opts *o, const char *action, json_t *fields,
                            pgr_error *err) PGR_MUSTCHECK;

/* In one transaction under the intake lock: the replay and sequence checks (the database's and
 * agent.state_dir's last accepted seq), the pgrollout.jobs row and the job_accepted record. A
 * refusal sets *why ("duplicate", "replay", "stale_seq") and, when the records explain it, the
 * text in refusal (else ""); nothing is written then. PGR_OK also for a refusal. */
pgr_code agent_jobrec_accept(const agent_exec_opts *o, const pgr_job *job, const char *kid,
                             const char *envelope, const char **why,
                             char refusal[AGENT_REFUSAL_LEN], pgr_error *err) PGR_MUSTCHECK;

/* Marks an unfinished job (accepted, running, interrupted) failed with error: it is not tried
 * again. */
pgr_code agent_jobrec_fail(const agent_exec_opts *o, const char *job_id, const char *error,
                           pgr_error *err) PGR_MUSTCHECK;

/* The unfinished jobs of the tenant (job id and envelope, seq order), terminated by a row with
 * job_id NULL; free with agent_jobrec_rows_free. */
typedef struct agent_jobrec_row {
    char *job_id, *envelope;
    char *result; /* agent_jobrec_unreported: the body of the job's result event */
} agent_jobrec_row;
pgr_code agent_jobrec_unfinished(const agent_exec_opts *o, agent_jobrec_row **out, int *n,
                                 pgr_error *err) PGR_MUSTCHECK;

/* The daemon jobs (apply, rollback, verify) that ended but whose result event Kafka has not
 * acknowledged (an agent stopped or died in between), seq order, each with the result body to
 * send again. A job refused before it ran (agent_jobrec_fail) was reported by its security
 * event. */
pgr_code agent_jobrec_unreported(const agent_exec_opts *o, agent_jobrec_row **out, int *n,
                                 pgr_error *err) PGR_MUSTCHECK;

/* With result: keeps the body of the job's result event before it is sent; without (NULL):
 * marks it reported, once Kafka acknowledged it. */
pgr_code agent_jobrec_result(const agent_exec_opts *o, const char *job_id, const char *result,
                             pgr_error *err) PGR_MUSTCHECK;
void agent_jobrec_rows_free(agent_jobrec_row *rows);

/* Pool: in one transaction, raises the owner epoch of the tenant (pgrollout.owner) and names
 * this agent and pool as its owner, with a tenant_taken_over audit record naming the previous
 * owner. *epoch receives the new epoch, the fencing token of this agent's jobs on the tenant:
 * a job of an older epoch stops at its next step, and the intake of an older epoch records
 * nothing (PGR_ERR_LOCKED). */
pgr_code agent_jobrec_take_over(const agent_exec_opts *o, const char *pool, long long *epoch,
                                pgr_error *err) PGR_MUSTCHECK;

/* In one transaction: the job's row becomes succeeded (rc PGR_OK) or failed with error, and its
 * job_end record (with problems when >= 0, a verify job's count). For jobs that ran no executor
 * (verify, cancel, refused before they ran). */
pgr_code agent_jobrec_end(const agent_exec_opts *o, const pgr_job *job, pgr_code rc,
                          const char *error, int problems, long long duration_ms,
                          pgr_error *err) PGR_MUSTCHECK;

#endif
