/*
 * test_cluster.c - a rollout on a real three-broker Kafka cluster (KRaft, started here by
 * `PGR_KAFKA_BROKERS=3 PGR_SERVICES=kafka deploy/local/services.sh up` in a state dir of its
 * own; PostgreSQL is the one of tests/run.sh). Topics get 3 copies and min.insync.replicas=2.
 *
 * While the rollout's jobs run, the broker that leads most partitions of the jobs topic is
 * killed (SIGKILL) and started again a minute later. Nothing may be lost or done twice: every
 * tenant applied once, each tenant's result stored once by the coordinator, every audit record
 * of every tenant published, collected once into the central log, and the chains verify.
 */
#include "pool_env.h"

#define TENANTS 6

static fleet F;
static char out[1 << 20];

static int setup(void **state)
{
    (void)state;
    if (!pool_cluster_up(out, sizeof(out)))
        return -1;
    fleet_setup_n(&F, TENANTS, 65536);
    fleet_start_all(&F);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int a = 0; a < fleet_agents(&F); a++) {
        if (F.agent_pid[a] > 0)
            fleet_stop_agent(&F, a, SIGKILL);
    }
    pool_cluster_cmd("down", out, sizeof(out));
    return 0;
}

static bool some_job_running(void)
{
    for (int t = 0; t < F.n; t++) {
        PGconn *c = itest_connect(F.db[t]);
        long n =
            itest_scalar_or(c, "SELECT count(*) FROM pgrollout.jobs WHERE state = 'running'", 0);
        PQfinish(c);
        if (n > 0)
            return true;
    }
    return false;
}

static void test_rollout_survives_leader_broker_killed(void **state)
{
    (void)state;
    char plan[2048], topic[128], args[64];
    pool_plan(&F, plan, sizeof(plan), "cluster", "20251106000003", 4);
    FILE *run = fleet_run_start(&F, plan, 300);
    double until = now_s() + 120;
    while (!some_job_running() && now_s() < until)
        pool_sleep_ms(50);
    snprintf(topic, sizeof(topic), "%sjobs", F.prefix);
    int victim = pool_busiest_leader(topic);
    snprintf(args, sizeof(args), "kafka-stop %d --kill", victim);
    assert_int_equal(pool_cluster_cmd(args, out, sizeof(out)), 0);
    double killed = now_s();
    printf("broker %d (leader of most jobs partitions) killed while jobs ran\n", victim);
    int rc = fleet_run_finish(run, out, sizeof(out));
    double took = now_s() - killed;
    if (rc != 0)
        fail_msg("rollout with broker %d killed exited %d:\n%s", victim, rc, out);
    assert_non_null(strstr(out, "rollout cluster: succeeded (0 failed)"));
    printf("the rollout ended %.1f s after the kill, on two brokers\n", took);
    while (now_s() < killed + 60)
        pool_sleep_ms(200);
    snprintf(args, sizeof(args), "kafka-start %d", victim);
    assert_int_equal(pool_cluster_cmd(args, out, sizeof(out)), 0);

    /* nothing applied twice, every result stored once */
    for (int t = 0; t < F.n; t++) {
        PGconn *c = itest_connect(F.db[t]);
        fleet_assert_applied_once(c, 1);
        assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs"), 1);
        PQfinish(c);
    }
    assert_int_equal(fleet_ctl_scalar(&F,
                                      "SELECT count(*) FROM pgrollout_control.tenant_runs WHERE "
                                      "rollout_id = 'cluster' AND state = 'succeeded'"),
                     TENANTS);
    assert_int_equal(fleet_ctl_scalar(&F,
                                      "SELECT count(*) FROM pgrollout_control.events WHERE type = "
                                      "'result' AND payload->>'job_type' = 'apply' AND "
                                      "payload->>'outcome' = 'succeeded'"),
                     TENANTS);

    /* every audit record out, collected once, the chains verify */
    fleet_stop_all(&F);
    long outbox_total = fleet_assert_audit_collected(&F, out, sizeof(out));
    printf("audit: %ld records of %d tenants collected once and verified\n", outbox_total, TENANTS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rollout_survives_leader_broker_killed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
