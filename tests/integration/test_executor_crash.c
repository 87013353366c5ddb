/* test_executor_crash.c - resumption after SIGKILL, on larger tenants: the agent is killed in
 * the middle of a long index build (seen through its progress events), while its foreign-key
 * transaction waits for a lock, and between ADD CONSTRAINT ... NOT VALID and VALIDATE; the next
 * apply finishes with the catalog identical to an uninterrupted run and no step recorded twice.
 * Also: progress percentages increase during a large index build. Scale 20 tenants. */
#include "agent_run.h"

#include <jansson.h>

#include <sys/stat.h>

#define MIGS PGR_SOURCE_DIR "/migrations"

static char out[1 << 20];
static char migdir[64];
static char *reference; /* catalog after an uninterrupted run */

/* The White Cross migrations plus one on a 4M-row table, so one index build takes seconds. */
static const char *const big_migration =
    "-- test only: a large table's index, to observe and interrupt a long build\n"
    "-- pgrollout:up\n"
    "-- pgrollout:step index name=idx_pgr_big_note table=pgr_big\n"
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_pgr_big_note ON pgr_big USING btree (note);\n"
    "-- pgrollout:down\n"
    "-- pgrollout:step drop_index name=idx_pgr_big_note table=pgr_big\n"
    "DROP INDEX CONCURRENTLY IF EXISTS idx_pgr_big_note;\n";

static void new_tenant_orphans(char *db, size_t len, int orphans)
{
    itest_create_db("itest_crash", db, len);
    itest_load_white_cross(db, 20, orphans);
    PGconn *c = itest_connect(db);
    itest_exec(c, "CREATE TABLE pgr_big AS SELECT g AS id, md5(g::text) AS note FROM "
                  "generate_series(1, 4000000) g");
    itest_exec(c, "ANALYZE pgr_big");
    PQfinish(c);
}

static void new_tenant(char *db, size_t len)
{
    new_tenant_orphans(db, len, 0);
}

/* Progress events of the big build in an agent's --json output: percentages never go down,
 * stay within 0..100, and take at least three distinct values. */
static void check_progress_increases(const char *json_lines)
{
    double last = -1;
    int distinct = 0;
    for (const char *p = json_lines; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
        if (strstr(p, "\"event\":\"progress\"") != NULL && strstr(p, "idx_pgr_big_note") != NULL &&
            (size_t)(strstr(p, "idx_pgr_big_note") - p) < n) {
            json_t *ev = json_loadb(p, n, 0, NULL);
            assert_non_null(ev);
            double pct = json_real_value(json_object_get(ev, "percent"));
            assert_true(pct >= last && pct <= 100.0);
            distinct += pct > last;
            last = pct;
            json_decref(ev);
        }
        p = nl != NULL ? nl + 1 : NULL;
    }
    print_message("big index build: %d distinct progress values, last %.1f%%\n", distinct, last);
    assert_true(distinct >= 3);
}

static int setup(void **state)
{
    char path[256], db[64];
    (void)state;
    snprintf(migdir, sizeof(migdir), "/tmp/pgrcrash.XXXXXX");
    assert_non_null(mkdtemp(migdir));
    snprintf(path, sizeof(path), "cp " MIGS "/*.sql %s/", migdir);
    assert_int_equal(system(path), 0);
    snprintf(path, sizeof(path), "%s/20251107000000-big-index.sql", migdir);
    FILE *f = fopen(path, "w");
    fputs(big_migration, f);
    fclose(f);
    new_tenant(db, sizeof(db));
    assert_int_equal(agent("apply", db, migdir, "--json", out, sizeof(out)), 0);
    check_progress_increases(out);
    PGconn *c = itest_connect(db);
    reference = catalog_snapshot(c);
    assert_non_null(strstr(reference, "idx_pgr_big_note"));
    PQfinish(c);
    itest_drop_db(db);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(reference);
    return 0;
}

/* The next apply finishes; catalog as uninterrupted; every step recorded once. */
static void finish_and_compare(const char *db)
{
    assert_int_equal(agent("apply", db, migdir, "", out, sizeof(out)), 0);
    PGconn *c = itest_connect(db);
    char *snap = catalog_snapshot(c);
    assert_string_equal(snap, reference);
    free(snap);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_index WHERE NOT indisvalid"), 0);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.steps WHERE part = 'up' AND "
                                     "phase = 'done'"),
                     38);
    assert_int_equal(itest_scalar(c, "SELECT coalesce(max(n), 0) FROM (SELECT count(*) n FROM "
                                     "pgrollout.audit_outbox WHERE record::jsonb->>'action' = "
                                     "'step_done' GROUP BY record::jsonb->>'version', "
                                     "record::jsonb->>'part', record::jsonb->>'step') s"),
                     1);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.schema_migrations WHERE "
                                     "status = 'applied'"),
                     5);
    assert_int_equal(agent("verify", db, migdir, "", out, sizeof(out)), 0);
    PQfinish(c);
}

/* Waits until no backend of a killed agent is left in db (they notice within a second). */
static void wait_agent_backends_gone(const char *db)
{
    char sql[256];
    PGconn *c = itest_connect("postgres");
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND application_name "
             "LIKE 'pgrollout-agent%%'",
             db);
    for (int i = 0; i < 100 && itest_scalar(c, sql) > 0; i++) {
        struct timespec t = {0, 100000000L};
        nanosleep(&t, NULL);
    }
    assert_int_equal(itest_scalar(c, sql), 0);
    PQfinish(c);
}

static void test_crash_kill_during_long_index_build(void **state)
{
    char db[64];
    bg_agent b;
    (void)state;
    new_tenant(db, sizeof(db));
    bg_start(&b, "apply", db, migdir, "");
    /* kill as soon as the big build reports real progress */
    for (;;) {
        const char *line = bg_wait_for(&b, "\"event\":\"progress\"", "idx_pgr_big_note");
        assert_non_null(line);
        json_t *ev = json_loads(line, 0, NULL);
        double pct = json_real_value(json_object_get(ev, "percent"));
        json_decref(ev);
        if (pct > 0) {
            print_message("killing the agent at %.1f%% of the big index build\n", pct);
            break;
        }
    }
    bg_kill(&b);
    wait_agent_backends_gone(db);
    /* The agent died mid-build. Its backend either stopped too (an INVALID index is left) or,
     * when it noticed the dead client only after finishing, completed the build (a valid index
     * the agent never recorded, phase "building"). Both must resume to the same catalog. */
    PGconn *c = itest_connect(db);
    long invalid = itest_scalar(c, "SELECT count(*) FROM pg_index WHERE NOT indisvalid AND "
                                   "indexrelid = 'idx_pgr_big_note'::regclass");
    long building = itest_scalar(c, "SELECT count(*) FROM pgrollout.steps WHERE phase = "
                                    "'building' AND object LIKE '%idx_pgr_big_note%'");
    print_message("after the kill: invalid leftover %ld, recorded as building %ld\n", invalid,
                  building);
    assert_int_equal(building, 1);
    PQfinish(c);
    finish_and_compare(db);
    itest_drop_db(db);
}

static void test_crash_kill_while_fk_transaction_waits_for_lock(void **state)
{
    char db[64];
    bg_agent b;
    (void)state;
    new_tenant(db, sizeof(db));
    PGconn *holder = itest_connect(db);
    itest_exec(holder, "BEGIN");
    itest_exec(holder, "UPDATE medications SET name = name WHERE false");
    bg_start(&b, "apply", db, migdir, "--lock-timeout 30000");
    assert_non_null(bg_wait_for(&b, "\"event\":\"step_start\"", "\"kind\":\"foreign_key\""));
    struct timespec t = {0, 300000000L};
    nanosleep(&t, NULL);
    bg_kill(&b);
    itest_exec(holder, "COMMIT");
    wait_agent_backends_gone(db);
    PGconn *c = itest_connect(db);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_constraint WHERE conname = "
                                     "'fk_medication_logs_medication_id'"),
                     0);
    PQfinish(c);
    PQfinish(holder);
    finish_and_compare(db);
    itest_drop_db(db);
}

/* Only a foreign key with orphans goes through NOT VALID and VALIDATE in two transactions (the
 * clean case adds it validated in one): orphans quarantined, the agent killed between the two. */
static void test_crash_between_not_valid_and_validate(void **state)
{
    char db[64];
    (void)state;
    new_tenant_orphans(db, sizeof(db), 5);
    setenv("PGR_FAILPOINT", "fk_after_not_valid", 1);
    int rc = agent("apply", db, migdir, "--orphans quarantine", out, sizeof(out));
    unsetenv("PGR_FAILPOINT");
    assert_int_equal(rc, 128 + SIGKILL); /* the shell reports the SIGKILL */
    wait_agent_backends_gone(db);
    PGconn *c = itest_connect(db);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_constraint WHERE conname = "
                                     "'fk_medication_logs_medication_id' AND NOT convalidated"),
                     1);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.steps WHERE phase = "
                                     "'not_valid'"),
                     1);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout_quarantine.medication_logs"),
                     5);
    PQfinish(c);
    /* the rerun (default policy abort) only validates: the orphans left with phase 1 */
    finish_and_compare(db);
    itest_drop_db(db);
}

static void test_crash_after_index_build_before_record(void **state)
{
    char db[64];
    (void)state;
    new_tenant(db, sizeof(db));
    setenv("PGR_FAILPOINT", "index_before_record", 1);
    int rc = agent("apply", db, migdir, "", out, sizeof(out));
    unsetenv("PGR_FAILPOINT");
    assert_int_equal(rc, 128 + SIGKILL);
    wait_agent_backends_gone(db);
    /* the first index is built and valid but not recorded: the rerun adopts it, no rebuild */
    assert_int_equal(agent("apply", db, migdir, "--json", out, sizeof(out)), 0);
    assert_null(strstr(out, "invalid_index_dropped"));
    finish_and_compare(db);
    itest_drop_db(db);
}

/* apply --verify (the daemon's options.verify_in_job): the checks run after the last step and
 * before the job's end is recorded. Killed during the check, the job is still `running` with
 * every migration applied and no `job_end`; the next apply --verify has nothing to apply, checks,
 * and records the check in its `job_end`. A problem the check finds fails the job (exit 3). */
static void test_crash_during_the_check_after_apply(void **state)
{
    char db[64];
    (void)state;
    itest_create_db("itest_check", db, sizeof(db));
    itest_load_white_cross(db, 1, 0);
    setenv("PGR_FAILPOINT", "check_applied", 1);
    int rc = agent("apply", db, MIGS, "--verify", out, sizeof(out));
    unsetenv("PGR_FAILPOINT");
    assert_int_equal(rc, 128 + SIGKILL);
    wait_agent_backends_gone(db);
    PGconn *c = itest_connect(db);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs WHERE state = "
                                     "'running'"),
                     1);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.schema_migrations WHERE "
                                     "status = 'applied'"),
                     4);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                     "record::jsonb->>'action' = 'job_end'"),
                     0);
    assert_int_equal(agent("apply", db, MIGS, "--verify", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "apply: done (checked: 0 problems)"));
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                     "record::jsonb->>'action' = 'job_end' AND "
                                     "record::jsonb->>'outcome' = 'succeeded' AND "
                                     "record::jsonb->>'verified' = 'true'"),
                     1);
    /* an object gone after its migration: the check fails the job, nothing is changed */
    itest_exec(c, "DROP INDEX idx_users_active_lockouts");
    assert_int_equal(agent("apply", db, MIGS, "--verify", out, sizeof(out)), 3);
    assert_non_null(strstr(out, "applied, but verify found 1 problem(s)"));
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs WHERE state = "
                                     "'failed' AND error = 'applied, but verify found 1 "
                                     "problem(s)'"),
                     1);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                     "record::jsonb->>'action' = 'job_end' AND "
                                     "record::jsonb->>'outcome' = 'failed' AND "
                                     "record::jsonb->>'verified' = 'false'"),
                     1);
    assert_int_equal(agent("rollback", db, MIGS, "--to 0 --verify", out, sizeof(out)), 2);
    PQfinish(c);
    itest_drop_db(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_kill_during_long_index_build),
        cmocka_unit_test(test_crash_kill_while_fk_transaction_waits_for_lock),
        cmocka_unit_test(test_crash_between_not_valid_and_validate),
        cmocka_unit_test(test_crash_after_index_build_before_record),
        cmocka_unit_test(test_crash_during_the_check_after_apply),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
