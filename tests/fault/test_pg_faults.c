/* test_pg_faults.c - PostgreSQL faults under a running `pgrollout-agent apply` (issue 9).
 *
 * The agent's backend is terminated (pg_terminate_backend) in each kind of step: a plain DDL
 * step in its transaction, a CREATE INDEX CONCURRENTLY build, the foreign key's orphan
 * check/quarantine, its ADD CONSTRAINT ... NOT VALID, its VALIDATE CONSTRAINT, the backup's
 * pg_dump and the bookkeeping of a migration. Each termination is deterministic: the test holds
 * a lock the step needs, waits until pg_locks shows the agent's backend waiting for exactly that
 * lock, terminates it, and releases the lock. Every step and the bookkeeping retry through after
 * a reconnect (exit 0); the backup stops with an error naming the cause and a second apply
 * finishes. Either way the end state is the same: every index valid, the foreign key validated,
 * every step recorded once, the audit chain intact.
 *
 * Also: the tenant's own PostgreSQL server restarted mid-index-build (a private instance the
 * test starts, never the shared one) and a backup directory that runs out of space.
 */
#include "agent_run.h"
#include "pg_private.h"

#include <errno.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <dirent.h>

#define MIGS    PGR_SOURCE_DIR "/migrations"
#define PG_BIN  "/usr/lib/postgresql/15/bin"
#define WAIT_MS 60000

static char out[1 << 20];
static char migdir[64];

/* The White Cross migrations plus one plain DDL step in a transaction (ALTER TABLE needs ACCESS
 * EXCLUSIVE on allergies, which the test can hold back). */
static const char *const ddl_migration =
    "-- test only: a transactional DDL step whose lock the test can hold\n"
    "-- pgrollout:up\n"
    "-- pgrollout:step sql\n"
    "ALTER TABLE allergies ADD COLUMN IF NOT EXISTS pgr_fault_note text;\n"
    "-- pgrollout:down\n"
    "-- pgrollout:step sql\n"
    "ALTER TABLE allergies DROP COLUMN IF EXISTS pgr_fault_note;\n";

#define MIGRATIONS  5  /* four White Cross migrations and the DDL one */
#define UP_STEPS    38 /* 1 FK + 12 + 11 + 2 extensions + 11 indexes + 1 DDL */
#define IDX_COUNT   34
#define FK_NAME     "fk_medication_logs_medication_id"
#define AGENT_APP   "pgrollout-agent"
#define FIRST_INDEX "idx_allergies_severity_active"

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static int setup(void **state)
{
    char cmd[512];
    (void)state;
    snprintf(migdir, sizeof(migdir), "/tmp/pgrfault.XXXXXX");
    assert_non_null(mkdtemp(migdir));
    snprintf(cmd, sizeof(cmd), "cp " MIGS "/*.sql %s/", migdir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "%s/20251107000000-fault-ddl.sql", migdir);
    FILE *f = fopen(cmd, "w");
    assert_non_null(f);
    fputs(ddl_migration, f);
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", migdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Runs `pgrollout-agent CMD --dsn 'dbname=DB' --migrations <migdir> EXTRA` (DB may carry more
 * connection parameters: "tenant port=N"); output in out. Returns the exit status. */
static int run_agent(const char *cmd, const char *db, const char *extra)
{
    char line[2048];
    snprintf(line, sizeof(line), AGENT_BIN " %s --dsn 'dbname=%s' --migrations %s %s", cmd, db,
             migdir, extra);
    return run_cmd(line, out, sizeof(out));
}

/* --- observing the agent ------------------------------------------------------------------ */

/* Polls sql (one row, one column: a pid or 0) until it is non-zero; fails after WAIT_MS. */
static int wait_pid(PGconn *c, const char *sql, const char *what)
{
    for (int waited = 0; waited < WAIT_MS; waited += 50) {
        long pid = itest_scalar(c, sql);
        if (pid > 0)
            return (int)pid;
        sleep_ms(50);
    }
    fail_msg("timed out after %d ms waiting for %s", WAIT_MS, what);
    return 0;
}

/* The agent's runner backend (application_name pgrollout-agent) waiting for a lock on rel
 * (a relation name, optionally with the lock mode it waits for). */
/* The query wait_agent_lock_wait polls (sql holds 1024 bytes). */
static void lock_wait_sql(char *sql, const char *app, const char *rel, const char *mode)
{
    snprintf(sql, 1024,
             "SELECT coalesce(max(a.pid), 0) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = "
             "a.pid WHERE a.datname = current_database() AND a.application_name = '%s' AND NOT "
             "l.granted AND l.locktype = 'relation' AND l.relation = to_regclass('%s') AND "
             "('%s' = '' OR l.mode = '%s')",
             app, rel, mode != NULL ? mode : "", mode != NULL ? mode : "");
}

static int wait_agent_lock_wait(PGconn *c, const char *app, const char *rel, const char *mode)
{
    char sql[1024], what[256];
    lock_wait_sql(sql, app, rel, mode);
    snprintf(what, sizeof(what), "%s to wait for a lock on %s", app, rel);
    return wait_pid(c, sql, what);
}

/* Another session (of this test) waiting for a lock on rel. */
static void wait_session_waits(PGconn *c, int pid, const char *rel)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT coalesce(max(pid), 0) FROM pg_locks WHERE pid = %d AND NOT granted AND "
             "relation = to_regclass('%s')",
             pid, rel);
    wait_pid(c, sql, "the test's session to queue for its lock");
}

static void terminate(PGconn *c, int pid)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)::int", pid);
    assert_int_equal(itest_scalar(c, sql), 1);
    print_message("terminated backend %d\n", pid);
}

static void new_tenant(char *db, size_t len, int orphans)
{
    itest_create_db("fault_pg", db, len);
    itest_load_white_cross(db, 1, orphans);
}

/* --- the end state ------------------------------------------------------------------------- */

/* The audit outbox is one unbroken chain: seq 1..n, each prev_hash the previous hash, each hash
 * SHA-256(prev_hash bytes || record). Returns the number of broken links. */
static long audit_chain_breaks(PGconn *c)
{
    return itest_scalar(
        c, "SELECT count(*) FROM (SELECT seq, prev_hash, hash, record, lag(hash, 1, repeat('0', "
           "64)) OVER (ORDER BY seq) AS want_prev, row_number() OVER (ORDER BY seq) AS n FROM "
           "pgrollout.audit_outbox) o WHERE seq <> n OR prev_hash <> want_prev OR hash <> "
           "encode(sha256(decode(prev_hash, 'hex') || convert_to(record, 'UTF8')), 'hex')");
}

/* Everything applied once: the result of an uninterrupted run. */
static void assert_final_state(const char *db)
{
    PGconn *c = itest_connect(db);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_index i JOIN pg_class x ON x.oid = "
                                     "i.indexrelid WHERE x.relname LIKE 'idx\\_%' AND "
                                     "i.indisvalid AND i.indisready"),
                     IDX_COUNT);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_index WHERE NOT indisvalid"), 0);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_constraint WHERE conname = '" FK_NAME
                                     "' AND convalidated"),
                     1);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_attribute WHERE attrelid = "
                                     "'allergies'::regclass AND attname = 'pgr_fault_note'"),
                     1);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_extension WHERE extname IN "
                                     "('pg_trgm', 'unaccent')"),
                     2);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.schema_migrations WHERE "
                                     "status = 'applied'"),
                     MIGRATIONS);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.schema_migrations"),
                     MIGRATIONS);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.steps WHERE part = 'up' AND "
                                     "phase = 'done'"),
                     UP_STEPS);
    /* each step audited as done exactly once, however many attempts it took */
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM (SELECT 1 FROM pgrollout.audit_outbox "
                                     "WHERE record::jsonb->>'action' = 'step_done' GROUP BY "
                                     "record::jsonb->>'version', record::jsonb->>'step' HAVING "
                                     "count(*) = 1) s"),
                     UP_STEPS);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                     "record::jsonb->>'action' = 'step_done'"),
                     UP_STEPS);
    assert_int_equal(audit_chain_breaks(c), 0);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs WHERE state = "
                                     "'running'"),
                     0);
    PQfinish(c);
    assert_int_equal(run_agent("verify", db, ""), 0);
    assert_non_null(strstr(out, "verify: 0 problem(s)"));
}

/* Drains the agent's JSON events; returns its exit status. Counts "retry" events and keeps the
 * job_done line for the error message. */
static int finish_agent(bg_agent *b, int *retries, char *job_done, size_t len)
{
    char line[65536];
    int st = 0;
    *retries = 0;
    job_done[0] = '\0';
    while (fgets(line, sizeof(line), b->out) != NULL) {
        if (strstr(line, "\"event\":\"retry\"") != NULL)
            (*retries)++;
        if (strstr(line, "\"event\":\"job_done\"") != NULL)
            snprintf(job_done, len, "%s", line);
    }
    fclose(b->out);
    waitpid(b->pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

/* The agent ended successfully after retrying at least once (it reconnected). */
static void expect_retried_through(bg_agent *b)
{
    char done[4096];
    int retries;
    int rc = finish_agent(b, &retries, done, sizeof(done));
    print_message("agent exit %d after %d retry event(s)\n", rc, retries);
    assert_int_equal(rc, 0);
    assert_true(retries >= 1);
}

/* Closes the observer, checks the end state and drops the tenant. */
static void check_and_drop(PGconn *obs, const char *db)
{
    PQfinish(obs);
    assert_final_state(db);
    itest_drop_db(db);
}

/* Opens a session of the test that holds `lock_sql` in an open transaction. */
static PGconn *hold(const char *db, const char *lock_sql)
{
    PGconn *h = itest_connect(db);
    itest_exec(h, "SET application_name = 'pgr-fault-holder'");
    itest_exec(h, "BEGIN");
    itest_exec(h, lock_sql);
    return h;
}

static void release(PGconn *h)
{
    itest_exec(h, "COMMIT");
    PQfinish(h);
}

/* --- terminations, one per kind of step ----------------------------------------------------- */

/* A transactional step (plain DDL): terminated while ALTER TABLE waits for its lock; the retry
 * reconnects and runs the step once. */
static void test_pg_terminate_in_transactional_ddl_step(void **state)
{
    char db[64];
    bg_agent b;
    (void)state;
    new_tenant(db, sizeof(db), 0);
    PGconn *obs = itest_connect(db);
    PGconn *h = hold(db, "LOCK TABLE allergies IN ACCESS SHARE MODE");
    bg_start(&b, "apply", db, migdir, "--lock-timeout 60000");
    int pid = wait_agent_lock_wait(obs, AGENT_APP, "allergies", "AccessExclusiveLock");
    /* everything before the DDL step is done: it is the last step of the last migration */
    assert_int_equal(itest_scalar(obs, "SELECT count(*) FROM pgrollout.steps WHERE phase = "
                                       "'done'"),
                     UP_STEPS - 1);
    terminate(obs, pid);
    release(h);
    expect_retried_through(&b);
    check_and_drop(obs, db);
}

/* CREATE INDEX CONCURRENTLY: terminated while the build waits for a writer of its table (phase
 * "waiting for writers before build"). The build leaves an INVALID index; the retry drops it
 * and builds again. */
static void test_pg_terminate_during_concurrent_index_build(void **state)
{
    char db[64];
    bg_agent b;
    (void)state;
    new_tenant(db, sizeof(db), 0);
    PGconn *obs = itest_connect(db);
    PGconn *h = hold(db, "LOCK TABLE allergies IN ROW EXCLUSIVE MODE");
    bg_start(&b, "apply", db, migdir, "--lock-timeout 60000");
    int pid = wait_pid(obs,
                       "SELECT coalesce(max(p.pid), 0) FROM pg_stat_progress_create_index p JOIN "
                       "pg_stat_activity a ON a.pid = p.pid WHERE a.application_name = '" AGENT_APP
                       "' AND p.datname = current_database() AND p.relid = 'allergies'::regclass "
                       "AND p.phase = 'waiting for writers before build' AND p.command = 'CREATE "
                       "INDEX CONCURRENTLY'",
                       "the first index build to wait for writers");
    /* the build has created its catalog entry: an index not yet valid */
    assert_int_equal(itest_scalar(obs, "SELECT count(*) FROM pg_index WHERE indexrelid = "
                                       "to_regclass('" FIRST_INDEX "') AND NOT indisvalid"),
                     1);
    terminate(obs, pid);
    /* the invalid leftover stays until the agent's retry drops it (never counted as built) */
    assert_int_equal(itest_scalar(obs, "SELECT count(*) FROM pgrollout.steps WHERE phase = 'done' "
                                       "AND object LIKE '%" FIRST_INDEX "%'"),
                     0);
    release(h);
    expect_retried_through(&b);
    assert_int_equal(itest_scalar(obs, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                       "record::jsonb->>'action' = 'invalid_index_dropped' AND "
                                       "record::jsonb->>'object' LIKE '%" FIRST_INDEX "%'"),
                     1);
    check_and_drop(obs, db);
}

/* The foreign key's orphan check with quarantine: terminated while moving the 7 orphans (the
 * INSERT into the quarantine table waits for the test's lock). The whole phase rolls back - the
 * orphans are still in place, nothing is quarantined - and the retry moves each exactly once. */
static void test_pg_terminate_during_fk_orphan_quarantine(void **state)
{
    char db[64];
    bg_agent b;
    (void)state;
    new_tenant(db, sizeof(db), 7);
    PGconn *obs = itest_connect(db);
    itest_exec(obs, "CREATE SCHEMA pgrollout_quarantine; CREATE TABLE "
                    "pgrollout_quarantine.medication_logs (LIKE medication_logs, pgr_job_id text, "
                    "pgr_quarantined_at timestamptz)");
    PGconn *h = hold(db, "LOCK TABLE pgrollout_quarantine.medication_logs IN SHARE MODE");
    bg_start(&b, "apply", db, migdir, "--lock-timeout 60000 --orphans quarantine");
    int pid = wait_agent_lock_wait(obs, AGENT_APP, "pgrollout_quarantine.medication_logs", NULL);
    terminate(obs, pid);
    const char *orphans = "SELECT count(*) FROM medication_logs l WHERE NOT EXISTS (SELECT 1 "
                          "FROM medications m WHERE m.id = l.\"medicationId\") AND "
                          "l.\"medicationId\" IS NOT NULL";
    /* rolled back: still 7 orphans in place, none moved (read before the lock is released) */
    assert_int_equal(itest_scalar(obs, orphans), 7);
    assert_int_equal(itest_scalar(obs, "SELECT count(*) FROM pgrollout_quarantine.medication_logs"),
                     0);
    release(h);
    expect_retried_through(&b);
    assert_int_equal(itest_scalar(obs, orphans), 0);
    assert_int_equal(
        itest_scalar(obs, "SELECT count(DISTINCT id) FROM pgrollout_quarantine.medication_logs"),
        7);
    assert_int_equal(itest_scalar(obs, "SELECT count(*) FROM pgrollout_quarantine.medication_logs"),
                     7);
    check_and_drop(obs, db);
}

/* Stops the FK's phase 1 inside its transaction after ADD CONSTRAINT ... NOT VALID: the test's
 * ROW EXCLUSIVE on medication_logs holds it at LOCK TABLE; then a SHARE lock on pgrollout.steps is
 * taken and the first lock released, so the phase runs up to recording its step and waits there.
 * fk_phase1_wait_recording returns that backend's pid and the session holding pgrollout.steps. */
static PGconn *fk_first_lock;

static void fk_phase1_start(const char *db)
{
    fk_first_lock = hold(db, "LOCK TABLE medication_logs IN ROW EXCLUSIVE MODE");
}

static int fk_phase1_wait_recording(const char *db, PGconn *obs, PGconn **steps_lock)
{
    wait_agent_lock_wait(obs, AGENT_APP, "medication_logs", "ShareRowExclusiveLock");
    *steps_lock = hold(db, "LOCK TABLE pgrollout.steps IN SHARE MODE");
    release(fk_first_lock);
    fk_first_lock = NULL;
    return wait_agent_lock_wait(obs, AGENT_APP, "pgrollout.steps", "RowExclusiveLock");
}

/* The clean case: ADD CONSTRAINT (validating) ran, its transaction not committed (the step's
 * record waits): terminated there, the constraint is gone with the transaction and the retry
 * adds it again. */
static void test_pg_terminate_after_fk_validating_add(void **state)
{
    char db[64];
    bg_agent b;
    PGconn *steps_lock = NULL;
    (void)state;
    new_tenant(db, sizeof(db), 0);
    PGconn *obs = itest_connect(db);
    fk_phase1_start(db);
    bg_start(&b, "apply", db, migdir, "--lock-timeout 60000");
    int pid = fk_phase1_wait_recording(db, obs, &steps_lock);
    terminate(obs, pid);
    assert_int_equal(
        itest_scalar(obs, "SELECT count(*) FROM pg_constraint WHERE conname = '" FK_NAME "'"), 0);
    release(steps_lock);
    expect_retried_through(&b);
    check_and_drop(obs, db);
}

/* VALIDATE CONSTRAINT (only a foreign key with orphans, here quarantined, takes NOT VALID and
 * VALIDATE): the NOT VALID constraint is committed; the test queues for SHARE UPDATE
 * EXCLUSIVE on medication_logs while phase 1 still holds its lock, so it gets the lock the
 * moment phase 1 commits and VALIDATE waits behind it. Terminated there, the retry finds the
 * constraint NOT VALID and only validates it. */
static void test_pg_terminate_during_fk_validate(void **state)
{
    char db[64];
    bg_agent b;
    PGconn *steps_lock = NULL;
    (void)state;
    new_tenant(db, sizeof(db), 4);
    PGconn *obs = itest_connect(db);
    fk_phase1_start(db);
    bg_start(&b, "apply", db, migdir, "--lock-timeout 60000 --orphans quarantine");
    fk_phase1_wait_recording(db, obs, &steps_lock);
    PGconn *v = itest_connect(db);
    itest_exec(v, "BEGIN");
    assert_int_equal(PQsendQuery(v, "LOCK TABLE medication_logs IN SHARE UPDATE EXCLUSIVE MODE"),
                     1);
    wait_session_waits(obs, PQbackendPID(v), "medication_logs");
    release(steps_lock);
    int pid = wait_agent_lock_wait(obs, AGENT_APP, "medication_logs", "ShareUpdateExclusiveLock");
    assert_int_equal(itest_scalar(obs,
                                  "SELECT count(*) FROM pg_constraint WHERE conname = '" FK_NAME
                                  "' AND NOT convalidated"),
                     1);
    terminate(obs, pid);
    PGresult *r;
    while ((r = PQgetResult(v)) != NULL) {
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
    }
    release(v);
    expect_retried_through(&b);
    /* phase 1 ran once: the constraint was found NOT VALID and only validated */
    assert_int_equal(itest_scalar(obs, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                       "record::jsonb->>'action' = 'fk_added_not_valid'"),
                     1);
    check_and_drop(obs, db);
}

/* Files in dir whose name ends in suffix (NULL: all but . and ..). */
static int count_files(const char *dir, const char *suffix)
{
    int n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        size_t len = strlen(e->d_name), sl = suffix != NULL ? strlen(suffix) : 0;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (suffix == NULL || (len >= sl && strcmp(e->d_name + len - sl, suffix) == 0))
            n++;
    }
    closedir(d);
    return n;
}

/* Nothing of the migrations ran: no history row, no step, no index of theirs, no constraint. */
static void assert_nothing_migrated(PGconn *c)
{
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.schema_migrations"), 0);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.steps"), 0);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_class WHERE relname LIKE 'idx\\_%'"),
                     0);
    assert_int_equal(
        itest_scalar(c, "SELECT count(*) FROM pg_constraint WHERE conname = '" FK_NAME "'"), 0);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs WHERE state = 'failed' "
                                     "AND error LIKE '%backup%'"),
                     1);
}

/* The backup: pg_dump's backend terminated while it waits for a table lock. The job stops with
 * an error naming the backup, leaves no file and migrates nothing; the re-run backs up and
 * applies everything. */
static void test_pg_terminate_backup_pg_dump(void **state)
{
    char db[64], done[4096], bdir[64], extra[256];
    int retries;
    bg_agent b;
    (void)state;
    new_tenant(db, sizeof(db), 0);
    snprintf(bdir, sizeof(bdir), "/tmp/pgrfault-bk.XXXXXX");
    assert_non_null(mkdtemp(bdir));
    snprintf(extra, sizeof(extra), "--lock-timeout 60000 --backup %s", bdir);
    PGconn *obs = itest_connect(db);
    PGconn *h = hold(db, "LOCK TABLE allergies IN ACCESS EXCLUSIVE MODE");
    bg_start(&b, "apply", db, migdir, extra);
    int pid = wait_agent_lock_wait(obs, "pg_dump", "allergies", "AccessShareLock");
    terminate(obs, pid);
    int rc = finish_agent(&b, &retries, done, sizeof(done));
    print_message("agent exit %d: %s", rc, done);
    release(h);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(done, "backup"));
    assert_non_null(strstr(done, "nothing was migrated"));
    assert_null(strstr(done, "dbname="));
    assert_int_equal(count_files(bdir, NULL), 0);
    assert_nothing_migrated(obs);
    PQfinish(obs);
    /* the re-run: one verified backup of mode 0600, then every migration */
    rc = run_agent("apply", db, extra);
    if (rc != 0)
        fail_msg("apply after the failed backup: %d\n%s", rc, out);
    assert_int_equal(count_files(bdir, ".dump"), 1);
    assert_final_state(db);
    snprintf(extra, sizeof(extra), "rm -rf %s", bdir);
    assert_int_equal(system(extra), 0);
    itest_drop_db(db);
}

/* Bookkeeping: the session terminated while it records the start of a migration (the INSERT
 * into pgrollout.schema_migrations waits for the test's lock), after the first migration was
 * applied by an earlier run. The status and its audit record are one transaction, rolled back
 * with the session; the agent reconnects, records the start once and finishes. */
static void test_pg_terminate_during_bookkeeping(void **state)
{
    char db[64], done[4096];
    int retries;
    bg_agent b;
    (void)state;
    new_tenant(db, sizeof(db), 0);
    assert_int_equal(run_agent("apply", db, "--target 20251106000000"), 0);
    PGconn *obs = itest_connect(db);
    PGconn *h = hold(db, "LOCK TABLE pgrollout.schema_migrations IN SHARE MODE");
    bg_start(&b, "apply", db, migdir, "--lock-timeout 60000");
    int pid =
        wait_agent_lock_wait(obs, AGENT_APP, "pgrollout.schema_migrations", "RowExclusiveLock");
    terminate(obs, pid);
    /* nothing of the interrupted transaction is left: no status, no audit record */
    assert_int_equal(itest_scalar(obs, "SELECT count(*) FROM pgrollout.schema_migrations WHERE "
                                       "version = '20251106000001'"),
                     0);
    release(h);
    int rc = finish_agent(&b, &retries, done, sizeof(done));
    print_message("agent exit %d: %s", rc, done);
    assert_int_equal(rc, 0);
    assert_int_equal(itest_scalar(obs, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                       "record::jsonb->>'action' = 'migration_start' AND "
                                       "record::jsonb->>'version' = '20251106000001'"),
                     1);
    assert_int_equal(itest_scalar(obs, "SELECT count(*) FROM pgrollout.jobs WHERE state = "
                                       "'succeeded'"),
                     2);
    check_and_drop(obs, db);
}

/* A tmpfs still mounted when the test program ends (a failed test) is unmounted. */
static char mounted_dir[64];

static void unmount_leftover(void)
{
    if (mounted_dir[0] != '\0' && umount(mounted_dir) == 0)
        rmdir(mounted_dir);
}

/* Fills the file system of dir until `leave` bytes are free (the filler is dir/filler). */
static void fill_up(const char *dir, long long leave)
{
    char path[128];
    struct statvfs sv;
    static char zeros[65536];
    assert_int_equal(statvfs(dir, &sv), 0);
    long long to_fill = (long long)sv.f_bavail * (long long)sv.f_frsize - leave;
    snprintf(path, sizeof(path), "%s/filler", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    while (to_fill > 0) {
        size_t n = to_fill < (long long)sizeof(zeros) ? (size_t)to_fill : sizeof(zeros);
        assert_int_equal(fwrite(zeros, 1, n, f), n);
        to_fill -= (long long)n;
    }
    assert_int_equal(fclose(f), 0);
    assert_int_equal(statvfs(dir, &sv), 0);
    print_message("backup directory: %lld bytes free\n",
                  (long long)sv.f_bavail * (long long)sv.f_frsize);
}

/* Disk full during the backup: the backup directory is a tmpfs of 8 MiB filled up to 16 KiB
 * free (the dump needs about 1 MiB). Where mounting is not permitted, a file size limit on the
 * agent (ulimit -f) makes pg_dump's write fail instead. The job stops with an error naming the
 * cause and the file, never the DSN or its password, leaves no file and migrates nothing; with
 * space available again the re-run backs up and applies everything. */
static void test_pg_backup_disk_full(void **state)
{
    char db[64], bdir[64], dbpw[128], extra[256], path[128];
    (void)state;
    new_tenant(db, sizeof(db), 0);
    snprintf(bdir, sizeof(bdir), "/tmp/pgrfault-full.XXXXXX");
    assert_non_null(mkdtemp(bdir));
    bool mounted = mount("tmpfs", bdir, "tmpfs", 0, "size=8m,mode=0700") == 0;
    print_message("backup directory %s: %s\n", bdir,
                  mounted ? "tmpfs of 8 MiB" : "mount not permitted, using ulimit -f");
    if (mounted) {
        snprintf(mounted_dir, sizeof(mounted_dir), "%s", bdir);
        atexit(unmount_leftover);
        fill_up(bdir, 16384);
    }
    /* a password in the DSN (trust authentication ignores it) must not reach any message */
    snprintf(dbpw, sizeof(dbpw), "%s password=s3cret-fault-pw", db);
    snprintf(extra, sizeof(extra), "--backup %s", bdir);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "%s " AGENT_BIN " apply --dsn 'dbname=%s' --migrations %s --backup %s --json",
             mounted ? "" : "ulimit -f 32 &&", dbpw, migdir, bdir);
    int rc = run_cmd(cmd, out, sizeof(out));
    print_message("agent exit %d\n", rc);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "backup failed, nothing was migrated: "));
    assert_non_null(strstr(out, mounted ? "no space left on the backup device"
                                        : "the file size limit was reached"));
    assert_non_null(strstr(out, bdir));
    assert_null(strstr(out, "s3cret-fault-pw"));
    assert_null(strstr(out, "password"));
    assert_int_equal(count_files(bdir, ".dump"), 0);
    PGconn *obs = itest_connect(db);
    assert_nothing_migrated(obs);
    assert_null(strstr(out, "\"event\":\"step_start\""));
    PQfinish(obs);
    /* space again: the re-run takes a verified backup and applies every migration */
    snprintf(path, sizeof(path), "%s/filler", bdir);
    if (mounted)
        assert_int_equal(unlink(path), 0);
    rc = run_agent("apply", dbpw, extra);
    if (rc != 0)
        fail_msg("apply with space available: %d\n%s", rc, out);
    assert_int_equal(count_files(bdir, ".dump"), 1);
    assert_final_state(db);
    if (mounted)
        assert_int_equal(umount(bdir), 0);
    mounted_dir[0] = '\0';
    snprintf(cmd, sizeof(cmd), "rm -rf %s", bdir);
    assert_int_equal(system(cmd), 0);
    itest_drop_db(db);
}

/* A private instance with White Cross loaded into database fault_restart; db receives its
 * "dbname host port" form. */
static void private_tenant(pg_private *p, char *db, size_t len)
{
    pgp_start(p);
    pgp_create_db(p, "fault_restart");
    pgp_load_white_cross(p, "fault_restart");
    pgp_db(p, "fault_restart", db, len);
}

/* Runs apply on the private tenant (retries enough to outlast a restart) while the test holds
 * lock_sql; once wait_sql finds the agent waiting for it, restarts the server (which ends the
 * holder's session too). Returns the agent's exit status. */
static int apply_through_restart(pg_private *p, const char *db, const char *lock_sql,
                                 const char *wait_sql, const char *what, int *retries)
{
    char done[4096];
    bg_agent b;
    PGconn *obs = itest_connect(db);
    PGconn *h = hold(db, lock_sql);
    bg_start(&b, "apply", db, migdir, "--lock-timeout 60000 --retries 10");
    wait_pid(obs, wait_sql, what);
    long before = itest_scalar(obs, "SELECT count(*) FROM pgrollout.steps WHERE phase = 'done'");
    print_message("restarting the tenant server after %ld step(s) done\n", before);
    PQfinish(obs);
    pgp_restart(p);
    PQfinish(h);
    int rc = finish_agent(&b, retries, done, sizeof(done));
    print_message("agent exit %d after %d retry event(s) %s", rc, *retries, done);
    return rc;
}

/* The tenant's server restarted (pg_ctl restart -m fast) while an index build of the second
 * migration waits for a writer: a private instance, never the shared one. The build's session
 * dies; the agent retries with its reconnect and backoff once the server is back, drops the
 * invalid leftover and builds again: exit 0, the catalog as after an uninterrupted run. */
static void test_pg_tenant_server_restart_mid_index_builds(void **state)
{
    pg_private P = {{0}, 0};
    char db[128];
    int retries;
    (void)state;
    private_tenant(&P, db, sizeof(db));
    int rc = apply_through_restart(
        &P, db, "LOCK TABLE users IN ROW EXCLUSIVE MODE",
        "SELECT coalesce(max(p.pid), 0) FROM pg_stat_progress_create_index p JOIN "
        "pg_stat_activity a ON a.pid = p.pid WHERE a.application_name = '" AGENT_APP
        "' AND p.relid = 'users'::regclass AND p.phase = 'waiting for writers before build'",
        "an index build on users to wait for writers", &retries);
    assert_int_equal(rc, 0);
    assert_true(retries >= 1);
    assert_final_state(db);
    pgp_stop(&P);
}

/* The tenant's server restarted while the agent records the start of the second migration
 * (between two migrations: no step is running). The agent reconnects once the server is back,
 * records the start once and finishes: exit 0, the same end state. */
static void test_pg_tenant_server_restart_between_migrations(void **state)
{
    pg_private P = {{0}, 0};
    char db[128], sql[1024];
    int retries;
    (void)state;
    private_tenant(&P, db, sizeof(db));
    assert_int_equal(run_agent("apply", db, "--target 20251106000000"), 0);
    lock_wait_sql(sql, AGENT_APP, "pgrollout.schema_migrations", "RowExclusiveLock");
    int rc = apply_through_restart(&P, db, "LOCK TABLE pgrollout.schema_migrations IN SHARE MODE",
                                   sql, "the agent to record the second migration", &retries);
    assert_int_equal(rc, 0);
    assert_final_state(db);
    pgp_stop(&P);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg_terminate_in_transactional_ddl_step),
        cmocka_unit_test(test_pg_terminate_during_concurrent_index_build),
        cmocka_unit_test(test_pg_terminate_during_fk_orphan_quarantine),
        cmocka_unit_test(test_pg_terminate_after_fk_validating_add),
        cmocka_unit_test(test_pg_terminate_during_fk_validate),
        cmocka_unit_test(test_pg_terminate_backup_pg_dump),
        cmocka_unit_test(test_pg_terminate_during_bookkeeping),
        cmocka_unit_test(test_pg_backup_disk_full),
        cmocka_unit_test(test_pg_tenant_server_restart_mid_index_builds),
        cmocka_unit_test(test_pg_tenant_server_restart_between_migrations),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
