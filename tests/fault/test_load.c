/*
 * test_load.c - load: 200 tenant databases, 4 agents, a full staged rollout of the four White
 * Cross migrations over the real broker of tests/run.sh. Every tenant's catalog must be right,
 * every job, event and audit record accounted for (counts match between the tenant databases,
 * the control database and the central audit log, which must verify), and the agents' resident
 * memory must stay steady: sampled before, during and after the rollout.
 */
#include "rollout_env.h"

#include <stdatomic.h>
#include <pthread.h>
#include <time.h>

#define MIGS    PGR_SOURCE_DIR "/migrations"
#define TENANTS 200
#define AGENTS  4

static fleet F;
static char out[1 << 20];
static atomic_int sampling;
static long rss_start[AGENTS], rss_peak[AGENTS];

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *fp = fopen(path, "r");
    while (fp != NULL && fgets(line, sizeof(line), fp) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    }
    if (fp != NULL)
        fclose(fp);
    return kb;
}

/* Peak RSS per agent while sampling; rss_start is taken 3 s in (agents started and connected). */
static void *sampler(void *arg)
{
    (void)arg;
    double t0 = now_s();
    while (sampling) {
        for (int a = 0; a < AGENTS; a++) {
            if (rss_start[a] == 0 && now_s() - t0 > 3)
                rss_start[a] = rss_kb(F.agent_pid[a]);
        }
        for (int a = 0; a < AGENTS; a++) {
            long kb = rss_kb(F.agent_pid[a]);
            rss_peak[a] = kb > rss_peak[a] ? kb : rss_peak[a];
        }
        struct timespec ts = {0, 250 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    /* Under AddressSanitizer (tests/run.sh) freed memory is held in a quarantine of up to
     * 256 MB, which would read as growth: the agents run without it, so that their RSS shows
     * what the program keeps (LeakSanitizer still checks for leaks at their exit). */
    const char *asan = getenv("ASAN_OPTIONS");
    char opts[512];
    snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=0:thread_local_quarantine_size_kb=0",
             asan != NULL ? asan : "", asan != NULL && *asan != '\0' ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    fleet_setup_full(&F, TENANTS, AGENTS, 65536, NULL);
    F.timeout_s = 600;
    fleet_start_all(&F);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fleet_stop_all(&F);
    return 0;
}

static char *plan_text(void)
{
    static char plan[16384];
    int n = snprintf(plan, sizeof(plan),
                     "{\"name\": \"load-200\", \"migrations\": \"" MIGS "\", \"target\": "
                     "\"20251106000003\", \"options\": {\"orphans\": \"abort\", \"retries\": 5}, "
                     "\"waves\": [{\"name\": \"canary\", \"tenants\": [\"district-001\", "
                     "\"district-002\"], \"max_parallel\": 2}, {\"name\": \"fleet\", \"percent\": "
                     "100, \"max_parallel\": 16}], \"tenants\": [");
    for (int t = 0; t < TENANTS; t++)
        n += snprintf(plan + n, sizeof(plan) - (size_t)n, "%s\"%s\"", t > 0 ? ", " : "",
                      F.tenant[t]);
    snprintf(plan + n, sizeof(plan) - (size_t)n, "]}");
    return plan;
}

static void test_rollout_200_tenants_4_agents(void **state)
{
    (void)state;
    pthread_t th;
    sampling = 1;
    assert_int_equal(pthread_create(&th, NULL, sampler, NULL), 0);
    double t0 = now_s();
    int rc = fleet_run(&F, plan_text(), out, sizeof(out));
    double took = now_s() - t0;
    sampling = 0;
    pthread_join(th, NULL);
    if (rc != 0)
        fail_msg("rollout of 200 tenants exited %d:\n%s", rc, out);
    assert_non_null(strstr(out, "rollout load-200: succeeded (0 failed)"));
    printf("200 tenants, 4 agents: rollout took %.1f s\n", took);

    /* every tenant's catalog; one apply job each, which checked its objects (no verify job) */
    long outbox_total = 0;
    for (int t = 0; t < F.n; t++) {
        PGconn *c = itest_connect(F.db[t]);
        long idx = itest_scalar(c, "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = "
                                   "i.indexrelid WHERE c.relname LIKE 'idx_%' AND i.indisvalid");
        long invalid = itest_scalar(c, "SELECT count(*) FROM pg_index WHERE NOT indisvalid");
        long fk = itest_scalar(c, "SELECT count(*) FROM pg_constraint WHERE conname = "
                                  "'fk_medication_logs_medication_id' AND convalidated");
        long jobs = itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs");
        long applied = itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs WHERE state = "
                                       "'succeeded' AND type = 'apply'");
        if (idx != 34 || invalid != 0 || fk != 1 || jobs != 1 || applied != 1)
            fail_msg("tenant %s: %ld valid indexes, %ld invalid, fk %ld, %ld jobs (%ld applied)",
                     F.tenant[t], idx, invalid, fk, jobs, applied);
        PQfinish(c);
    }
    /* the control database saw each tenant's result exactly once */
    assert_int_equal(fleet_ctl_scalar(&F,
                                      "SELECT count(*) FROM pgrollout_control.tenant_runs WHERE "
                                      "rollout_id = 'load-200' AND state = 'succeeded'"),
                     TENANTS);
    assert_int_equal(fleet_ctl_scalar(&F,
                                      "SELECT count(*) FROM pgrollout_control.events WHERE type = "
                                      "'result' AND payload->>'job_type' = 'apply'"),
                     TENANTS);
    assert_int_equal(fleet_ctl_scalar(&F, "SELECT count(DISTINCT tenant_id) FROM "
                                          "pgrollout_control.events WHERE type = 'result' AND "
                                          "payload->>'job_type' = 'apply'"),
                     TENANTS);

    /* memory: steady (no growth with the work done) */
    for (int a = 0; a < AGENTS; a++) {
        long after = rss_kb(F.agent_pid[a]);
        printf("agent %d RSS: at start %ld KiB, peak during rollout %ld KiB, after %ld KiB\n",
               a + 1, rss_start[a], rss_peak[a], after);
        /* sanitizer builds carry shadow memory; growth, not size, is what is checked */
        assert_true(after - rss_start[a] < 64 * 1024);
    }

    /* every audit record of every tenant (agent_stop included) reaches the central log, and
     * the chains verify */
    fleet_stop_all(&F);
    outbox_total = fleet_assert_audit_collected(&F, out, sizeof(out));
    assert_int_equal(fleet_ctl_scalar(&F, "SELECT count(DISTINCT tenant_id) FROM "
                                          "pgrollout_control.audit_log"),
                     TENANTS);
    printf("audit: %ld records from %d tenants collected and verified\n", outbox_total, TENANTS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rollout_200_tenants_4_agents),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
