/*
 * session.h - the runner's database session: connection and settings, transactions, prepared
 * bookkeeping statements, the runner lock, and the audit records that wait for their COMMIT.
 * The lowest layer of the executor: it includes no other executor header but the public one.
 */
#ifndef AGENT_SESSION_H
#define AGENT_SESSION_H
#include "executor.h"

#include "pgr/clock.h"
#include "pgr/uuid.h"

#include <jansson.h>
#include <libpq-fe.h>

/* Advisory lock keys (class "pgro" as an integer, object): the runner lock, held by the session
 * of the job that runs; the intake lock, held by the transaction that accepts a job. */
#define AGENT_LOCK_CLASS        "1886545775"
#define AGENT_LOCK_RUNNER_OBJID "1"
#define AGENT_LOCK_RUNNER       AGENT_LOCK_CLASS ", " AGENT_LOCK_RUNNER_OBJID
#define AGENT_LOCK_INTAKE       AGENT_LOCK_CLASS ", 2"

/* The tenant's owner in an agent pool: one row whose epoch each agent that takes the tenant
 * over raises (agent_jobrec_take_over). A runner of an older epoch stops at its next step. */
#define AGENT_STATE_OWNER_DDL                                                                      \
    "CREATE TABLE IF NOT EXISTS pgrollout.owner (id int PRIMARY KEY CHECK (id = 1),"               \
    " epoch bigint NOT NULL, agent_id text NOT NULL, pool text NOT NULL,"                          \
    " since timestamptz NOT NULL DEFAULT now());"
/* The owner epoch as a column of a bookkeeping query (NULL while no pool ever served it). */
#define AGENT_OWNER_EPOCH_SQL "(SELECT epoch FROM pgrollout.owner WHERE id = 1)"

/* The bookkeeping statements run once or more per step (agent_session_stmt). */
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
    char job_id[PGR_UUID_LEN];
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
    /* The session plans prepared statements generically (agent_session_setup); reset to
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
    /* Bookkeeping statements prepared in this session (agent_session_stmt), valid while
     * session_checked: user SQL may DEALLOCATE them, so every check starts a new generation. */
    bool stmt_ready[AGENT_STMT_COUNT];
    unsigned stmt_gen;
    /* The role the author's SQL runs as ("" for the agent's own), resolved when a job opens
     * (agent_session_open with the lock). */
    char owner_role[64];
    /* Intake (seqstore.c): a job seq to keep in the state directory once the transaction that
     * accepted the job commits (0: none), and the reason of a refusal, for its security event. */
    long long seq_to_keep;
    char refusal[AGENT_REFUSAL_LEN];
    /* Pool: another agent took the tenant over (agent_session_fence_check): nothing more is
     * written, the job stays unfinished for the new owner. */
    bool fenced;
    /* Pool: sessions of a previous owner that held the runner lock and were ended for this
     * one (reported in the job_start audit record). */
    int ended_sessions;
} agent_exec;

/* Runs one of the bookkeeping statements: prepared once per session and generation while the
 * session is checked (no user SQL since), else as a plain parameterised statement. */
pgr_code agent_session_stmt(agent_exec *x, agent_stmt id, const char *sql, int nparams,
                            const char *const *params, PGresult **out,
                            pgr_error *err) PGR_MUSTCHECK;

pgr_code agent_session_begin(agent_exec *x, pgr_error *err) PGR_MUSTCHECK;
pgr_code agent_session_commit(agent_exec *x, pgr_error *err) PGR_MUSTCHECK;
void agent_session_rollback(agent_exec *x);
pgr_code agent_session_reconnect(agent_exec *x, pgr_error *err) PGR_MUSTCHECK;
/* (Re)applies lock_timeout, statement_timeout and search_path to the runner's session. */
pgr_code agent_session_setup(agent_exec *x, pgr_error *err) PGR_MUSTCHECK;
void agent_session_emit(agent_exec *x, agent_event *ev);

/* Connects (a kept session of o->pool first) and, with lock, takes the runner lock. No tenant
 * state is installed: the executor does that under the lock. Closes with agent_session_close. */
pgr_code agent_session_open(agent_exec *x, const agent_exec_opts *o, bool lock,
                            pgr_error *err) PGR_MUSTCHECK;
void agent_session_close(agent_exec *x, bool locked);

/* Keeps the state schema "pgrollout" out of search_path (a role named pgrollout would put it
 * first); again once the schema exists. */
pgr_code agent_session_pin_search_path(agent_exec *x, pgr_error *err) PGR_MUSTCHECK;

/* The runner lock: one runner per tenant database (advisory locks are per database). PGR_ERR_LOCKED
 * when another session holds it. In a pool (o->fence_epoch > 0) it waits for the lock, ends a
 * previous owner's session that still holds it after o->takeover_ms, and checks the owner epoch
 * once it holds the lock. */
pgr_code agent_session_lock(agent_exec *x, pgr_error *err) PGR_MUSTCHECK;
void agent_session_unlock(agent_exec *x);

/* Pool: PGR_ERR_LOCKED (and x->fenced, *o->fenced) unless epoch, the text of pgrollout.owner's
 * epoch as read, is o->fence_epoch; PGR_OK without a pool. */
pgr_code agent_session_fence_check(agent_exec *x, const char *epoch, pgr_error *err) PGR_MUSTCHECK;

/* Forgets the prefetched index states: the catalog may have changed (user SQL, a failure, a new
 * session). */
void agent_session_forget_prefetch(agent_exec *x);

#endif
