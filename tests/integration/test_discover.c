/*
 * test_discover.c - tenants found, not typed ([tenant_sources]), against the real PostgreSQL and
 * Kafka of tests/run.sh.
 *
 * 1. One agent with a [tenants] line and a tenant source: the source's matching databases are
 *    tenants (in heartbeats and `pgrollout tenants list`), one outside agent.key_tenants is
 *    logged and not served; a database created later is found on SIGHUP (and recorded as
 *    tenant_found in its chain); a dropped one is marked gone (the agent keeps running, a plan
 *    naming it is refused, a plan of all known tenants leaves it out) and served again when it
 *    comes back. A rollout of every known tenant migrates the found ones.
 * 2. A pool of two agents, both with the same source and no [tenants]: the periodic listing finds
 *    a database created while they run, a member takes it over, and a rollout migrates every
 *    found tenant exactly once.
 */
#include "rollout_env.h"

#include "pgr/exitcode.h"

#include <signal.h>
#include <time.h>

static char out[1 << 20];

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Creates database name as a copy of the loaded template tpl (a fleet tenant's database). */
static void create_copy(const char *name, const char *tpl)
{
    char sql[256];
    PGconn *admin = itest_connect("postgres");
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    itest_exec(admin, sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s TEMPLATE %s", name, tpl);
    itest_exec(admin, sql);
    PQfinish(admin);
}

/* Waits up to 90 s until sql (one number, control database) gives want, storing the agents'
 * events first each time (`tenants refresh`: no rollout runs meanwhile). */
static void wait_ctl(const fleet *f, const char *sql, long want, const char *what)
{
    char cmd[512], text[4096];
    long v = -1;
    snprintf(cmd, sizeof(cmd), COORD_BIN " tenants refresh --wait 10 --config %s/coord.ini",
             f->dir);
    for (double until = now_s() + 90; now_s() < until; sleep_ms(250)) {
        int rc = run_cmd(cmd, text, sizeof(text));
        if (rc != 0)
            fail_msg("tenants refresh exited %d:\n%s", rc, text);
        v = fleet_ctl_scalar(f, sql);
        if (v == want)
            return;
    }
    fail_msg("%s: %ld, not %ld, after 90 s (%s)", what, v, want, sql);
}

/* The count of tenant id in the coordinator's tenants, known from a heartbeat and cond. */
static void known_sql(char *sql, size_t len, const char *id, const char *cond)
{
    snprintf(sql, len,
             "SELECT count(*) FROM pgrollout_control.tenants WHERE tenant_id = '%s' AND "
             "last_seen IS NOT NULL AND %s",
             id, cond);
}

static long known(const fleet *f, const char *id, const char *cond)
{
    char sql[512];
    known_sql(sql, sizeof(sql), id, cond);
    return fleet_ctl_scalar(f, sql);
}

static void wait_known(const fleet *f, const char *id, const char *cond, const char *what)
{
    char sql[512];
    known_sql(sql, sizeof(sql), id, cond);
    wait_ctl(f, sql, 1, what);
}

/* Agent a's configuration: its [agent] section, `extra` lines in it, then the rest. */
static void write_agent(const fleet *f, int a, const char *extra, const char *rest)
{
    char path[256], text[4096];
    snprintf(text, sizeof(text),
             "[agent]\nid = agent-%d\nsecret_key = %s/agent%d.key\nkeyring = "
             "%s/coordinators.ring\nstate_dir = %s\nheartbeat_ms = 1000\n%s[topics]\nprefix = "
             "%s\n[kafka]\nbootstrap.servers = %s\n%s",
             a + 1, f->dir, a + 1, f->dir, f->dir, extra, f->prefix, itest_kafka_bootstrap(), rest);
    snprintf(path, sizeof(path), "%s/agent%d.ini", f->dir, a + 1);
    itest_write_file(path, text);
}

/* agents.ring with each agent key limited to tenants (one list per agent). */
static void write_agent_ring(const fleet *f, const char *const tenants[2])
{
    char path[256], text[2048] = "";
    for (int a = 0; a < 2; a++) {
        snprintf(path, sizeof(path), "%s/agent%d.pub", f->dir, a + 1);
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "%s tenants=%s\n",
                 fleet_read_line(path), tenants[a]);
    }
    fleet_write_ring(f, "agents.ring", text);
}

static bool log_has(const fleet *f, int a, const char *text)
{
    char path[256], cmd[512];
    snprintf(path, sizeof(path), "%s/agent%d.log", f->dir, a + 1);
    snprintf(cmd, sizeof(cmd), "grep -qF -- '%s' '%s'", text, path);
    return system(cmd) == 0;
}

/* A plan to target of the tenants listed (NULL: every tenant the coordinator knows). */
static void plan_of(char *buf, size_t len, const char *name, const char *target,
                    const char *tenants)
{
    snprintf(buf, len,
             "{\"name\": \"%s\", \"migrations\": \"" PGR_SOURCE_DIR "/migrations\", \"target\": "
             "\"%s\", \"waves\": [{\"name\": \"all\", \"percent\": 100, "
             "\"max_parallel\": 4}]%s%s%s}",
             name, target, tenants != NULL ? ", \"tenants\": [" : "",
             tenants != NULL ? tenants : "", tenants != NULL ? "]" : "");
}

static void assert_db_migrated(const char *db, long jobs)
{
    PGconn *c = itest_connect(db);
    fleet_assert_applied_once(c, jobs);
    PQfinish(c);
}

static void test_found_gone_back(void **state)
{
    (void)state;
    fleet F;
    char db[4][64], extra[512], rest[512], p[1024];
    fleet_setup_n(&F, 2, 4194304); /* agent 1 serves district-001; agent 2 is not started */
    const char *suffix[4] = {"001", "002", "003", "x99"};
    for (int i = 0; i < 4; i++)
        snprintf(db[i], sizeof(db[i]), "pgrdisc%d_%s", (int)getpid(), suffix[i]);
    create_copy(db[0], F.db[1]);
    create_copy(db[1], F.db[1]);
    create_copy(db[3], F.db[1]);
    /* the key may speak for disc-x99, agent.key_tenants does not: only the agent keeps it out */
    const char *scope[2] = {"district-001,disc-*", "district-002"};
    write_agent_ring(&F, scope);
    snprintf(extra, sizeof(extra),
             "discover_interval_ms = 3600000\nkey_tenants = district-001,disc-0*\n");
    snprintf(rest, sizeof(rest),
             "[tenants]\ndistrict-001 = dbname=%s\n[tenant_sources]\nlocal = dbname=postgres "
             "dbname_pattern=pgrdisc%d_%% id=disc-{suffix}\n",
             F.db[0], (int)getpid());
    write_agent(&F, 0, extra, rest);
    fleet_start_agent(&F, 0);

    /* the first run creates the topics; the agent then serves and sends heartbeats */
    plan_of(p, sizeof(p), "disc-first", "20251106000000", "\"district-001\"");
    int rc = fleet_run(&F, p, out, sizeof(out));
    if (rc != 0)
        fail_msg("first rollout exited %d:\n%s", rc, out);
    wait_known(&F, "disc-001", "gone_at IS NULL", "disc-001 in tenants");
    wait_known(&F, "disc-002", "gone_at IS NULL", "disc-002 in tenants");
    assert_int_equal(known(&F, "disc-x99", "true"), 0);
    assert_true(log_has(&F, 0, "is outside agent.key_tenants (district-001,disc-0*): not served"));

    /* a database created while the agent runs: found on SIGHUP, recorded in its chain */
    create_copy(db[2], F.db[1]);
    kill(F.agent_pid[0], SIGHUP);
    wait_known(&F, "disc-003", "gone_at IS NULL", "disc-003 found after SIGHUP");
    PGconn *c = itest_connect(db[2]);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                     "record::jsonb->>'action' = 'tenant_found' AND "
                                     "record::jsonb->>'source' = 'local'"),
                     1);
    PQfinish(c);

    /* a dropped database: gone, not a failure */
    itest_drop_db(db[1]);
    kill(F.agent_pid[0], SIGHUP);
    wait_known(&F, "disc-002", "gone_at IS NOT NULL", "disc-002 marked gone");
    assert_int_equal(waitpid(F.agent_pid[0], NULL, WNOHANG), 0); /* still running */
    assert_true(log_has(&F, 0, "marked gone, not served"));
    char cmd[512];
    snprintf(cmd, sizeof(cmd), COORD_BIN " tenants list --json --config %s/coord.ini", F.dir);
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
    json_t *rows = json_loads(out, 0, NULL), *row;
    size_t k;
    int gone = 0, listed = 0;
    json_array_foreach(rows, k, row)
    {
        const char *id = json_string_value(json_object_get(row, "tenant_id"));
        const char *at = json_string_value(json_object_get(row, "gone_at"));
        assert_non_null(at);
        listed++;
        gone += strlen(at) == 20; /* 2026-12-07T22:10:00Z */
        if (strcmp(id, "disc-002") == 0)
            assert_int_equal(strlen(at), 20);
    }
    json_decref(rows);
    assert_int_equal(listed, 4); /* district-001, disc-001, disc-002, disc-003 */
    assert_int_equal(gone, 1);
    plan_of(p, sizeof(p), "disc-gone", "20251106000003", "\"disc-002\"");
    rc = fleet_run(&F, p, out, sizeof(out));
    assert_int_equal(rc, PGR_EXIT_USAGE);
    assert_non_null(strstr(out, "\"disc-002\" is gone"));

    /* every known tenant: the found ones and the typed one, not the gone one */
    plan_of(p, sizeof(p), "disc-all", "20251106000003", NULL);
    rc = fleet_run(&F, p, out, sizeof(out));
    if (rc != 0)
        fail_msg("rollout of all known tenants exited %d:\n%s", rc, out);
    assert_int_equal(fleet_ctl_scalar(&F, "SELECT count(*) FROM pgrollout_control.tenant_runs "
                                          "WHERE rollout_id = 'disc-all'"),
                     3);
    assert_int_equal(fleet_ctl_scalar(&F, "SELECT count(*) FROM pgrollout_control.tenant_runs "
                                          "WHERE rollout_id = 'disc-all' AND tenant_id IN "
                                          "('disc-001', 'disc-003') AND state = 'succeeded'"),
                     2);
    assert_db_migrated(db[0], 1);
    assert_db_migrated(db[2], 1);

    /* back: served again */
    create_copy(db[1], F.db[1]);
    kill(F.agent_pid[0], SIGHUP);
    wait_known(&F, "disc-002", "gone_at IS NULL", "disc-002 back after SIGHUP");
    assert_int_equal(fleet_stop_agent(&F, 0, SIGTERM), 0);
    for (int i = 0; i < 4; i++)
        itest_drop_db(db[i]);
}

static void test_pool_finds_new_database(void **state)
{
    (void)state;
    fleet G;
    char db[5][64], extra[512], rest[512], p[1024];
    fleet_pool = "disc";
    fleet_setup_n(&G, 2, 4194304);
    fleet_pool = NULL;
    for (int i = 0; i < 5; i++)
        snprintf(db[i], sizeof(db[i]), "pgrpool%d_%03d", (int)getpid(), i + 1);
    for (int i = 0; i < 4; i++)
        create_copy(db[i], G.db[0]);
    const char *scope[2] = {"pd-*", "pd-*"};
    write_agent_ring(&G, scope);
    snprintf(extra, sizeof(extra),
             "pool = disc\ndiscover_interval_ms = 1000\nkey_tenants = pd-*\n");
    snprintf(rest, sizeof(rest),
             "[tenant_sources]\nlocal = dbname=postgres dbname_pattern=pgrpool%d_%% "
             "id=pd-{suffix}\n",
             (int)getpid());
    write_agent(&G, 0, extra, rest);
    write_agent(&G, 1, extra, rest);
    /* the topics first: a run of the first tenant, which some member then takes over */
    fleet_start_all(&G);
    plan_of(p, sizeof(p), "pool-first", "20251106000000", "\"pd-001\"");
    int rc = fleet_run(&G, p, out, sizeof(out));
    if (rc != 0)
        fail_msg("first pool rollout exited %d:\n%s", rc, out);
    create_copy(db[4], G.db[0]); /* found by the periodic listing, no signal */
    wait_known(&G, "pd-005", "true", "pd-005 found and taken over by a pool member");
    plan_of(p, sizeof(p), "pool-all", "20251106000003",
            "\"pd-001\", \"pd-002\", \"pd-003\", \"pd-004\", \"pd-005\"");
    rc = fleet_run(&G, p, out, sizeof(out));
    if (rc != 0)
        fail_msg("pool rollout of found tenants exited %d:\n%s", rc, out);
    assert_non_null(strstr(out, "rollout pool-all: succeeded (0 failed)"));
    for (int i = 0; i < 5; i++) {
        PGconn *c = itest_connect(db[i]);
        fleet_assert_applied_once(c, i == 0 ? 2 : 1); /* pd-001: pool-first too */
        assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.owner WHERE agent_id "
                                         "IN ('agent-1', 'agent-2')"),
                         1);
        PQfinish(c);
    }
    fleet_stop_all(&G);
    for (int i = 0; i < 5; i++)
        itest_drop_db(db[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_found_gone_back),
        cmocka_unit_test(test_pool_finds_new_database),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
