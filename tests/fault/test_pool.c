/*
 * test_pool.c - agent pools against the real broker and PostgreSQL of tests/run.sh. Three agents
 * with the same pool and [tenants] share the jobs partitions through Kafka's group rebalancing.
 *
 * 1. While a rollout's index builds run, one agent is killed (SIGKILL). The others take its
 *    tenants over after the group's session timeout and resume the interrupted jobs; the rollout
 *    finishes without an operator, every tenant fully migrated, no migration applied and no step
 *    recorded done twice, and no record of an agent in a tenant's chain after another agent
 *    took the tenant over and started its job there.
 * 2. One agent is paused (SIGSTOP) for longer than the session timeout: the others take its
 *    tenants over; woken (SIGCONT), it writes nothing for them, rejoins the group and gets
 *    partitions again, and a rollout then succeeds on every tenant.
 * 3. One agent dies (failpoint result_unsent) right after recording a job's end, before its
 *    result event is sent: the agent that takes the tenant over sends the result again, and the
 *    coordinator stores every tenant's result once.
 */
#include "pool_env.h"

#define TENANTS 9
#define AGENTS  3

static fleet F;
static char out[1 << 20];

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits (up to 60 s) until every tenant is taken over by an agent other than `not` (-1: any). */
static void wait_owned(int not )
{
    for (double until = now_s() + 60; now_s() < until; pool_sleep_ms(250)) {
        int ok = 0;
        for (int t = 0; t < F.n; t++) {
            int a = pool_owner_of(&F, t);
            ok += a >= 0 && a != not ;
        }
        if (ok == F.n)
            return;
    }
    fail_msg("tenants not all served by the pool (without agent %d) within 60 s", not +1);
}

/* Every tenant migrated once: `jobs` apply jobs (succeeded), four migrations applied and
 * audited once, every step recorded done at most once, the catalog right. */
static void assert_migrated_once(long jobs)
{
    for (int t = 0; t < F.n; t++) {
        PGconn *c = itest_connect(F.db[t]);
        fleet_assert_applied_once(c, jobs);
        pool_assert_steps_done_once(c);
        PQfinish(c);
    }
}

static int setup_pool(const char *name)
{
    fleet_pool = name;
    fleet_setup_full(&F, TENANTS, AGENTS, 65536, NULL);
    fleet_start_all(&F); /* they join the pool once the first run created the topics */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int a = 0; a < AGENTS; a++) {
        if (F.agent_pid[a] > 0) {
            kill(F.agent_pid[a], SIGCONT);
            fleet_stop_agent(&F, a, SIGKILL);
        }
    }
    return 0;
}

/* Waits (up to 60 s) until the group has spread the tenants over more than one agent. */
static void wait_spread(void)
{
    for (double until = now_s() + 60; now_s() < until; pool_sleep_ms(250)) {
        bool seen[AGENTS] = {false};
        int owners = 0, owned = 0;
        for (int t = 0; t < F.n; t++) {
            int a = pool_owner_of(&F, t);
            owned += a >= 0;
            owners += a >= 0 && !seen[a];
            if (a >= 0)
                seen[a] = true;
        }
        if (owned == F.n && owners > 1)
            return;
    }
    fail_msg("the pool did not spread its tenants over its agents within 60 s");
}

static void test_agent_killed_mid_rollout(void **state)
{
    (void)state;
    char p[4096];
    /* the first run creates the topics; the agents then join the pool and share them */
    pool_plan(&F, p, sizeof(p), "pool-first", "20251106000000", 8);
    int rc = fleet_run(&F, p, out, sizeof(out));
    if (rc != 0)
        fail_msg("first rollout exited %d:\n%s", rc, out);
    wait_spread();
    pool_plan(&F, p, sizeof(p), "pool-kill", "20251106000003", 8);
    FILE *run = fleet_run_start(&F, p, 300);
    int victim = pool_busy_owner(&F, now_s() + 120);
    assert_true(victim >= 0);
    bool lost[TENANTS];
    for (int t = 0; t < F.n; t++)
        lost[t] = pool_owner_of(&F, t) == victim;
    double killed_at = wall_s();
    assert_int_equal(fleet_stop_agent(&F, victim, SIGKILL), -SIGKILL);
    rc = fleet_run_finish(run, out, sizeof(out));
    if (rc != 0)
        fail_msg("rollout with agent-%d killed exited %d:\n%s", victim + 1, rc, out);
    assert_non_null(strstr(out, "rollout pool-kill: succeeded (0 failed)"));
    assert_migrated_once(2);
    double slowest = 0;
    int moved = 0;
    for (int t = 0; t < F.n; t++) {
        pool_assert_fenced_chain(&F, t, -1);
        if (!lost[t])
            continue;
        moved++;
        assert_true(pool_owner_of(&F, t) != victim);
        PGconn *c = itest_connect(F.db[t]);
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM pgrollout.audit_outbox WHERE record::jsonb->>'action' = "
                 "'tenant_taken_over' AND record::jsonb->>'previous_agent' = 'agent-%d'",
                 victim + 1);
        assert_true(itest_scalar(c, sql) >= 1); /* the record names whom it took over from */
        PGresult *r = PQexec(c, "SELECT extract(epoch FROM since) FROM pgrollout.owner");
        double since = strtod(PQgetvalue(r, 0, 0), NULL);
        PQclear(r);
        PQfinish(c);
        slowest = since - killed_at > slowest ? since - killed_at : slowest;
    }
    assert_true(moved > 0);
    printf("agent-%d killed: its %d tenant(s) taken over within %.1f s (session timeout 10 s)\n",
           victim + 1, moved, slowest);
    for (int a = 0; a < AGENTS; a++) {
        if (a != victim)
            assert_int_equal(fleet_stop_agent(&F, a, SIGTERM), 0);
    }
}

static int count_lines(const char *path, const char *needle)
{
    char line[4096];
    int n = 0;
    FILE *fp = fopen(path, "r");
    while (fp != NULL && fgets(line, sizeof(line), fp) != NULL)
        n += strstr(line, needle) != NULL;
    if (fp != NULL)
        fclose(fp);
    return n;
}

static void test_paused_agent_is_fenced(void **state)
{
    (void)state;
    char p[4096], log[256];
    bool lost[TENANTS];
    int n_lost = 0;
    pool_plan(&F, p, sizeof(p), "pool-first", "20251106000001", 8);
    int rc = fleet_run(&F, p, out, sizeof(out));
    if (rc != 0)
        fail_msg("first rollout exited %d:\n%s", rc, out);
    wait_owned(-1);
    const int paused = pool_owner_of(&F, 0); /* an agent that serves a tenant */
    for (int t = 0; t < F.n; t++) {
        lost[t] = pool_owner_of(&F, t) == paused;
        n_lost += lost[t];
    }
    assert_true(n_lost > 0);
    snprintf(log, sizeof(log), "%s/agent%d.log", F.dir, paused + 1);
    assert_int_equal(kill(F.agent_pid[paused], SIGSTOP), 0);
    wait_owned(paused); /* the others took its tenants over */
    int gained_before = count_lines(log, "gained");
    assert_int_equal(kill(F.agent_pid[paused], SIGCONT), 0);
    /* woken, it learns it lost its partitions, and rejoins */
    for (double until = now_s() + 60;
         now_s() < until && count_lines(log, "gained") == gained_before;)
        pool_sleep_ms(250);
    assert_true(count_lines(log, "gained") > gained_before);
    pool_plan(&F, p, sizeof(p), "pool-pause", "20251106000003", 8);
    rc = fleet_run(&F, p, out, sizeof(out));
    if (rc != 0)
        fail_msg("rollout after the pause exited %d:\n%s", rc, out);
    assert_migrated_once(2);
    for (int t = 0; t < F.n; t++)
        pool_assert_fenced_chain(&F, t, lost[t] ? paused : -1);
    fleet_stop_all(&F);
}

static void test_result_of_a_dead_agent_is_sent_again(void **state)
{
    (void)state;
    char p[4096], log[256];
    pool_plan(&F, p, sizeof(p), "pool-results", "20251106000003", 8);
    int rc = fleet_run(&F, p, out, sizeof(out));
    if (rc != 0)
        fail_msg("rollout with an agent dying before its results exited %d:\n%s", rc, out);
    assert_non_null(strstr(out, "rollout pool-results: succeeded (0 failed)"));
    assert_migrated_once(1);
    /* agent 1 died at its first result; the others sent it */
    assert_int_equal(waitpid(F.agent_pid[0], NULL, WNOHANG), F.agent_pid[0]);
    F.agent_pid[0] = 0;
    int resent = 0;
    for (int a = 1; a < AGENTS; a++) {
        snprintf(log, sizeof(log), "%s/agent%d.log", F.dir, a + 1);
        resent += count_lines(log, "sending the result of job");
    }
    assert_true(resent >= 1);
    for (int t = 0; t < F.n; t++) {
        PGconn *c = itest_connect(F.db[t]);
        assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs WHERE "
                                         "reported_at IS NULL"),
                         0);
        PQfinish(c);
    }
    assert_int_equal(fleet_ctl_scalar(&F,
                                      "SELECT count(*) FROM pgrollout_control.events WHERE type = "
                                      "'result' AND payload->>'outcome' = 'succeeded'"),
                     TENANTS);
    printf("%d result(s) of the dead agent sent again by the pool, each stored once\n", resent);
    for (int a = 1; a < AGENTS; a++)
        assert_int_equal(fleet_stop_agent(&F, a, SIGTERM), 0);
}

static int setup_results(void **state)
{
    (void)state;
    fleet_pool = "results";
    fleet_setup_full(&F, TENANTS, AGENTS, 65536, NULL);
    setenv("PGR_FAILPOINT", "result_unsent", 1); /* agent 1 only */
    fleet_start_agent(&F, 0);
    unsetenv("PGR_FAILPOINT");
    for (int a = 1; a < AGENTS; a++)
        fleet_start_agent(&F, a);
    return 0;
}

static int setup_kill(void **state)
{
    (void)state;
    return setup_pool("kill");
}

static int setup_pause(void **state)
{
    (void)state;
    return setup_pool("pause");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_agent_killed_mid_rollout, setup_kill, teardown),
        cmocka_unit_test_setup_teardown(test_paused_agent_is_fenced, setup_pause, teardown),
        cmocka_unit_test_setup_teardown(test_result_of_a_dead_agent_is_sent_again, setup_results,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
