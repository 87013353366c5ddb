/*
 * test_resume_reload.c - jobs that did not come through the intake just now are checked as if
 * they had, and revocation reaches every receiver without a restart (real PostgreSQL, real
 * Kafka, the real binaries):
 *   - a job row planted in a tenant database (as migration SQL could) holding another tenant's
 *     signed job is not resumed at the agent's restart: the row fails, the refusal is audited
 *     and the tenant's catalog is unchanged;
 *   - a finished job whose row is set back to `accepted` is not run again (the last ended seq is
 *     kept in agent.state_dir);
 *   - a job queued behind a running one is refused when SIGHUP revokes the key that signed it,
 *     before it starts;
 *   - `pgrollout run --collect-audit` reloads the agent keyring on SIGHUP: events and audit
 *     records signed by a key revoked that way are refused from then on.
 * Each case ends with a normal rollout that succeeds.
 */
#include "rollout_env.h"

#include <time.h>

#define MIGS PGR_SOURCE_DIR "/migrations"

static fleet F;
static char out[1 << 20];

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static void plan_for(char *buf, size_t len, const char *name, const char *tenants)
{
    snprintf(buf, len,
             "{\"name\": \"%s\", \"migrations\": \"" MIGS "\", \"target\": \"20251106000003\", "
             "\"tenants\": [%s]}",
             name, tenants);
}

static void run_ok(const char *name, const char *tenants)
{
    char plan[1024];
    plan_for(plan, sizeof(plan), name, tenants);
    int rc = fleet_run(&F, plan, out, sizeof(out));
    if (rc != 0)
        fail_msg("rollout %s failed (%d):\n%s", name, rc, out);
}

static long idx_count(int t)
{
    PGconn *c = itest_connect(F.db[t]);
    long n = itest_scalar(c, "SELECT count(*) FROM pg_index i JOIN pg_class x ON x.oid = "
                             "i.indexrelid WHERE x.relname LIKE 'idx\\_%'");
    PQfinish(c);
    return n;
}

/* Waits until sql on tenant t's database returns want. */
static void wait_scalar(int t, const char *sql, long want)
{
    PGconn *c = itest_connect(F.db[t]);
    for (int i = 0; i < 150 && itest_scalar(c, sql) != want; i++)
        sleep_ms(200);
    assert_int_equal(itest_scalar(c, sql), want);
    PQfinish(c);
}

static void write_coordinators_ring(bool revoke_current)
{
    char path[256], text[2048], cur[512], old[512];
    snprintf(path, sizeof(path), "%s/coord.pub", F.dir);
    snprintf(cur, sizeof(cur), "%s", fleet_read_line(path));
    snprintf(path, sizeof(path), "%s/coord-old.pub", F.dir);
    snprintf(old, sizeof(old), "%s", fleet_read_line(path));
    snprintf(text, sizeof(text), "%s %s\n%s revoked\n", cur,
             revoke_current ? "revoked" : "name=current", old);
    fleet_write_ring(&F, "coordinators.ring", text);
}

/* district-002's finished job set back to `accepted` (as migration SQL could): not run again
 * at the restart, its row fails and the refusal is audited as a replay. */
static void set_back_finished_job(void)
{
    char sql[512];
    PGconn *t2 = itest_connect(F.db[1]);
    PGresult *r = PQexec(t2, "SELECT job_id FROM pgrollout.jobs WHERE rollout_id = 'plant-after'");
    assert_int_equal(PQntuples(r), 1);
    char job[64];
    snprintf(job, sizeof(job), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    assert_int_equal(fleet_stop_agent(&F, 0, SIGTERM), 0);
    snprintf(sql, sizeof(sql), "UPDATE pgrollout.jobs SET state = 'accepted' WHERE job_id = '%s'",
             job);
    itest_exec(t2, sql);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pgrollout.audit_outbox WHERE record::jsonb->>'action' = "
             "'job_start' AND record::jsonb->>'job_id' = '%s'",
             job);
    long starts = itest_scalar(t2, sql);
    fleet_start_agent(&F, 0);
    char failed[512];
    snprintf(failed, sizeof(failed),
             "SELECT count(*) FROM pgrollout.jobs WHERE job_id = '%s' AND state = 'failed' AND "
             "error LIKE '%%ended before%%'",
             job);
    wait_scalar(1, failed, 1);
    wait_scalar(1,
                "SELECT count(*) FROM pgrollout.audit_outbox WHERE record::jsonb->>'action' = "
                "'job_rejected' AND record::jsonb->>'reason' = 'replay'",
                1);
    assert_int_equal(itest_scalar(t2, sql), starts); /* it never started again */
    PQfinish(t2);
}

/* A planted row: district-001's signed job, stored as unfinished in district-002's database. */
static void test_resume_refuses_planted_job(void **state)
{
    (void)state;
    char sql[256];
    fleet_setup(&F, 4 * 1024 * 1024); /* district-002 never migrated */
    fleet_start_all(&F);
    run_ok("plant-src", "\"district-001\"");
    assert_int_equal(fleet_stop_agent(&F, 0, SIGTERM), 0);
    PGconn *ctl = itest_connect(F.ctl_db);
    PGresult *r = PQexec(ctl, "SELECT job_id, envelope FROM pgrollout_control.job_outbox WHERE "
                              "tenant_id = 'district-001'");
    assert_int_equal(PQntuples(r), 1);
    PGconn *t2 = itest_connect(F.db[1]);
    const char *params[] = {PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1)};
    PGresult *ins = PQexecParams(t2,
                                 "INSERT INTO pgrollout.jobs (job_id, seq, type, state, envelope) "
                                 "VALUES ($1, NULL, 'apply', 'accepted', $2)",
                                 2, NULL, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(ins), PGRES_COMMAND_OK);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pgrollout.jobs WHERE job_id = '%s' AND state = 'failed'",
             PQgetvalue(r, 0, 0));
    PQclear(ins);
    PQclear(r);
    PQfinish(ctl);
    fleet_start_agent(&F, 0); /* resumes: must refuse the planted row */
    wait_scalar(1, sql, 1);
    wait_scalar(1,
                "SELECT count(*) FROM pgrollout.audit_outbox WHERE record::jsonb->>'action' = "
                "'job_rejected' AND record::jsonb->>'reason' = 'wrong_tenant'",
                1);
    assert_int_equal(idx_count(1), 0);
    PQfinish(t2);
    run_ok("plant-after", "\"district-001\", \"district-002\"");
    assert_int_equal(idx_count(1), 34);
    set_back_finished_job();
    fleet_stop_all(&F);
}

/* Holds an exclusive lock on medication_logs (the first migration's table) in tenant t. */
static PGconn *hold_lock(int t)
{
    PGconn *c = itest_connect(F.db[t]);
    itest_exec(c, "BEGIN");
    itest_exec(c, "LOCK TABLE medication_logs IN ACCESS EXCLUSIVE MODE");
    return c;
}

static void set_max_parallel_one(int a)
{
    char path[256], text[16384], buf[16384];
    snprintf(path, sizeof(path), "%s/agent%d.ini", F.dir, a + 1);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_non_null(strstr(buf, "[agent]\n"));
    snprintf(text, sizeof(text), "[agent]\nmax_parallel = 1\n%s", buf + strlen("[agent]\n"));
    itest_write_file(path, text);
}

/* Two tenants of agent 1 with max_parallel 1: one job runs (held by a lock), the other waits in
 * the queue; SIGHUP revokes the coordinator key that signed both. */
static void test_sighup_rechecks_queued_jobs(void **state)
{
    (void)state;
    char plan[1024];
    set_max_parallel_one(0);
    PGconn *l1 = hold_lock(0), *l2 = hold_lock(1);
    fleet_start_all(&F);
    plan_for(plan, sizeof(plan), "queued", "\"district-001\", \"district-002\"");
    FILE *run = fleet_run_start(&F, plan, 60);
    /* both recorded: one running (waiting for its lock), one accepted and queued */
    long both = 0;
    for (int i = 0; i < 150 && both != 2; i++) {
        sleep_ms(200);
        both = 0;
        for (int t = 0; t < 2; t++) {
            PGconn *c = itest_connect(F.db[t]);
            both += itest_scalar_or(c,
                                    "SELECT count(*) FROM pgrollout.jobs WHERE rollout_id = "
                                    "'queued'",
                                    0);
            PQfinish(c);
        }
    }
    assert_int_equal(both, 2);
    write_coordinators_ring(true);
    assert_int_equal(kill(F.agent_pid[0], SIGHUP), 0);
    /* the queued one fails before it starts; the running one is not stopped */
    long failed = 0;
    int queued_t = -1;
    for (int i = 0; i < 150 && queued_t < 0; i++) {
        sleep_ms(200);
        for (int t = 0; t < 2; t++) {
            PGconn *c = itest_connect(F.db[t]);
            failed = itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs WHERE rollout_id = "
                                     "'queued' AND state = 'failed' AND error LIKE 'unfinished job "
                                     "not run:%'");
            PQfinish(c);
            if (failed == 1)
                queued_t = t;
        }
    }
    assert_true(queued_t >= 0);
    wait_scalar(queued_t,
                "SELECT count(*) FROM pgrollout.audit_outbox WHERE record::jsonb->>'action' = "
                "'job_rejected' AND record::jsonb->>'reason' = 'revoked_key'",
                1);
    PQfinish(l1);
    PQfinish(l2);
    assert_int_not_equal(fleet_run_finish(run, out, sizeof(out)), 0); /* one tenant refused */
    assert_int_equal(idx_count(queued_t), 0);
    assert_int_equal(idx_count(1 - queued_t), 34);
    /* trusted again: a normal rollout reaches the refused tenant */
    write_coordinators_ring(false);
    assert_int_equal(kill(F.agent_pid[0], SIGHUP), 0);
    sleep_ms(1500);
    run_ok("queued-after", "\"district-001\", \"district-002\"");
    assert_int_equal(idx_count(queued_t), 34);
    fleet_stop_all(&F);
}

static void revoke_agent2(bool revoked)
{
    char path[256], text[4096], a1[512], a2[512];
    snprintf(path, sizeof(path), "%s/agent1.pub", F.dir);
    snprintf(a1, sizeof(a1), "%s", fleet_read_line(path));
    snprintf(path, sizeof(path), "%s/agent2.pub", F.dir);
    snprintf(a2, sizeof(a2), "%s", fleet_read_line(path));
    snprintf(text, sizeof(text),
             "%s tenants=district-001,district-002\n%s tenants=district-003%s\n", a1, a2,
             revoked ? " revoked" : "");
    fleet_write_ring(&F, "agents.ring", text);
}

/* The coordinator (events) and its audit collector (--collect-audit) stop trusting agent 2's
 * key on SIGHUP, without a restart. */
static void test_coordinator_reloads_agent_keyring(void **state)
{
    (void)state;
    char plan[1024], path[256], cfg[256], log[256];
    PGconn *ctl = itest_connect(F.ctl_db);
    long alerts0 = itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.audit_alerts WHERE "
                                     "tenant_id = 'district-003'");
    fleet_start_agent(&F, 0); /* agent 2 starts after the revocation */
    plan_for(plan, sizeof(plan), "reload", "\"district-003\"");
    snprintf(path, sizeof(path), "%s/plan.json", F.dir);
    itest_write_file(path, plan);
    snprintf(cfg, sizeof(cfg), "%s/coord.ini", F.dir);
    snprintf(log, sizeof(log), "%s/coord-reload.log", F.dir);
    char *const argv[] = {(char *)(uintptr_t)COORD_BIN,
                          "run",
                          "--config",
                          cfg,
                          "--plan",
                          path,
                          "--timeout",
                          "120",
                          "--collect-audit",
                          NULL};
    pid_t coord = fleet_spawn(log, false, argv);
    for (int i = 0; i < 150 && itest_scalar_or(ctl,
                                               "SELECT count(*) FROM "
                                               "pgrollout_control.tenant_runs WHERE "
                                               "rollout_id = 'reload' AND state = 'sent'",
                                               0) != 1;
         i++)
        sleep_ms(200);
    revoke_agent2(true);
    assert_int_equal(kill(coord, SIGHUP), 0);
    sleep_ms(1000);
    fleet_start_agent(&F, 1);
    /* the tenant finishes its job, but nothing agent 2 signs is taken any more */
    wait_scalar(2,
                "SELECT count(*) FROM pgrollout.jobs WHERE rollout_id = 'reload' AND state = "
                "'succeeded'",
                1);
    for (int i = 0; i < 100 && itest_scalar(ctl, "SELECT count(*) FROM "
                                                 "pgrollout_control.audit_alerts WHERE "
                                                 "tenant_id = 'district-003'") == alerts0;
         i++)
        sleep_ms(200);
    assert_true(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.audit_alerts WHERE "
                                  "tenant_id = 'district-003'") > alerts0);
    sleep_ms(2000);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.tenant_runs WHERE "
                                       "rollout_id = 'reload' AND state = 'succeeded'"),
                     0);
    assert_int_equal(kill(coord, 0), 0); /* still running */
    kill(coord, SIGTERM);
    waitpid(coord, NULL, 0);
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    fclose(f);
    assert_non_null(strstr(out, "reloaded agent keyring"));
    /* trusted again (the file is read at start too): a normal rollout of district-003 */
    revoke_agent2(false);
    run_ok("reload-after", "\"district-003\"");
    PQfinish(ctl);
    fleet_stop_all(&F);
}

int main(void)
{
    fleet_setup(&F, 4 * 1024 * 1024);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sighup_rechecks_queued_jobs),
        cmocka_unit_test(test_resume_refuses_planted_job),
        cmocka_unit_test(test_coordinator_reloads_agent_keyring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
