/* test_rollout_resume.c - crashes during a signed rollout: an agent killed in the middle of a
 * job resumes it after a restart and the job finishes exactly once; a coordinator killed after
 * writing the job outbox but before publishing republishes on the next run, and every tenant
 * gets its job once. Real broker, real PostgreSQL. */
#include "rollout_env.h"

#define MIGS PGR_SOURCE_DIR "/migrations"

static char out[1 << 20];

#define plan_json                                                                                  \
    "{\"name\": \"%s\", \"migrations\": \"" MIGS "\", \"target\": \"20251106000003\", "            \
    "\"tenants\": [\"district-001\", \"district-002\", \"district-003\"]}"

static void check_tenants_done_once(fleet *f)
{
    for (int t = 0; t < NTENANTS; t++) {
        PGconn *c = itest_connect(f->db[t]);
        /* one apply job, once (it checks its objects itself: no verify job) */
        assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs WHERE type = "
                                         "'apply'"),
                         1);
        assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs WHERE state = "
                                         "'succeeded' AND type = 'apply'"),
                         1);
        assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.schema_migrations WHERE "
                                         "status = 'applied'"),
                         4);
        assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_index i JOIN pg_class x ON "
                                         "x.oid = i.indexrelid WHERE x.relname LIKE 'idx\\_%' AND "
                                         "i.indisvalid"),
                         34);
        assert_int_equal(itest_scalar(c, "SELECT coalesce(max(n), 0) FROM (SELECT count(*) n FROM "
                                         "pgrollout.audit_outbox WHERE record::jsonb->>'action' = "
                                         "'step_done' GROUP BY record::jsonb->>'version', "
                                         "record::jsonb->>'part', record::jsonb->>'step') s"),
                         1);
        PQfinish(c);
    }
}

static void test_rollout_agent_killed_mid_job_resumes_once(void **state)
{
    fleet f;
    char plan[1024];
    (void)state;
    fleet_setup(&f, 4 * 1024 * 1024);
    fleet_start_agent(&f, 1);
    /* agent 1 kills itself right after its first index build, before recording it */
    setenv("PGR_FAILPOINT", "index_before_record", 1);
    fleet_start_agent(&f, 0);
    unsetenv("PGR_FAILPOINT");
    snprintf(plan, sizeof(plan), plan_json, "resume-agent");
    FILE *run = fleet_run_start(&f, plan, 240);
    int st = 0;
    waitpid(f.agent_pid[0], &st, 0);
    for (int i = 0; i < fleet_agent_count; i++) {
        if (fleet_all_agents[i] == f.agent_pid[0])
            fleet_all_agents[i] = 0;
    }
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    f.agent_pid[0] = 0;
    fleet_start_agent(&f, 0); /* restart: the unfinished job resumes from the tenant DB */
    if (fleet_run_finish(run, out, sizeof(out)) != 0)
        fail_msg("run failed:\n%s", out);
    check_tenants_done_once(&f);
    assert_int_equal(fleet_stop_agent(&f, 0, SIGTERM), 0);
    assert_int_equal(fleet_stop_agent(&f, 1, SIGTERM), 0);
}

static void test_rollout_coordinator_killed_before_publish(void **state)
{
    fleet f;
    char plan[1024];
    (void)state;
    fleet_setup(&f, 4 * 1024 * 1024);
    fleet_start_agent(&f, 0);
    fleet_start_agent(&f, 1);
    snprintf(plan, sizeof(plan), plan_json, "resume-coord");
    setenv("PGR_FAILPOINT", "coord_after_outbox", 1);
    int rc = fleet_run(&f, plan, out, sizeof(out));
    unsetenv("PGR_FAILPOINT");
    assert_int_equal(rc, 128 + SIGKILL);
    PGconn *ctl = itest_connect(f.ctl_db);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.job_outbox WHERE "
                                       "sent_at IS NULL"),
                     3);
    rc = fleet_run(&f, plan, out, sizeof(out));
    if (rc != 0)
        fail_msg("second run failed:\n%s", out);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.job_outbox WHERE "
                                       "sent_at IS NULL"),
                     0);
    PQfinish(ctl);
    check_tenants_done_once(&f);
    assert_int_equal(fleet_stop_agent(&f, 0, SIGTERM), 0);
    assert_int_equal(fleet_stop_agent(&f, 1, SIGTERM), 0);
}

static void services(const char *what)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), PGR_SOURCE_DIR "/deploy/local/services.sh %s", what);
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
}

static void test_rollout_survives_broker_outage(void **state)
{
    fleet f;
    char plan[1024], cmd[1024], line[4096];
    (void)state;
    fleet_setup(&f, 4 * 1024 * 1024);
    fleet_start_agent(&f, 0);
    fleet_start_agent(&f, 1);
    snprintf(plan, sizeof(plan), plan_json, "outage");
    FILE *run = fleet_run_start(&f, plan, 300);
    /* as soon as the jobs are out, the broker goes away for 20 s */
    bool published = false;
    while (!published && fgets(line, sizeof(line), run) != NULL)
        published = strstr(line, "job(s) published") != NULL;
    assert_true(published);
    services("kafka-stop");
    struct timespec t = {20, 0};
    nanosleep(&t, NULL);
    services("kafka-start");
    if (fleet_run_finish(run, out, sizeof(out)) != 0)
        fail_msg("run failed after the outage:\n%s", out);
    check_tenants_done_once(&f);
    /* no event lost: every step of every tenant and every result reached the control DB */
    PGconn *ctl = itest_connect(f.ctl_db);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.events WHERE "
                                       "type = 'result' AND payload->>'job_type' = 'apply'"),
                     3);
    /* quick builds' `done`s travel together: the event's own and those in `also_done` */
    assert_int_equal(itest_scalar(ctl, "SELECT sum(1 + coalesce(jsonb_array_length("
                                       "payload->'also_done'), 0)) FROM "
                                       "pgrollout_control.events WHERE type = 'step' AND "
                                       "payload->>'state' = 'done'"),
                     3 * 37);
    /* and the audit records: all published after the outage, collected, chains continuous */
    long total = 0;
    for (int k = 0; k < NTENANTS; k++) {
        PGconn *c = itest_connect(f.db[k]);
        for (int i = 0; i < 150 && itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox "
                                                   "WHERE published_at IS NULL") > 0;
             i++) {
            struct timespec w = {0, 200000000L};
            nanosleep(&w, NULL);
        }
        assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                         "published_at IS NULL"),
                         0);
        total += itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox");
        PQfinish(c);
    }
    snprintf(cmd, sizeof(cmd), COORD_BIN " audit collect --idle-exit 3 --config %s/coord.ini",
             f.dir);
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
    snprintf(cmd, sizeof(cmd), COORD_BIN " audit verify --config %s/coord.ini", f.dir);
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.audit_log"), total);
    PQfinish(ctl);
    assert_int_equal(fleet_stop_agent(&f, 0, SIGTERM), 0);
    assert_int_equal(fleet_stop_agent(&f, 1, SIGTERM), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rollout_agent_killed_mid_job_resumes_once),
        cmocka_unit_test(test_rollout_coordinator_killed_before_publish),
        cmocka_unit_test(test_rollout_survives_broker_outage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
