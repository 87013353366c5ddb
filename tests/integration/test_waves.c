/* test_waves.c - staged rollouts with the real broker: a canary with orphan rows pauses the
 * rollout before any later tenant gets a job, and `resume` after the data is fixed completes
 * it; a canary with manual approval waits (exit 4) until `approve`, later waves run after it,
 * one at a time with max_parallel 1; a second coordinator on the same rollout is refused. */
#include "rollout_env.h"

#include <sys/stat.h>

#define MIGS PGR_SOURCE_DIR "/migrations"

static char out[1 << 20];

static int coord(fleet *f, const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), COORD_BIN " %s --config %s/coord.ini --timeout 240", args, f->dir);
    return run_cmd(cmd, out, sizeof(out));
}

static long jobs_of(fleet *f, int t)
{
    PGconn *c = itest_connect(f->db[t]);
    long n = itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs WHERE type = 'apply'");
    PQfinish(c);
    return n;
}

static long valid_indexes(fleet *f, int t)
{
    PGconn *c = itest_connect(f->db[t]);
    long n = itest_scalar(c, "SELECT count(*) FROM pg_index i JOIN pg_class x ON x.oid = "
                             "i.indexrelid WHERE x.relname LIKE 'idx\\_%' AND i.indisvalid");
    PQfinish(c);
    return n;
}

/* Writes the plan to DIR/FILE and runs `pgrollout run --plan` on it. */
static int run_plan(fleet *f, const char *file, const char *plan)
{
    char path[512], args[600];
    snprintf(path, sizeof(path), "%s/%s", f->dir, file);
    itest_write_file(path, plan);
    snprintf(args, sizeof(args), "run --plan %s", path);
    return coord(f, args);
}

static void test_waves_canary_with_orphans_pauses_then_resumes(void **state)
{
    fleet f;
    char path[256];
    (void)state;
    fleet_setup(&f, 4 * 1024 * 1024);
    PGconn *c = itest_connect(f.db[0]);
    itest_exec(c, "UPDATE medication_logs SET \"medicationId\" = gen_random_uuid() WHERE id IN "
                  "(SELECT id FROM medication_logs ORDER BY id LIMIT 3)");
    PQfinish(c);
    fleet_start_agent(&f, 0);
    fleet_start_agent(&f, 1);
    snprintf(path, sizeof(path), "%s/waves.json", f.dir);
    itest_write_file(path, "{\"name\": \"canary-orphans\", \"migrations\": \"" MIGS "\", "
                           "\"tenants\": [\"district-001\", \"district-002\", \"district-003\"], "
                           "\"options\": {\"orphans\": \"abort\", \"retries\": 1}, \"on_failure\": "
                           "\"pause\", \"waves\": [{\"name\": \"canary\", \"tenants\": "
                           "[\"district-001\"]}, {\"name\": \"rest\", \"percent\": 100, "
                           "\"max_parallel\": 2}]}");
    char args[512];
    snprintf(args, sizeof(args), "run --plan %s", path);
    assert_int_equal(coord(&f, args), 4);
    assert_non_null(strstr(out, "paused"));
    /* no tenant of a later wave has any job */
    assert_int_equal(jobs_of(&f, 1), 0);
    assert_int_equal(jobs_of(&f, 2), 0);
    PGconn *ctl = itest_connect(f.ctl_db);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.operator_log "
                                       "WHERE action = 'paused' AND wave = 'canary'"),
                     1);
    /* fix the data, resume: the canary gets a new job, then the rest */
    c = itest_connect(f.db[0]);
    itest_exec(c, "DELETE FROM medication_logs m WHERE NOT EXISTS (SELECT 1 FROM medications "
                  "x WHERE x.id = m.\"medicationId\")");
    PQfinish(c);
    assert_int_equal(coord(&f, "resume canary-orphans"), 0);
    for (int t = 0; t < NTENANTS; t++)
        assert_int_equal(valid_indexes(&f, t), 34);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.operator_log "
                                       "WHERE action = 'resume'"),
                     1);
    PQfinish(ctl);
    fleet_stop_agent(&f, 0, SIGTERM);
    fleet_stop_agent(&f, 1, SIGTERM);
}

static void test_waves_approval_order_and_parallelism(void **state)
{
    fleet f;
    char path[256], args[512];
    (void)state;
    fleet_setup(&f, 4 * 1024 * 1024);
    fleet_start_agent(&f, 0);
    fleet_start_agent(&f, 1);
    snprintf(path, sizeof(path), "%s/waves.json", f.dir);
    itest_write_file(path, "{\"name\": \"approval\", \"migrations\": \"" MIGS "\", \"tenants\": "
                           "[\"district-001\", \"district-002\", \"district-003\"], \"options\": "
                           "{\"verify_in_job\": false}, \"waves\": "
                           "[{\"name\": \"canary\", \"tenants\": [\"district-003\"], \"approval\": "
                           "\"manual\"}, {\"name\": \"rest\", \"percent\": 100, \"max_parallel\": "
                           "1}]}");
    snprintf(args, sizeof(args), "run --plan %s", path);
    assert_int_equal(coord(&f, args), 4);
    assert_non_null(strstr(out, "waits for approval"));
    assert_int_equal(valid_indexes(&f, 2), 34);
    assert_int_equal(jobs_of(&f, 0) + jobs_of(&f, 1), 0);
    /* a second coordinator on the same rollout is refused */
    PGconn *ctl = itest_connect(f.ctl_db);
    itest_exec(ctl, "SELECT pg_advisory_lock(hashtext('pgrollout-rollout'), hashtext('approval'))");
    assert_int_equal(coord(&f, "resume approval"), 3);
    assert_non_null(strstr(out, "another coordinator is running rollout"));
    itest_exec(ctl, "SELECT pg_advisory_unlock(hashtext('pgrollout-rollout'), "
                    "hashtext('approval'))");
    assert_int_equal(coord(&f, "approve approval --wave canary --operator carol"), 0);
    assert_int_equal(coord(&f, "resume approval --collect-audit"), 0);
    for (int t = 0; t < NTENANTS; t++)
        assert_int_equal(valid_indexes(&f, t), 34);
    /* the collector ran inside the engine: the canary's records (published long before the
     * end) are stored and verify */
    assert_true(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.audit_log WHERE "
                                  "tenant_id = 'district-003'") > 40);
    char vcmd[512];
    snprintf(vcmd, sizeof(vcmd), COORD_BIN " audit verify --config %s/coord.ini", f.dir);
    assert_int_equal(run_cmd(vcmd, out, sizeof(out)), 0);
    /* wave order and max_parallel 1, from the events' arrival: the canary finished before the
     * rest started, and the two tenants of "rest" did not overlap */
    assert_int_equal(itest_scalar(ctl,
                                  "SELECT count(*) FROM pgrollout_control.events a, "
                                  "pgrollout_control.events b WHERE a.tenant_id = 'district-003' "
                                  "AND a.type = 'result' AND b.tenant_id <> 'district-003' AND "
                                  "b.type = 'step' AND b.received_at < a.received_at"),
                     0);
    assert_int_equal(itest_scalar(ctl,
                                  "WITH span AS (SELECT tenant_id, min(received_at) s, "
                                  "max(received_at) e FROM pgrollout_control.events WHERE "
                                  "tenant_id IN ('district-001', 'district-002') AND (type = "
                                  "'step' OR payload->>'job_type' = 'apply') GROUP BY tenant_id) "
                                  "SELECT count(*) FROM "
                                  "span a, span b WHERE a.tenant_id < b.tenant_id AND a.s < b.e "
                                  "AND b.s < a.e"),
                     0);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.operator_log "
                                       "WHERE action = 'approve' AND operator = 'carol'"),
                     1);
    /* options.verify_in_job false: no check in the apply jobs, a verify job per tenant after
     * its wave, each succeeded */
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.tenant_runs WHERE "
                                       "rollout_id = 'approval' AND job_type = 'verify' AND state "
                                       "= 'succeeded' AND verified_at IS NULL"),
                     NTENANTS);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.events WHERE type "
                                       "= 'result' AND payload ? 'verified'"),
                     0);
    for (int t = 0; t < NTENANTS; t++) {
        PGconn *c = itest_connect(f.db[t]);
        assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs WHERE type = "
                                         "'verify' AND state = 'succeeded'"),
                         1);
        /* and the tenant's audit chain says what the verify job came to, as for any job */
        assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox o JOIN "
                                         "pgrollout.jobs j ON j.job_id = o.record::jsonb->>"
                                         "'job_id' WHERE j.type = 'verify' AND o.record::jsonb->>"
                                         "'action' = 'job_end' AND o.record::jsonb @> "
                                         "'{\"type\": \"verify\", \"outcome\": \"succeeded\", "
                                         "\"code\": \"ok\", \"problems\": 0}'"),
                         1);
        PQfinish(c);
    }
    /* an operator rolls the last wave back: its tenants return to where they started, the
     * canary keeps the migrations */
    assert_int_equal(coord(&f, "rollback approval --wave rest --operator erin"), 0);
    assert_int_equal(valid_indexes(&f, 0), 0);
    assert_int_equal(valid_indexes(&f, 1), 0);
    assert_int_equal(valid_indexes(&f, 2), 34);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.operator_log "
                                       "WHERE action = 'rollback' AND operator = 'erin' AND wave = "
                                       "'rest'"),
                     1);
    PQfinish(ctl);
    fleet_stop_agent(&f, 0, SIGTERM);
    fleet_stop_agent(&f, 1, SIGTERM);
}

static void test_waves_coordinator_killed_mid_wave_resumes_without_duplicates(void **state)
{
    fleet f;
    char path[256], cmd[1024], line[4096];
    (void)state;
    fleet_setup(&f, 4 * 1024 * 1024);
    fleet_start_agent(&f, 0);
    fleet_start_agent(&f, 1);
    snprintf(path, sizeof(path), "%s/waves.json", f.dir);
    itest_write_file(path, "{\"name\": \"killed\", \"migrations\": \"" MIGS "\", \"tenants\": "
                           "[\"district-001\", \"district-002\", \"district-003\"], \"waves\": "
                           "[{\"name\": \"one\", \"tenants\": [\"district-001\"]}, {\"name\": "
                           "\"two\", \"percent\": 100, \"max_parallel\": 1}]}");
    snprintf(cmd, sizeof(cmd), "%s/coord.ini", f.dir);
    /* wave two stays in flight until the kill: its first tenant's first step (the foreign key
     * on medication_logs) waits for this lock; a whole wave takes less than the live view's
     * 250 ms tick otherwise */
    PGconn *blocker = itest_connect(f.db[1]);
    itest_exec(blocker, "BEGIN; LOCK TABLE medication_logs IN ACCESS EXCLUSIVE MODE");
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        execl(COORD_BIN, COORD_BIN, "run", "--plan", path, "--config", cmd, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *run = fdopen(fds[0], "r");
    /* kill -9 the coordinator as soon as the second wave runs (its first job is published in
     * the same round, before the live view shows the wave running) */
    bool second = false;
    static char seen[1 << 16]; /* what the coordinator said, for the failure message */
    size_t used = 0;
    seen[0] = '\0';
    while (!second && fgets(line, sizeof(line), run) != NULL) {
        second = strstr(line, "wave two ") != NULL && strstr(line, " running ") != NULL;
        if (used + strlen(line) < sizeof(seen))
            used += (size_t)snprintf(seen + used, sizeof(seen) - used, "%s", line);
    }
    if (!second)
        fail_msg("the coordinator ended before wave two ran:\n%s", seen);
    kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    assert_true(WIFSIGNALED(st));
    fclose(run);
    itest_exec(blocker, "COMMIT"); /* the step's next attempt goes through */
    PQfinish(blocker);
    assert_int_equal(coord(&f, "resume killed"), 0);
    for (int t = 0; t < NTENANTS; t++) {
        assert_int_equal(valid_indexes(&f, t), 34);
        assert_int_equal(jobs_of(&f, t), 1); /* no job published twice or applied twice */
    }
    fleet_stop_agent(&f, 0, SIGTERM);
    fleet_stop_agent(&f, 1, SIGTERM);
}

static void test_waves_failure_with_rollback_restores_the_wave(void **state)
{
    fleet f;
    char path[256], args[512];
    (void)state;
    fleet_setup(&f, 4 * 1024 * 1024);
    PGconn *c = itest_connect(f.db[1]);
    itest_exec(c, "UPDATE medication_logs SET \"medicationId\" = gen_random_uuid() WHERE id IN "
                  "(SELECT id FROM medication_logs ORDER BY id LIMIT 2)");
    PQfinish(c);
    fleet_start_agent(&f, 0);
    fleet_start_agent(&f, 1);
    snprintf(path, sizeof(path), "%s/waves.json", f.dir);
    /* district-001 runs first (max_parallel 1, id order) and succeeds, district-002 fails on its
     * orphans: the budget (0) is exceeded and the wave is rolled back */
    itest_write_file(path,
                     "{\"name\": \"rb\", \"migrations\": \"" MIGS "\", \"tenants\": "
                     "[\"district-001\", \"district-002\", \"district-003\"], \"options\": "
                     "{\"orphans\": \"abort\", \"retries\": 0}, \"on_failure\": \"rollback\", "
                     "\"waves\": [{\"name\": \"first\", \"tenants\": [\"district-001\", "
                     "\"district-002\"], \"max_parallel\": 1}, {\"name\": \"later\", "
                     "\"tenants\": [\"district-003\"]}]}");
    snprintf(args, sizeof(args), "run --plan %s", path);
    assert_int_equal(coord(&f, args), 1);
    assert_non_null(strstr(out, "wave first rolled back"));
    /* district-001 is back where it started; district-003 (later wave) untouched */
    assert_int_equal(valid_indexes(&f, 0), 0);
    c = itest_connect(f.db[0]);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.schema_migrations WHERE "
                                     "status = 'rolled_back'"),
                     4);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_constraint WHERE conname = "
                                     "'fk_medication_logs_medication_id'"),
                     0);
    PQfinish(c);
    assert_int_equal(jobs_of(&f, 2), 0);
    PGconn *ctl = itest_connect(f.ctl_db);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.rollouts WHERE "
                                       "state = 'rolled_back'"),
                     1);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.tenant_runs WHERE "
                                       "state = 'rolled_back' AND tenant_id = 'district-001'"),
                     1);
    /* the HTML report: self-contained, with the failure and the rollback */
    char html[256], cmdl[512];
    snprintf(html, sizeof(html), "%s/report.html", f.dir);
    snprintf(cmdl, sizeof(cmdl), COORD_BIN " report rb --html %s --config %s/coord.ini", html,
             f.dir);
    assert_int_equal(run_cmd(cmdl, out, sizeof(out)), 0);
    FILE *h = fopen(html, "r");
    assert_non_null(h);
    size_t n = fread(out, 1, sizeof(out) - 1, h);
    out[n] = '\0';
    fclose(h);
    assert_non_null(strstr(out, "<h1>Rollout rb</h1>"));
    assert_non_null(strstr(out, "orphan row(s)"));
    assert_non_null(strstr(out, "<td class=\"rolled_back\">rolled_back</td>"));
    assert_null(strstr(out, "<script"));
    assert_null(strstr(out, "http"));
    PQfinish(ctl);
    fleet_stop_agent(&f, 0, SIGTERM);
    fleet_stop_agent(&f, 1, SIGTERM);
}

/* abort while a tenant builds a large index concurrently: the agent cancels the build, drops
 * its invalid leftover, and the job ends as cancelled (not resumed later). */
static void test_waves_abort_cancels_running_index_build(void **state)
{
    fleet f;
    char dir[64], path[256], cmd[1024];
    (void)state;
    fleet_setup(&f, 4 * 1024 * 1024);
    snprintf(dir, sizeof(dir), "/tmp/pgrabort.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/20251107000000-big-index.sql", dir);
    itest_write_file(path,
                     "-- pgrollout:up\n-- pgrollout:step index name=idx_pgr_big_note "
                     "table=pgr_big\nCREATE INDEX CONCURRENTLY IF NOT EXISTS idx_pgr_big_note ON "
                     "pgr_big USING btree (note);\n-- pgrollout:down\n-- pgrollout:step "
                     "drop_index name=idx_pgr_big_note table=pgr_big\nDROP INDEX CONCURRENTLY IF "
                     "EXISTS idx_pgr_big_note;\n");
    PGconn *c = itest_connect(f.db[0]);
    itest_exec(c, "CREATE TABLE pgr_big AS SELECT g AS id, md5(g::text) AS note FROM "
                  "generate_series(1, 4000000) g");
    PQfinish(c);
    fleet_start_agent(&f, 0);
    fleet_start_agent(&f, 1);
    snprintf(path, sizeof(path), "%s/abort.json", f.dir);
    char plan[1024];
    snprintf(plan, sizeof(plan),
             "{\"name\": \"ab\", \"migrations\": \"%s\", \"tenants\": [\"district-001\"]}", dir);
    itest_write_file(path, plan);
    char ini[256];
    snprintf(ini, sizeof(ini), "%s/coord.ini", f.dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, STDOUT_FILENO);
        dup2(devnull, STDERR_FILENO);
        execl(COORD_BIN, COORD_BIN, "run", "--plan", path, "--config", ini, (char *)NULL);
        _exit(127);
    }
    /* wait until the build reports progress, then abort from another shell */
    PGconn *ctl = itest_connect(f.ctl_db);
    long seen = 0;
    for (int i = 0; i < 300 && seen == 0; i++) {
        struct timespec t = {0, 100000000L};
        nanosleep(&t, NULL);
        /* the coordinator may not have installed its schema yet (a loaded machine) */
        seen = itest_scalar_or(ctl,
                               "SELECT count(*) FROM pgrollout_control.events WHERE type = "
                               "'progress' AND tenant_id = 'district-001'",
                               0);
    }
    assert_true(seen > 0);
    snprintf(cmd, sizeof(cmd), COORD_BIN " abort ab --config %s --operator dave", ini);
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
    int st = 0;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    c = itest_connect(f.db[0]);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_class WHERE relname = "
                                     "'idx_pgr_big_note'"),
                     0);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs WHERE type = 'apply' AND "
                                     "state = 'cancelled'"),
                     1);
    /* both ends are in the tenant's audit chain: the cancelled build's job (failed) and the
     * cancel job's own (no problems count: it checked nothing), which the intake commits right
     * after it set the cancel flag: waited for, up to 5 s */
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                     "record::jsonb->>'action' = 'job_end' AND record::jsonb @> "
                                     "'{\"type\": \"apply\", \"outcome\": \"failed\"}'"),
                     1);
    const char *cancel_end = "SELECT count(*) FROM pgrollout.audit_outbox o JOIN pgrollout.jobs j "
                             "ON j.job_id = o.record::jsonb->>'job_id' WHERE j.type = 'cancel' AND "
                             "j.state = 'succeeded' AND o.record::jsonb->>'action' = 'job_end' "
                             "AND o.record::jsonb @> '{\"type\": \"cancel\", \"outcome\": "
                             "\"succeeded\"}' AND NOT o.record::jsonb ? 'problems'";
    for (int i = 0; i < 50 && itest_scalar(c, cancel_end) == 0; i++) {
        struct timespec t = {0, 100000000L};
        nanosleep(&t, NULL);
    }
    assert_int_equal(itest_scalar(c, cancel_end), 1);
    PQfinish(c);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.tenant_runs WHERE "
                                       "state = 'cancelled'"),
                     1);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.operator_log WHERE "
                                       "action = 'abort' AND operator = 'dave'"),
                     1);
    PQfinish(ctl);
    fleet_stop_agent(&f, 0, SIGTERM);
    fleet_stop_agent(&f, 1, SIGTERM);
}

/* 20 tenants, three waves: every tenant migrated, waves strictly in order, and never more
 * tenants of a wave running at once than its max_parallel (from the events' arrival). */
/* options.verify_in_job (the default): the apply job checks what it applied before its result.
 * Here the second migration drops the index the first one built, so every step succeeds and the
 * check finds the index missing: the tenant fails (code drift) with the job's row in
 * pgrollout.jobs saying so, the result says `verified: false`, no verify job is sent, and the
 * rollout pauses (failure budget 0) before the next wave. */
static void test_waves_check_in_the_apply_job_fails_the_tenant(void **state)
{
    fleet f;
    char dir[256], path[512], plan[1024];
    (void)state;
    fleet_setup(&f, 4 * 1024 * 1024);
    fleet_start_agent(&f, 0);
    fleet_start_agent(&f, 1);
    snprintf(dir, sizeof(dir), "%s/migs-drop", f.dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof(path), "%s/20260101000000-add-grade-index.sql", dir);
    itest_write_file(path, "-- pgrollout:up\n"
                           "-- pgrollout:step index name=idx_it_students_grade table=students\n"
                           "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_it_students_grade ON "
                           "students (grade);\n"
                           "-- pgrollout:down\n"
                           "-- pgrollout:step drop_index name=idx_it_students_grade "
                           "table=students\n"
                           "DROP INDEX CONCURRENTLY IF EXISTS idx_it_students_grade;\n");
    snprintf(path, sizeof(path), "%s/20260101000001-drop-grade-index.sql", dir);
    itest_write_file(path, "-- pgrollout:up\n-- pgrollout:step sql\n"
                           "DROP INDEX idx_it_students_grade;\n"
                           "-- pgrollout:down\n-- pgrollout:step sql\nSELECT 1;\n");
    snprintf(plan, sizeof(plan),
             "{\"name\": \"in-job\", \"migrations\": \"%s\", \"tenants\": [\"district-001\", "
             "\"district-002\"], \"waves\": [{\"name\": \"canary\", \"tenants\": "
             "[\"district-001\"]}, {\"name\": \"rest\", \"percent\": 100}]}",
             dir);
    assert_int_equal(run_plan(&f, "in-job.json", plan), 4);
    assert_non_null(strstr(out, "paused"));
    PGconn *ctl = itest_connect(f.ctl_db);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.tenant_runs WHERE "
                                       "rollout_id = 'in-job' AND tenant_id = 'district-001' AND "
                                       "state = 'failed' AND job_type = 'apply' AND verified_at IS "
                                       "NULL AND error = 'applied, but verify found 1 problem(s)'"),
                     1);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.events WHERE "
                                       "type = 'result' AND payload->>'job_type' = 'apply' AND "
                                       "payload->>'code' = 'drift' AND payload->'verified' = "
                                       "'false'::jsonb"),
                     1);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.job_outbox"), 1);
    PQfinish(ctl);
    PGconn *c = itest_connect(f.db[0]);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs WHERE type = 'apply' "
                                     "AND state = 'failed' AND error = 'applied, but verify found "
                                     "1 problem(s)'"),
                     1);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.schema_migrations WHERE "
                                     "status = 'applied'"),
                     2);
    /* the check is part of the job: its end record in the audit chain says so */
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                     "record::jsonb->>'action' = 'job_end' AND "
                                     "record::jsonb->>'outcome' = 'failed' AND "
                                     "record::jsonb->>'verified' = 'false'"),
                     1);
    PQfinish(c);
    assert_int_equal(jobs_of(&f, 1), 0);
    fleet_stop_agent(&f, 0, SIGTERM);
    fleet_stop_agent(&f, 1, SIGTERM);
}

static void test_waves_twenty_tenants_three_waves(void **state)
{
    fleet f;
    char plan[4096], list[2048] = "";
    (void)state;
    fleet_setup_n(&f, 20, 4 * 1024 * 1024);
    fleet_start_agent(&f, 0);
    fleet_start_agent(&f, 1);
    for (int t = 0; t < f.n; t++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s\"%s\"", t > 0 ? ", " : "",
                 f.names[t]);
    snprintf(plan, sizeof(plan),
             "{\"name\": \"twenty\", \"migrations\": \"" MIGS "\", \"tenants\": [%s], "
             "\"waves\": [{\"name\": \"canary\", \"tenants\": [\"district-007\"]}, "
             "{\"name\": \"early\", \"percent\": 25, \"max_parallel\": 2}, {\"name\": "
             "\"rest\", \"percent\": 100, \"max_parallel\": 4}]}",
             list);
    int rc = run_plan(&f, "twenty.json", plan);
    if (rc != 0)
        fail_msg("run exited %d:\n%s", rc, out);
    for (int t = 0; t < f.n; t++)
        assert_int_equal(valid_indexes(&f, t), 34);
    PGconn *ctl = itest_connect(f.ctl_db);
    const char *spans =
        "WITH span AS (SELECT t.tenant_id, t.wave, min(e.received_at) FILTER (WHERE e.type = "
        "'step') s, max(e.received_at) FILTER (WHERE e.type = 'result' AND e.payload->>'job_type' "
        "= 'apply') e FROM pgrollout_control.tenant_runs t JOIN pgrollout_control.events e ON "
        "e.tenant_id = t.tenant_id WHERE t.rollout_id = 'twenty' GROUP BY t.tenant_id, t.wave) ";
    char sql[2048];
    /* the sizes of the waves: 1, then ceil(25% of 20) - 1 = 4, then the remaining 15 */
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.tenant_runs WHERE "
                                       "rollout_id = 'twenty' AND wave = 1"),
                     4);
    /* no tenant of a later wave started before every tenant of an earlier wave finished */
    snprintf(sql, sizeof(sql),
             "%sSELECT count(*) FROM span a, span b WHERE a.wave < b.wave AND b.s < a.e", spans);
    assert_int_equal(itest_scalar(ctl, sql), 0);
    /* at no tenant's start were more of its wave running than max_parallel */
    snprintf(sql, sizeof(sql),
             "%sSELECT coalesce(max(n), 0) FROM (SELECT a.tenant_id, count(*) n FROM span a JOIN "
             "span b ON a.wave = b.wave AND b.s <= a.s AND b.e > a.s WHERE a.wave = %d GROUP BY "
             "a.tenant_id) x",
             spans, 1);
    long early = itest_scalar(ctl, sql);
    snprintf(sql, sizeof(sql),
             "%sSELECT coalesce(max(n), 0) FROM (SELECT a.tenant_id, count(*) n FROM span a JOIN "
             "span b ON a.wave = b.wave AND b.s <= a.s AND b.e > a.s WHERE a.wave = %d GROUP BY "
             "a.tenant_id) x",
             spans, 2);
    long rest = itest_scalar(ctl, sql);
    print_message("most tenants running at once: early %ld (max 2), rest %ld (max 4)\n", early,
                  rest);
    assert_true(early >= 1 && early <= 2);
    assert_true(rest >= 1 && rest <= 4);
    PQfinish(ctl);
    fleet_stop_agent(&f, 0, SIGTERM);
    fleet_stop_agent(&f, 1, SIGTERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_waves_canary_with_orphans_pauses_then_resumes),
        cmocka_unit_test(test_waves_approval_order_and_parallelism),
        cmocka_unit_test(test_waves_coordinator_killed_mid_wave_resumes_without_duplicates),
        cmocka_unit_test(test_waves_failure_with_rollback_restores_the_wave),
        cmocka_unit_test(test_waves_abort_cancels_running_index_build),
        cmocka_unit_test(test_waves_check_in_the_apply_job_fails_the_tenant),
        cmocka_unit_test(test_waves_twenty_tenants_three_waves),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
