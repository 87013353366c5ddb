/*
 * test_two_person.c - the two-person rule against the real PostgreSQL and Kafka of tests/run.sh: an
 * agent with [release] keyring (two release keys) and threshold 2 applies only migrations whose
 * exact bytes two distinct release keys released for the tenant, unexpired.
 *
 * Each of these is refused by the agent before any SQL runs (the tenant's catalog unchanged, a
 * job_rejected record with reason release naming what is missing, the run rejected through a
 * signed security event): migration bytes that differ from the manifest by one byte (the
 * coordinator signed the changed SQL); 1 of 2 signatures; one key's signature twice; an expired
 * manifest; a tenant outside the scope; a target beyond the manifest; a manifest signed by the
 * coordinator's key; a release key revoked by SIGHUP. A release keyring that shares a key with
 * the coordinators' keyring is refused at start; `pgrollout run` with [release] refuses at plan
 * time what agents would refuse. Then a properly released rollout succeeds, and its records name
 * the manifest and both signers; a rollback runs the down parts only with a manifest naming them.
 */
#include "rollout_env.h"

#include "pgr/exitcode.h"

#include <signal.h>
#include <stdarg.h>
#include <time.h>

static fleet F;
static char out[1 << 20];
static char kid1[17], kid2[17];

static void sh(const char *fmt, ...) PGR_PRINTF(1, 2);
static void sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = run_cmd(cmd, out, sizeof(out));
    if (rc != 0)
        fail_msg("exit %d: %s\n%s", rc, cmd, out);
}

static const char *kid_of(const char *name, char kid[17])
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s.pub", F.dir, name);
    const char *line = fleet_read_line(path);
    snprintf(kid, 17, "%s", strrchr(line, ' ') + 1);
    return kid;
}

/* release.ring: rel1 and rel2, rel2 revoked when asked. */
static void write_release_ring(bool rel2_revoked)
{
    char path[256], text[1024], l1[256];
    snprintf(path, sizeof(path), "%s/rel1.pub", F.dir);
    snprintf(l1, sizeof(l1), "%s", fleet_read_line(path));
    snprintf(path, sizeof(path), "%s/rel2.pub", F.dir);
    snprintf(text, sizeof(text), "%s\n%s%s\n", l1, fleet_read_line(path),
             rel2_revoked ? " revoked" : "");
    fleet_write_ring(&F, "release.ring", text);
}

/* A manifest NAME.json of the migrations in DIR up to `to`, signed by the keys listed. */
static void manifest(const char *name, const char *dir, const char *to, const char *scope,
                     const char *expires, const char *key1, const char *key2)
{
    sh(COORD_BIN " release sign --key %s/%s.key --migrations %s --to %s %s --expires %s --out "
                 "%s/%s.json",
       F.dir, key1, dir, to, scope, expires, F.dir, name);
    if (key2 != NULL)
        sh(COORD_BIN " release cosign --key %s/%s.key %s/%s.json", F.dir, key2, F.dir, name);
}

/* A rollout of district-001 (type apply or rollback, to target) with the migrations of dir
 * carrying manifest NAME.json. */
static int rollout_to(const char *rname, const char *type, const char *target, const char *dir,
                      const char *mname, const char *coord_ini)
{
    char plan[1024], path[256], cmd[1024];
    snprintf(plan, sizeof(plan),
             "{\"name\": \"%s\", \"type\": \"%s\", \"migrations\": \"%s\", \"target\": "
             "\"%s\", \"tenants\": [\"district-001\"], \"releases\": [\"%s.json\"], "
             "\"waves\": [{\"name\": \"all\", \"percent\": 100}]}",
             rname, type, dir, target, mname);
    snprintf(path, sizeof(path), "%s/plan-%s.json", F.dir, rname);
    itest_write_file(path, plan);
    snprintf(cmd, sizeof(cmd), COORD_BIN " run --config %s/%s --plan %s --timeout 120", F.dir,
             coord_ini, path);
    return run_cmd(cmd, out, sizeof(out));
}

static int rollout(const char *rname, const char *dir, const char *mname, const char *coord_ini)
{
    return rollout_to(rname, "apply", "20251106000003", dir, mname, coord_ini);
}

static void assert_untouched(void)
{
    PGconn *c = itest_connect(F.db[0]);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.schema_migrations"), 0);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_class WHERE relname LIKE 'idx_%' "
                                     "AND relkind = 'i'"),
                     0);
    PQfinish(c);
}

/* The rollout rname was refused by the agent for a missing release: no SQL, a job_rejected
 * record naming `detail`, the run rejected through the security event. */
static long rejections_naming(const char *detail)
{
    PGconn *c = itest_connect(F.db[0]);
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pgrollout.audit_outbox WHERE record::jsonb->>'action' = "
             "'job_rejected' AND record::jsonb->>'reason' = 'release' AND "
             "strpos(record::jsonb->>'detail', '%s') > 0",
             detail);
    long n = itest_scalar_or(c, sql, 0);
    PQfinish(c);
    return n;
}

static void expect_refused(const char *rname, const char *dir, const char *mname,
                           const char *detail)
{
    char sql[512];
    long before = rejections_naming(detail);
    int rc = rollout(rname, dir, mname, "coord.ini");
    assert_true(rc != 0);
    assert_untouched();
    long n = rejections_naming(detail) - before;
    if (n != 1)
        fail_msg("%s: no job_rejected record naming \"%s\"; run said:\n%s", rname, detail, out);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pgrollout_control.tenant_runs WHERE rollout_id = '%s' AND "
             "state = 'rejected' AND error = 'release'",
             rname);
    assert_int_equal(fleet_ctl_scalar(&F, sql), 1);
}

static int setup(void **state)
{
    (void)state;
    char path[256], ini[8192], coord[2048];
    fleet_setup_n(&F, 2, 4194304);
    fleet_keygen(&F, "rel1");
    fleet_keygen(&F, "rel2");
    kid_of("rel1", kid1);
    kid_of("rel2", kid2);
    write_release_ring(false);
    /* agent 1 (district-001) requires two release keys */
    snprintf(path, sizeof(path), "%s/agent1.ini", F.dir);
    FILE *fp = fopen(path, "a");
    assert_non_null(fp);
    fprintf(fp, "[release]\nkeyring = %s/release.ring\nthreshold = 2\n", F.dir);
    fclose(fp);
    /* a second coordinator file with [release]: plan-time checks */
    snprintf(path, sizeof(path), "%s/coord.ini", F.dir);
    FILE *in = fopen(path, "r");
    size_t n = fread(coord, 1, sizeof(coord) - 1, in);
    fclose(in);
    coord[n] = '\0';
    snprintf(ini, sizeof(ini), "%s[release]\nkeyring = %s/release.ring\nthreshold = 2\n", coord,
             F.dir);
    snprintf(path, sizeof(path), "%s/coord-rel.ini", F.dir);
    itest_write_file(path, ini);
    /* the migrations with one byte of SQL changed (and signed as jobs by the coordinator) */
    sh("cp -r " PGR_SOURCE_DIR "/migrations %s/mig-bad && sed -i '0,/IF NOT EXISTS/s//IF NOT "
       "EXISTs/' %s/mig-bad/20251106000003-*.sql",
       F.dir, F.dir);
    fleet_start_agent(&F, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (F.agent_pid[0] > 0)
        assert_int_equal(fleet_stop_agent(&F, 0, SIGTERM), 0);
    return 0;
}

static void test_shared_key_refused(void **state)
{
    (void)state;
    char path[1024], ini[256], text[2048];
    snprintf(path, sizeof(path), "%s/coord.pub", F.dir);
    snprintf(text, sizeof(text), "%s\n", fleet_read_line(path));
    fleet_write_ring(&F, "shared.ring", text);
    snprintf(ini, sizeof(ini), "%s/agent-shared.ini", F.dir);
    snprintf(path, sizeof(path), "cp %s/agent1.ini %s && sed -i 's#release.ring#shared.ring#' %s",
             F.dir, ini, ini);
    assert_int_equal(system(path), 0);
    snprintf(text, sizeof(text), AGENT_BIN " run --config %s", ini);
    assert_int_equal(run_cmd(text, out, sizeof(out)), PGR_EXIT_USAGE);
    assert_non_null(strstr(out, "release keys must not be coordinator keys"));
}

static void test_refusals(void **state)
{
    (void)state;
    const char *good = PGR_SOURCE_DIR "/migrations";
    char bad[256];
    snprintf(bad, sizeof(bad), "%s/mig-bad", F.dir);
    manifest("good", good, "20251106000003", "", "1d", "rel1", "rel2");
    expect_refused("rel-bytes", bad, "good", "are not those release");
    manifest("one", good, "20251106000003", "", "1d", "rel1", NULL);
    expect_refused("rel-one-sig", good, "one", "1 valid signature(s)");
    /* the one signature twice: counted once */
    sh("sed 's/\"signatures\":\\[\\(.*\\)\\]}/\"signatures\":[\\1,\\1]}/' %s/one.json > "
       "%s/twice.json && grep -c '\"kid\".*\"kid\"' %s/twice.json",
       F.dir, F.dir, F.dir);
    expect_refused("rel-twice", good, "twice", "1 valid signature(s)");
    manifest("short", good, "20251106000003", "", "1s", "rel1", "rel2");
    sleep(2);
    expect_refused("rel-expired", good, "short", "expired at");
    manifest("other", good, "20251106000003", "--tenants district-002", "1d", "rel1", "rel2");
    expect_refused("rel-scope", good, "other", "does not cover tenant district-001");
    manifest("older", good, "20251106000002", "", "1d", "rel1", "rel2");
    expect_refused("rel-target", good, "older", "migration 20251106000003 is in none");
    manifest("coordsigned", good, "20251106000003", "", "1d", "coord", "rel1");
    expect_refused("rel-coordkey", good, "coordsigned", "1 valid signature(s)");
    write_release_ring(true);
    kill(F.agent_pid[0], SIGHUP);
    sleep(2);
    expect_refused("rel-revoked", good, "good", "1 valid signature(s)");
    write_release_ring(false);
    kill(F.agent_pid[0], SIGHUP);
    sleep(2);
}

static void test_plan_time_refusal(void **state)
{
    (void)state;
    const char *good = PGR_SOURCE_DIR "/migrations";
    manifest("plan-one", good, "20251106000003", "", "1d", "rel1", NULL);
    manifest("plan-older", good, "20251106000002", "", "1d", "rel1", "rel2");
    int rc = rollout("rel-plan-one", PGR_SOURCE_DIR "/migrations", "plan-one", "coord-rel.ini");
    assert_int_equal(rc, PGR_EXIT_USAGE);
    assert_non_null(strstr(out, "1 valid signature(s)"));
    rc = rollout("rel-plan-older", PGR_SOURCE_DIR "/migrations", "plan-older", "coord-rel.ini");
    assert_int_equal(rc, PGR_EXIT_USAGE);
    assert_non_null(strstr(out, "migration 20251106000003 is in no valid release manifest"));
}

static void test_released_rollout_succeeds(void **state)
{
    (void)state;
    int rc = rollout("rel-good", PGR_SOURCE_DIR "/migrations", "good", "coord-rel.ini");
    if (rc != 0)
        fail_msg("released rollout exited %d:\n%s", rc, out);
    PGconn *c = itest_connect(F.db[0]);
    fleet_assert_applied_once(c, 1);
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pgrollout.audit_outbox WHERE record::jsonb->>'action' IN "
             "('job_accepted', 'migration_applied') AND strpos(record::jsonb->>'release_kids', "
             "'%s') > 0 AND strpos(record::jsonb->>'release_kids', '%s') > 0 AND "
             "length(record::jsonb->>'release_digests') = 64",
             kid1, kid2);
    assert_int_equal(itest_scalar(c, sql), 5); /* job_accepted and four migrations */
    PQfinish(c);
}

/* Rolling back runs the down parts: released by the manifest that names the files, refused by
 * one that stops below them. */
static void test_rollback_needs_release(void **state)
{
    (void)state;
    const char *good = PGR_SOURCE_DIR "/migrations";
    int rc = rollout_to("rel-rb-refused", "rollback", "20251106000002", good, "older", "coord.ini");
    assert_true(rc != 0);
    PGconn *c = itest_connect(F.db[0]);
    const char *applied = "SELECT count(*) FROM pgrollout.schema_migrations WHERE status = "
                          "'applied'";
    assert_int_equal(itest_scalar(c, applied), 4); /* nothing rolled back */
    rc = rollout_to("rel-rb", "rollback", "20251106000002", good, "good", "coord-rel.ini");
    if (rc != 0)
        fail_msg("released rollback exited %d:\n%s", rc, out);
    assert_int_equal(itest_scalar(c, applied), 3);
    assert_true(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                "record::jsonb->>'action' = 'rollback_done' AND "
                                "length(record::jsonb->>'release_digests') = 64") >= 1);
    PQfinish(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_key_refused),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_plan_time_refusal),
        cmocka_unit_test(test_released_rollout_succeeds),
        cmocka_unit_test(test_rollback_needs_release),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
