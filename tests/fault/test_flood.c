/*
 * test_flood.c - unauthenticated writers cannot stall an agent (real PostgreSQL, real Kafka, the
 * real binaries). 10,000 garbage messages keyed to district-001 go to the jobs topic while its
 * database is slow (a test session holds its audit chain head, so every audit write there waits
 * for its lock timeout), and a rollout to district-002 (same agent) and district-003 (the other
 * agent) runs meanwhile. The rollout must finish while district-001 is still slow; afterwards
 * the garbage is on record in district-001's chain as a few coalesced job_rejected records whose
 * counts add up to 10,000, with one security event each. The printed start delays (job published
 * to job recorded in the tenant database, with and without the flood) go to docs/BENCHMARKS.md.
 */
#include "rollout_env.h"

#include <time.h>

#define MIGS    PGR_SOURCE_DIR "/migrations"
#define GARBAGE 10000

static fleet F;
static char out[1 << 20];

static void plan_for(char *buf, size_t len, const char *name)
{
    snprintf(buf, len,
             "{\"name\": \"%s\", \"migrations\": \"" MIGS "\", \"target\": \"20251106000003\", "
             "\"tenants\": [\"district-002\", \"district-003\"]}",
             name);
}

static void run_ok(const char *name)
{
    char plan[1024];
    plan_for(plan, sizeof(plan), name);
    int rc = fleet_run(&F, plan, out, sizeof(out));
    if (rc != 0)
        fail_msg("rollout %s failed (%d):\n%s", name, rc, out);
}

/* The longest delay (ms) from a job written to the outbox to its record in the tenant database. */
static long start_delay_ms(const char *rollout)
{
    PGconn *ctl = itest_connect(F.ctl_db);
    long worst = 0;
    for (int t = 1; t < 3; t++) {
        char sql[512];
        snprintf(
            sql, sizeof(sql),
            "SELECT extract(epoch FROM o.created_at) * 1000 FROM pgrollout_control.job_outbox o "
            "JOIN pgrollout_control.tenant_runs r ON r.job_id = o.job_id WHERE "
            "r.rollout_id = '%s' AND r.tenant_id = '%s'",
            rollout, F.tenant[t]);
        long sent = itest_scalar(ctl, sql);
        PGconn *c = itest_connect(F.db[t]);
        snprintf(sql, sizeof(sql),
                 "SELECT extract(epoch FROM received_at) * 1000 FROM pgrollout.jobs WHERE "
                 "rollout_id = '%s'",
                 rollout);
        long got = itest_scalar(c, sql);
        PQfinish(c);
        worst = got - sent > worst ? got - sent : worst;
    }
    PQfinish(ctl);
    return worst;
}

/* GARBAGE messages keyed to district-001: random bytes, and envelopes claiming an unknown key. */
static void flood(void)
{
    char topic[256];
    int derr = 0;
    rd_kafka_t *p = NULL;
    pgr_config *cfg = fleet_kafka_config(&F);
    assert_int_equal(pgr_kafka_producer_new(cfg, &p, &derr, NULL), PGR_OK);
    snprintf(topic, sizeof(topic), "%sjobs", F.prefix);
    for (int i = 0; i < GARBAGE; i++) {
        char msg[256];
        if (i % 2 == 0)
            snprintf(msg, sizeof(msg), "garbage %d \x1b[2J", i);
        else
            snprintf(msg, sizeof(msg),
                     "{\"v\":1,\"kid\":\"00000000%08x\",\"payload\":\"e30=\",\"sig\":\"AAAA\"}", i);
        assert_int_equal(pgr_kafka_send(p, topic, "district-001", msg, strlen(msg), NULL), PGR_OK);
    }
    assert_int_equal(rd_kafka_flush(p, 30000), 0);
    rd_kafka_destroy(p);
    pgr_config_free(cfg);
}

static void test_flood_of_garbage_stalls_nothing(void **state)
{
    (void)state;
    fleet_start_all(&F);
    run_ok("flood-setup"); /* the migrations applied: the two rollouts below are alike */
    run_ok("flood-quiet");
    long quiet = start_delay_ms("flood-quiet");
    /* district-001's database turns slow: its chain head is locked by this session */
    PGconn *slow = itest_connect(F.db[0]);
    itest_exec(slow, "BEGIN");
    itest_exec(slow, "SELECT * FROM pgrollout.audit_head FOR UPDATE");
    long before = itest_scalar(slow, "SELECT count(*) FROM pgrollout.audit_outbox");
    flood();
    run_ok("flood-busy");
    long busy = start_delay_ms("flood-busy");
    printf("job start delay (outbox -> recorded), worst of 2 tenants: %ld ms quiet, %ld ms "
           "with %d garbage messages for a slow tenant of the same agent\n",
           quiet, busy, GARBAGE);
    /* finished while district-001 was still slow: nothing was written there meanwhile */
    assert_int_equal(itest_scalar(slow, "SELECT count(*) FROM pgrollout.audit_outbox"), before);
    itest_exec(slow, "ROLLBACK");
    /* every garbage message counted, in a few records (one per reason and interval) */
    const char *sum = "SELECT coalesce(sum((record::jsonb->>'count')::bigint), 0) FROM "
                      "pgrollout.audit_outbox WHERE record::jsonb->>'action' = 'job_rejected'";
    for (int i = 0; i < 150 && itest_scalar(slow, sum) < GARBAGE; i++) {
        struct timespec w = {0, 200000000L};
        nanosleep(&w, NULL);
    }
    assert_int_equal(itest_scalar(slow, sum), GARBAGE);
    long records = itest_scalar(slow, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                      "record::jsonb->>'action' = 'job_rejected'");
    printf("%d garbage messages: %ld job_rejected record(s)\n", GARBAGE, records);
    assert_true(records >= 1 && records <= 20);
    PQfinish(slow);
    /* both agents still serve: a last rollout reaches every tenant */
    char plan[1024];
    snprintf(plan, sizeof(plan),
             "{\"name\": \"flood-after\", \"migrations\": \"" MIGS "\", \"target\": "
             "\"20251106000003\", \"tenants\": [\"district-001\", \"district-002\", "
             "\"district-003\"]}");
    int rc = fleet_run(&F, plan, out, sizeof(out));
    if (rc != 0)
        fail_msg("rollout after the flood failed (%d):\n%s", rc, out);
    for (int t = 0; t < 3; t++) {
        PGconn *c = itest_connect(F.db[t]);
        fleet_assert_migrated(c);
        PQfinish(c);
    }
    fleet_stop_all(&F);
}

int main(void)
{
    fleet_setup(&F, 4 * 1024 * 1024);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flood_of_garbage_stalls_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
