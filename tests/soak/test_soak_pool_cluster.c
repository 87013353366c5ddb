/*
 * test_soak_pool_cluster.c - the heaviest case (label soak; tests/run.sh runs it too): 200
 * tenants served by a pool of three agents over a three-broker Kafka cluster (started here by
 * `PGR_KAFKA_BROKERS=3 PGR_SERVICES=kafka deploy/local/services.sh up`; PostgreSQL is the one of
 * tests/run.sh). While the rollout's index builds run, one agent and the broker leading most
 * jobs partitions are killed (SIGKILL); the broker comes back a minute later.
 *
 * Nothing may be lost or done twice: every tenant migrated once (34 valid indexes, the foreign
 * key validated, one apply job, each step recorded done at most once), no record of an agent in
 * a chain after another took the tenant over and started its job there, each tenant's result
 * stored once by the coordinator, every audit record collected once and every chain verified.
 */
#include "pool_env.h"

#define TENANTS 200
#define AGENTS  3

static fleet F;
static char out[1 << 20];

static int setup(void **state)
{
    (void)state;
    if (!pool_cluster_up(out, sizeof(out)))
        return -1;
    fleet_pool = "soak";
    fleet_setup_full(&F, TENANTS, AGENTS, 65536, NULL);
    F.timeout_s = 900;
    fleet_start_all(&F);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int a = 0; a < AGENTS; a++) {
        if (F.agent_pid[a] > 0)
            fleet_stop_agent(&F, a, SIGKILL);
    }
    pool_cluster_cmd("down", out, sizeof(out));
    return 0;
}

static void test_soak_agent_and_broker_killed(void **state)
{
    (void)state;
    static char p[16384];
    char topic[128], args[64];
    /* a first, small run creates the topics; the pool then shares the partitions */
    pool_plan(&F, p, sizeof(p), "soak-first", "20251106000000", 16);
    int rc = fleet_run(&F, p, out, sizeof(out));
    if (rc != 0)
        fail_msg("first rollout exited %d:\n%s", rc, out);
    pool_plan(&F, p, sizeof(p), "soak", "20251106000003", 8);
    double t0 = now_s();
    FILE *run = fleet_run_start(&F, p, 900);
    int victim = pool_busy_owner(&F, now_s() + 300);
    assert_true(victim >= 0);
    snprintf(topic, sizeof(topic), "%sjobs", F.prefix);
    int broker = pool_busiest_leader(topic);
    assert_int_equal(fleet_stop_agent(&F, victim, SIGKILL), -SIGKILL);
    snprintf(args, sizeof(args), "kafka-stop %d --kill", broker);
    assert_int_equal(pool_cluster_cmd(args, out, sizeof(out)), 0);
    double killed = now_s();
    char killed_at[32]; /* RFC 3339, as the records' `at` (they compare as text) */
    time_t now = time(NULL);
    strftime(killed_at, sizeof(killed_at), "%Y-%m-%dT%H:%M:%S", gmtime(&now));
    printf("agent-%d and broker %d killed %.1f s into the rollout\n", victim + 1, broker,
           killed - t0);
    rc = fleet_run_finish(run, out, sizeof(out));
    if (rc != 0)
        fail_msg("soak rollout exited %d:\n%s", rc, out);
    assert_non_null(strstr(out, "rollout soak: succeeded (0 failed)"));
    printf("200 tenants: rollout took %.1f s with an agent and a broker killed\n", now_s() - t0);
    while (now_s() < killed + 60)
        pool_sleep_ms(200);
    snprintf(args, sizeof(args), "kafka-start %d", broker);
    assert_int_equal(pool_cluster_cmd(args, out, sizeof(out)), 0);

    int moved = 0;
    for (int t = 0; t < F.n; t++) {
        PGconn *c = itest_connect(F.db[t]);
        fleet_assert_applied_once(c, 2);
        pool_assert_steps_done_once(c);
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM pgrollout.audit_outbox WHERE record::jsonb->>'action' = "
                 "'tenant_taken_over' AND record::jsonb->>'previous_agent' = 'agent-%d' AND "
                 "record::jsonb->>'at' > '%s'",
                 victim + 1, killed_at);
        moved += itest_scalar(c, sql) > 0; /* taken over from the killed agent */
        PQfinish(c);
        assert_true(pool_owner_of(&F, t) != victim);
        pool_assert_fenced_chain(&F, t, -1);
    }
    assert_true(moved > 0);
    assert_int_equal(fleet_ctl_scalar(&F, "SELECT count(*) FROM pgrollout_control.events WHERE "
                                          "type = 'result' AND payload->>'job_type' = 'apply' "
                                          "AND payload->>'outcome' = 'succeeded'"),
                     2 * TENANTS);
    for (int a = 0; a < AGENTS; a++) {
        if (a != victim)
            assert_int_equal(fleet_stop_agent(&F, a, SIGTERM), 0);
    }
    long total = fleet_assert_audit_collected(&F, out, sizeof(out));
    printf("audit: %ld records of %d tenants collected once and verified; %d tenant(s) taken "
           "over from agent-%d after its kill\n",
           total, TENANTS, moved, victim + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_soak_agent_and_broker_killed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
