/*
 * test_key_rotation.c - coordinator key rotation without restarting agents (real PostgreSQL and
 * Kafka): a new coordinator key is added to the agents' keyring and SIGHUP makes them trust it;
 * jobs signed by it are applied. The old key is then marked revoked, SIGHUP again, and a rollout
 * signed by the old key is refused (security events `revoked_key`, tenants unchanged). A keyring
 * file that does not parse is refused on SIGHUP and the previous keyring stays in force.
 */
#include "rollout_env.h"

#include <time.h>

#define MIGS PGR_SOURCE_DIR "/migrations"

static fleet F;
static char out[1 << 20];

static int setup(void **state)
{
    (void)state;
    fleet_setup(&F, 65536);
    fleet_start_all(&F);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fleet_stop_all(&F);
    return 0;
}

/* Occurrences of needle in agent a's log. */
static int log_count(int a, const char *needle)
{
    char path[256], line[4096];
    int n = 0;
    snprintf(path, sizeof(path), "%s/agent%d.log", F.dir, a + 1);
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return 0;
    while (fgets(line, sizeof(line), fp) != NULL)
        n += strstr(line, needle) != NULL;
    fclose(fp);
    return n;
}

/* Sends SIGHUP to both agents and waits until each logged one more line with needle. */
static void reload_agents(const char *needle)
{
    int before[2];
    for (int a = 0; a < 2; a++) {
        before[a] = log_count(a, needle);
        assert_int_equal(kill(F.agent_pid[a], SIGHUP), 0);
    }
    for (int a = 0; a < 2; a++) {
        double until = now_s() + 20;
        while (log_count(a, needle) <= before[a] && now_s() < until)
            nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
        if (log_count(a, needle) <= before[a])
            fail_msg("agent %d did not log \"%s\" after SIGHUP", a + 1, needle);
    }
}

static void write_ring(const char *text)
{
    char path[256], tmp[272]; /* room for ".new" */
    snprintf(path, sizeof(path), "%s/coordinators.ring", F.dir);
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    itest_write_file(tmp, text);
    assert_int_equal(rename(tmp, path), 0); /* as an operator should: atomically */
}

/* The fleet's coordinator configuration (coord.ini), signing with key <name>.key instead. */
static void coord_config(const char *name)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "sed 's|^secret_key = .*|secret_key = %s/%s.key|' %s/coord.ini > %s/%s.ini", F.dir,
             name, F.dir, F.dir, name);
    assert_int_equal(system(cmd), 0);
}

static int run_signed_by(const char *name, const char *rollout, const char *target)
{
    char plan[1024], path[256], cmd[1024];
    snprintf(plan, sizeof(plan),
             "{\"name\": \"%s\", \"migrations\": \"" MIGS "\", \"target\": \"%s\", \"options\": "
             "{\"orphans\": \"abort\", \"retries\": 3}, \"tenants\": [\"district-001\", "
             "\"district-002\", \"district-003\"]}",
             rollout, target);
    snprintf(path, sizeof(path), "%s/%s.json", F.dir, rollout);
    itest_write_file(path, plan);
    snprintf(cmd, sizeof(cmd), COORD_BIN " run --config %s/%s.ini --plan %s --timeout 120", F.dir,
             name, path);
    double t0 = now_s();
    int rc = run_cmd(cmd, out, sizeof(out));
    printf("rollout %s signed by %s: exit %d after %.1f s\n", rollout, name, rc, now_s() - t0);
    return rc;
}

/* The version every tenant is at (they must agree). */
static long fleet_version(void)
{
    long v = -1;
    for (int t = 0; t < F.n; t++) {
        PGconn *c = itest_connect(F.db[t]);
        long tv = itest_scalar(c, "SELECT coalesce(max(version::bigint), 0) FROM "
                                  "pgrollout.schema_migrations WHERE status = 'applied'");
        PQfinish(c);
        if (v >= 0)
            assert_int_equal(tv, v);
        v = tv;
    }
    return v;
}

static void test_rotation_without_restart(void **state)
{
    (void)state;
    pid_t pids[2] = {F.agent_pid[0], F.agent_pid[1]};
    char path[256], cur[512], next[512], text[2048];

    fleet_keygen(&F, "coord-next");
    coord_config("coord-next");
    snprintf(path, sizeof(path), "%s/coord.pub", F.dir);
    snprintf(cur, sizeof(cur), "%s", fleet_read_line(path));
    snprintf(path, sizeof(path), "%s/coord-next.pub", F.dir);
    snprintf(next, sizeof(next), "%s", fleet_read_line(path));

    /* 0. a first rollout signed by the current key (creates the topics; agents serve) */
    int rc = run_signed_by("coord", "rot-current-key", "20251106000000");
    if (rc != 0)
        fail_msg("rollout signed by the current key exited %d:\n%s", rc, out);
    assert_int_equal(fleet_version(), 20251106000000L);

    /* 1. the new key is added to the keyring; SIGHUP; its jobs are applied */
    snprintf(text, sizeof(text), "%s name=current\n%s name=next\n", cur, next);
    write_ring(text);
    reload_agents("reloaded");
    rc = run_signed_by("coord-next", "rot-new-key", "20251106000001");
    if (rc != 0)
        fail_msg("rollout signed by the added key exited %d:\n%s", rc, out);
    assert_int_equal(fleet_version(), 20251106000001L);

    /* 2. the old key is revoked; SIGHUP; a rollout it signs is refused and changes nothing */
    snprintf(text, sizeof(text), "%s name=old revoked\n%s name=current\n", cur, next);
    write_ring(text);
    reload_agents("reloaded");
    rc = run_signed_by("coord", "rot-old-key", "20251106000002");
    if (rc == 0)
        fail_msg("a rollout signed by the revoked key succeeded:\n%s", out);
    assert_non_null(strstr(out, "rejected    0/0  revoked_key"));
    assert_int_equal(fleet_version(), 20251106000001L);
    PGconn *ctl = itest_connect(F.ctl_db);
    assert_int_equal(itest_scalar(ctl, "SELECT count(DISTINCT tenant_id) FROM "
                                       "pgrollout_control.events WHERE type = 'security' AND "
                                       "payload->>'reason' = 'revoked_key'"),
                     F.n);
    /* each agent audited both reloads, with the kids it trusts and revokes */
    for (int t = 0; t < F.n; t++) {
        PGconn *c = itest_connect(F.db[t]);
        assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                         "record::jsonb->>'action' = 'keyring_reload'"),
                         2);
        assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                         "record::jsonb->>'action' = 'keyring_reload' AND "
                                         "record::jsonb->>'revoked_kids' ~ '^[0-9a-f]{16}$'"),
                         1);
        PQfinish(c);
    }

    /* 3. a keyring that does not parse is refused; the previous one stays in force */
    write_ring("ed25519 not-base64!! broken\n");
    reload_agents("reload refused");
    rc = run_signed_by("coord-next", "rot-after-bad-file", "20251106000002");
    if (rc != 0)
        fail_msg("rollout after a refused keyring reload exited %d:\n%s", rc, out);
    assert_int_equal(fleet_version(), 20251106000002L);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.events WHERE "
                                       "type = 'keyring_reloaded'"),
                     4);
    PQfinish(ctl);

    /* never restarted */
    assert_int_equal(F.agent_pid[0], pids[0]);
    assert_int_equal(F.agent_pid[1], pids[1]);
    assert_int_equal(kill(pids[0], 0), 0);
    assert_int_equal(kill(pids[1], 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rotation_without_restart, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
