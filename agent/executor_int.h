/*
 * executor_int.h - internals shared by the executor's files (state, audit, steps, backup).
 */
#ifndef AGENT_EXECUTOR_INT_H
#define AGENT_EXECUTOR_INT_H

#include "executor.h"

#include "pgr/clock.h"
#include "pgr/parse.h"

#include <jansson.h>
#include <libpq-fe.h>

#define AGENT_UUID_LEN 37

/* One executor run: the connection, identities, and audit records waiting for COMMIT. */
/* The bookkeeping statements run once or more per step (agent_exec_stmt). */
typedef enum agent_stmt {
    AGENT_STMT_STEP_PHASE,
    AGENT_STMT_STEP_RECORD,
    AGENT_STMT_INDEX_DONE,
    AGENT_STMT_AUDIT_APPEND,
    AGENT_STMT_COUNT
} agent_stmt;

/* What agent_index_prefetch read about one index or drop_index step. */
typedef struct agent_index_info {
    const pgr_step *step;
    bool found, valid, used;
    char *def;
} agent_index_info;

typedef struct agent_exec {
    const agent_exec_opts *o;
    PGconn *conn;          /* the runner's session: holds the advisory lock */
    PGconn *progress_conn; /* second session polling pg_stat_progress_create_index */
    char tenant[129];
    char job_id[AGENT_UUID_LEN];
    char operator_name[129];
    char **pending_audit; /* canonical records inserted in the open transaction */
    size_t pending_count;
    /* The session's settings and runner lock were checked, and only SQL the agent generates or
     * lint holds to one index or constraint statement ran since: the next step need not check
     * them again (agent_state_step_check). Cleared by a new session, user SQL and failures. */
    bool session_checked;
    /* The current migration part began in this run (its step records were cleared in the
     * same transaction as its status): a step's first attempt finds no phase recorded, so,
     * with a checked session, nothing needs to be read before it. */
    bool part_fresh;
    /* The session plans prepared statements generically (agent_exec_session_setup); reset to
     * the server's setting before each step that runs the author's SQL, whose PL/pgSQL and
     * PREPAREd statements must plan as they would without pgrollout, and set again by the check
     * before the step after it (agent_state_step_check). */
    bool generic_plans;
    /* Index states of the current migration part, read in one query before its steps; each
     * entry answers one look-up (the pre-check), later ones query the catalog. */
    agent_index_info *index_info;
    size_t index_info_count;
    /* The audit chain head as this session last wrote it (audit.c): the next record is appended
     * on the condition that the head is still this, saving the read of the head; another session
     * may have appended meanwhile, and then the head is read again. */
    bool head_known;
    long long head_seq;
    char head_hash[65];
    /* Bookkeeping statements prepared in this session (agent_exec_stmt), valid while
     * session_checked: user SQL may DEALLOCATE them, so every check starts a new generation. */
    bool stmt_ready[AGENT_STMT_COUNT];
    unsigned stmt_gen;
    /* The role the author's SQL runs as ("" for the agent's own), resolved when a job opens
     * (agent_exec_open with the lock). */
    char owner_role[64];
    /* Intake (seqstore.c): a job seq to keep in the state directory once the transaction that
     * accepted the job commits (0: none), and the reason of a refusal, for its security event. */
    long long seq_to_keep;
    char refusal[256];
} agent_exec;

/* Runs one of the bookkeeping statements: prepared once per session and generation while the
 * session is checked (no user SQL since), else as a plain parameterised statement. */
pgr_code agent_exec_stmt(agent_exec *x, agent_stmt id, const char *sql, int nparams,
                         const char *const *params, PGresult **out, pgr_error *err) PGR_MUSTCHECK;

/* --- session (executor.c) --- */
pgr_code agent_exec_begin(agent_exec *x, pgr_error *err) PGR_MUSTCHECK;
pgr_code agent_exec_commit(agent_exec *x, pgr_error *err) PGR_MUSTCHECK;
void agent_exec_rollback_txn(agent_exec *x);
pgr_code agent_exec_reconnect(agent_exec *x, pgr_error *err) PGR_MUSTCHECK;
/* (Re)applies lock_timeout, statement_timeout and search_path to the runner's session. */
pgr_code agent_exec_session_setup(agent_exec *x, pgr_error *err) PGR_MUSTCHECK;
void agent_exec_emit(agent_exec *x, agent_event *ev);

/* --- tenant state (state.c) --- */
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
pgr_code agent_state_lock(agent_exec *x, pgr_error *err) PGR_MUSTCHECK;
void agent_state_unlock(agent_exec *x);
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

/* --- audit (audit.c) --- */
/* Appends a record to pgrollout.audit_outbox with the next seq and the chained hash, inside the
 * open transaction when there is one (emitted on COMMIT), else in its own. rec is consumed. */
pgr_code agent_audit_append(agent_exec *x, json_t *rec, pgr_error *err) PGR_MUSTCHECK;
/* Outside a transaction, one statement: records an index step done (row, with phase done) and
 * appends rec (taken), only when the index `name` exists valid and ready in the schema of
 * `table` (quoted, as agent_index_lookup finds it). *recorded says whether it did; false with
 * PGR_OK: the index is invalid or missing, nothing written. */
pgr_code agent_audit_index_done(agent_exec *x, json_t *rec, const agent_step_row *row,
                                const char *name, const char *table, bool *recorded,
                                pgr_error *err) PGR_MUSTCHECK;
/* A new record with action and the common fields (tenant, job, operator, agent). */
json_t *agent_audit_new(agent_exec *x, const char *action);
/* A job_end record: type, outcome (from rc), code, duration_ms; the executor's jobs and the
 * daemon's verify and cancel jobs add their own fields (verified, problems). */
json_t *agent_audit_job_end(agent_exec *x, const char *type, pgr_code rc, long long duration_ms);
/* Adds version/step/kind/object/phi/sql_sha256 of a step. */
void agent_audit_step_fields(json_t *rec, const pgr_migration *m, const pgr_step *s);

/* --- owner role (steps.c) --- */
/* Resolves x->owner_role from x->o->owner_role (see agent_exec_opts). */
pgr_code agent_step_owner_resolve(agent_exec *x, pgr_error *err) PGR_MUSTCHECK;

/* --- steps (steps.c) --- */
#define AGENT_OBJECT_LEN 512 /* pgr_step_describe of a step, for events */
/* An event about step s (kind, migration, step number, object into obj, phi); the caller adds
 * what the kind carries. */
void agent_step_event(agent_event *ev, agent_event_kind kind, const pgr_migration *m,
                      const pgr_step *s, int count, char obj[AGENT_OBJECT_LEN]);
/* Runs a step with retries and backoff; skips it when already done. */
pgr_code agent_step_run(agent_exec *x, const pgr_migration *m, const pgr_step *s, int count,
                        pgr_error *err) PGR_MUSTCHECK;

/* Before attempt + 1 of something that failed transiently: waits the backoff (base * 2^attempt,
 * at most 30 s, plus jitter) and reconnects when the connection was lost. False when the reconnect
 * was refused for good (another runner holds the tenant): *err then says why. */
bool agent_step_backoff(agent_exec *x, int attempt, pgr_error *err) PGR_MUSTCHECK;

/* Records a step as done (history row + audit record) in the open transaction. */
pgr_code agent_step_record_done(agent_exec *x, const pgr_migration *m, const pgr_step *s,
                                long long dur, const char *outcome, pgr_error *err) PGR_MUSTCHECK;

/* The audit record step_done of a finished step (not yet appended). */
json_t *agent_step_done_record(agent_exec *x, const pgr_migration *m, const pgr_step *s,
                               long long dur, const char *outcome);

/* Records a step as done in a transaction of its own (steps that ran outside one). */
pgr_code agent_step_finish(agent_exec *x, const pgr_migration *m, const pgr_step *s, long long dur,
                           pgr_error *err) PGR_MUSTCHECK;

/* --- foreign keys (fk.c) --- */
pgr_code agent_fk_run(agent_exec *x, const pgr_migration *m, const pgr_step *s, const char *phase,
                      pgr_error *err) PGR_MUSTCHECK;

/* Constraint state: 0 absent, 1 present NOT VALID, 2 validated. */
pgr_code agent_fk_state(agent_exec *x, const pgr_step *s, int *state, pgr_error *err) PGR_MUSTCHECK;

/* Opens a session without the runner lock (status, verify); closes with agent_exec_close. */
pgr_code agent_exec_open(agent_exec *x, const agent_exec_opts *o, bool lock,
                         pgr_error *err) PGR_MUSTCHECK;
void agent_exec_close(agent_exec *x, bool locked);

/* --- indexes (index.c) --- */
pgr_code agent_index_run(agent_exec *x, const pgr_migration *m, const pgr_step *s, int count,
                         const char *phase, pgr_error *err) PGR_MUSTCHECK;
/* State of an index by name in the step's schema: found, valid, definition (malloc'd). */
pgr_code agent_index_lookup(agent_exec *x, const pgr_step *s, bool *found, bool *valid, char **def,
                            pgr_error *err) PGR_MUSTCHECK;
/* Reads the state of every index and drop_index step of steps[0..n) in one query (one round trip
 * instead of one per step; 34 in the White Cross set); drop_index steps only when with_drops (the
 * executor does not look them up, verify does). Best effort: on any failure nothing is
 * kept and each step queries on its own. */
void agent_index_prefetch(agent_exec *x, const pgr_step *steps, size_t n, bool with_drops);
/* The checks of verify on the job's own session, after a successful apply (opts.verified): sets
 * *verified to 1 or 0 (then returns PGR_ERR_DRIFT); leaves it when a look-up failed. */
pgr_code agent_exec_check_applied(agent_exec *x, const pgr_migration_set *set, int *verified,
                                  pgr_error *err);
/* Like agent_index_lookup, answered by the prefetch when it holds s, once. */
pgr_code agent_index_lookup_first(agent_exec *x, const pgr_step *s, bool *found, bool *valid,
                                  char **def, pgr_error *err) PGR_MUSTCHECK;
/* Forgets the prefetch: the catalog may have changed (user SQL, a failure, a new session). */
void agent_index_forget(agent_exec *x);

/* --- backup (backup.c) --- */
pgr_code agent_backup_run(agent_exec *x, pgr_error *err) PGR_MUSTCHECK;

/* Crash-test failpoint: when the environment variable PGR_FAILPOINT equals name, the process
 * kills itself with SIGKILL right here (tests of resumption; never set in production). */
void agent_failpoint(const char *name);

#endif
