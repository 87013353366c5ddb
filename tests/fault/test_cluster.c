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
#include "rollout_env.h"

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <time.h>

#define MIGS     PGR_SOURCE_DIR "/migrations"
#define SERVICES PGR_SOURCE_DIR "/deploy/local/services.sh"
#define TENANTS  6
#define BROKERS  3

static fleet F;
static char out[1 << 20];
static char state_dir[64];

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* services.sh ARGS on the cluster's state dir; its stdout into out. */
static int cluster_cmd(const char *args)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "PGR_STATE_DIR=%s PGR_SERVICES=kafka PGR_KAFKA_BROKERS=%d " SERVICES " %s", state_dir,
             BROKERS, args);
    return run_cmd(cmd, out, sizeof(out));
}

static int setup(void **state)
{
    (void)state;
    snprintf(state_dir, sizeof(state_dir), "/tmp/pgrcluster.%d", (int)getpid());
    if (cluster_cmd("up") != 0) {
        fprintf(stderr, "could not start the three-broker cluster:\n%s\n", out);
        return -1;
    }
    const char *p = strstr(out, "export PGR_KAFKA_BOOTSTRAP=");
    assert_non_null(p);
    char boot[256];
    assert_int_equal(sscanf(p + strlen("export PGR_KAFKA_BOOTSTRAP="), "%255s", boot), 1);
    setenv("PGR_KAFKA_BOOTSTRAP", boot, 1); /* the fleet's agents and coordinator use it */
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
    cluster_cmd("down");
    return 0;
}

/* The broker (1-3) that leads most partitions of topic, or -1. */
static int busiest_leader(const char *topic)
{
    char errstr[256];
    int lead[BROKERS + 1] = {0}, best = -1;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", getenv("PGR_KAFKA_BOOTSTRAP"), errstr,
                      sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(rk, 0, t, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1) {
        for (int p = 0; p < md->topics[0].partition_cnt; p++) {
            int32_t l = md->topics[0].partitions[p].leader;
            if (l >= 1 && l <= BROKERS)
                lead[l]++;
        }
        printf("replicas of %s[0]: %d, leaders: broker 1 %d, 2 %d, 3 %d partitions\n", topic,
               md->topics[0].partitions[0].replica_cnt, lead[1], lead[2], lead[3]);
        assert_int_equal(md->topics[0].partitions[0].replica_cnt, BROKERS);
    }
    for (int b = 1; b <= BROKERS; b++)
        best = best < 0 || lead[b] > lead[best] ? b : best;
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    rd_kafka_destroy(rk);
    return lead[best] > 0 ? best : -1;
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
    int n = snprintf(plan, sizeof(plan),
                     "{\"name\": \"cluster\", \"migrations\": \"" MIGS "\", \"target\": "
                     "\"20251106000003\", \"waves\": [{\"name\": \"all\", \"percent\": 100, "
                     "\"max_parallel\": 4}], \"tenants\": [");
    for (int t = 0; t < F.n; t++)
        n += snprintf(plan + n, sizeof(plan) - (size_t)n, "%s\"%s\"", t > 0 ? ", " : "",
                      F.tenant[t]);
    snprintf(plan + n, sizeof(plan) - (size_t)n, "]}");
    FILE *run = fleet_run_start(&F, plan, 300);
    double until = now_s() + 120;
    while (!some_job_running() && now_s() < until)
        sleep_ms(50);
    snprintf(topic, sizeof(topic), "%sjobs", F.prefix);
    int victim = busiest_leader(topic);
    assert_true(victim >= 1);
    snprintf(args, sizeof(args), "kafka-stop %d --kill", victim);
    assert_int_equal(cluster_cmd(args), 0);
    double killed = now_s();
    printf("broker %d (leader of most jobs partitions) killed while jobs ran\n", victim);
    int rc = fleet_run_finish(run, out, sizeof(out));
    double took = now_s() - killed;
    if (rc != 0)
        fail_msg("rollout with broker %d killed exited %d:\n%s", victim, rc, out);
    assert_non_null(strstr(out, "rollout cluster: succeeded (0 failed)"));
    printf("the rollout ended %.1f s after the kill, on two brokers\n", took);
    while (now_s() < killed + 60)
        sleep_ms(200);
    snprintf(args, sizeof(args), "kafka-start %d", victim);
    assert_int_equal(cluster_cmd(args), 0);

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
