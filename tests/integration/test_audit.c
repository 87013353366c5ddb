/* test_audit.c - the central audit record over the real broker: after a rollout of three
 * tenants every record of every tenant reaches pgrollout_control.audit_log once, chains verify,
 * the export lists each step with operator and key id; audit_log is append-only (trigger and
 * privileges); an agent key cannot write another tenant's chain; tampering is caught. */
#include "rollout_env.h"

#include <jansson.h>

#define MIGS PGR_SOURCE_DIR "/migrations"

static fleet F;
static char out[1 << 20];

static int audit_cmd(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), COORD_BIN " audit %s --config %s/coord.ini", args, F.dir);
    return run_cmd(cmd, out, sizeof(out));
}

static int setup(void **state)
{
    (void)state;
    fleet_setup(&F, 4 * 1024 * 1024);
    fleet_start_agent(&F, 0);
    fleet_start_agent(&F, 1);
    const char *plan = "{\"name\": \"audit-it\", \"migrations\": \"" MIGS "\", \"tenants\": "
                       "[\"district-001\", \"district-002\", \"district-003\"]}";
    int rc = fleet_run(&F, plan, out, sizeof(out));
    if (rc != 0)
        fail_msg("rollout failed:\n%s", out);
    fleet_wait_published(&F);
    assert_int_equal(audit_cmd("collect --idle-exit 5"), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fleet_stop_agent(&F, 0, SIGTERM);
    fleet_stop_agent(&F, 1, SIGTERM);
    return 0;
}

static void test_audit_every_record_once_and_verified(void **state)
{
    char sql[256];
    (void)state;
    for (int t = 0; t < NTENANTS; t++) {
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM pgrollout_control.audit_log WHERE tenant_id = '%s'",
                 F.tenant[t]);
        assert_int_equal(fleet_ctl_scalar(&F, sql), fleet_outbox(&F, t, false));
    }
    assert_int_equal(fleet_ctl_scalar(&F, "SELECT count(*) FROM pgrollout_control.audit_alerts"),
                     0);
    assert_int_equal(audit_cmd("verify"), 0);
    assert_non_null(strstr(out, "0 broken chain(s)"));
    /* a second collect (everything already stored) adds nothing */
    long before = fleet_ctl_scalar(&F, "SELECT count(*) FROM pgrollout_control.audit_log");
    assert_int_equal(audit_cmd("collect --idle-exit 3"), 0);
    assert_int_equal(fleet_ctl_scalar(&F, "SELECT count(*) FROM pgrollout_control.audit_log"),
                     before);
    /* the export: each step of each migration, with operator and key id */
    assert_int_equal(audit_cmd("export --tenant district-002 --format csv"), 0);
    int steps = 0;
    for (char *p = strstr(out, ",\"step_done\","); p != NULL; p = strstr(p + 1, ",\"step_done\","))
        steps++;
    assert_int_equal(steps, 37);
    assert_non_null(strstr(out, "seq,at,action,operator"));
    assert_int_equal(audit_cmd("anchor"), 0);
    assert_non_null(strstr(out, "district-003 "));
}

static void test_audit_collector_killed_mid_batch_restarts_cleanly(void **state)
{
    (void)state;
    /* a fresh collector group re-reads the whole topic; killed after storing 20 records but
     * before committing the 20th offset, then restarted */
    char ini[256], cmd[1024];
    snprintf(ini, sizeof(ini), "%s/coord2.ini", F.dir);
    /* its own group (unique per run), and a short session so that the killed member's
     * partitions come back to the restarted collector within seconds */
    snprintf(cmd, sizeof(cmd),
             "sed 's/^\\[coordinator\\]/[coordinator]\\nid = second-%s/' %s/coord.ini > %s && "
             "echo 'session.timeout.ms = 6000' >> %s",
             F.prefix, F.dir, ini, ini);
    assert_int_equal(system(cmd), 0);
    long before = fleet_ctl_scalar(&F, "SELECT count(*) FROM pgrollout_control.audit_log");
    setenv("PGR_FAILPOINT", "collector_after_store", 1);
    snprintf(cmd, sizeof(cmd), COORD_BIN " audit collect --idle-exit 20 --config %s", ini);
    int rc = run_cmd(cmd, out, sizeof(out));
    unsetenv("PGR_FAILPOINT");
    assert_int_equal(rc, 128 + SIGKILL);
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
    /* the restart re-read what the killed one had not committed (the 20th record onwards) */
    long processed = 0;
    const char *p = strstr(out, "audit collect: ");
    assert_non_null(p);
    processed = strtol(p + strlen("audit collect: "), NULL, 10);
    print_message("restarted collector processed %ld message(s)\n", processed);
    assert_true(processed >= 1);
    assert_int_equal(fleet_ctl_scalar(&F, "SELECT count(*) FROM pgrollout_control.audit_log"),
                     before);
    assert_int_equal(
        fleet_ctl_scalar(&F, "SELECT count(*) FROM pgrollout_control.audit_alerts WHERE kind "
                             "IN ('gap', 'fork', 'chain_break')"),
        0);
    assert_int_equal(audit_cmd("verify"), 0);
}

static void test_audit_log_is_append_only(void **state)
{
    (void)state;
    PGconn *c = itest_connect(F.ctl_db);
    PGresult *r = PQexec(c, "UPDATE pgrollout_control.audit_log SET record = '{}' WHERE seq = 1");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_non_null(strstr(PQerrorMessage(c), "append-only"));
    PQclear(r);
    r = PQexec(c, "DELETE FROM pgrollout_control.audit_log");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
    r = PQexec(c, "TRUNCATE pgrollout_control.audit_log");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
    /* the collector's role: INSERT and SELECT only */
    itest_exec(c, "DROP ROLE IF EXISTS pgr_collector_it");
    itest_exec(c, "CREATE ROLE pgr_collector_it");
    itest_exec(c, "GRANT USAGE ON SCHEMA pgrollout_control TO pgr_collector_it");
    itest_exec(c, "GRANT SELECT, INSERT ON pgrollout_control.audit_log TO pgr_collector_it");
    itest_exec(c, "SET ROLE pgr_collector_it");
    r = PQexec(c, "UPDATE pgrollout_control.audit_log SET record = '{}' WHERE seq = 1");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_non_null(strstr(PQerrorMessage(c), "permission denied"));
    PQclear(r);
    itest_exec(c, "RESET ROLE");
    itest_exec(c, "REVOKE ALL ON pgrollout_control.audit_log FROM pgr_collector_it");
    itest_exec(c, "REVOKE ALL ON SCHEMA pgrollout_control FROM pgr_collector_it");
    itest_exec(c, "DROP ROLE pgr_collector_it");
    PQfinish(c);
}

static void load_key(const char *name, pgr_keypair *kp)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s.key", F.dir, name);
    assert_int_equal(pgr_keys_load_secret(path, kp, NULL), PGR_OK);
}

static void test_audit_agent_key_cannot_write_another_tenants_chain(void **state)
{
    pgr_keypair a1;
    (void)state;
    load_key("agent1", &a1); /* trusted for district-001 and -002 only */
    const char *rec = "{\"action\":\"job_start\",\"prev_hash\":"
                      "\"0000000000000000000000000000000000000000000000000000000000000000\","
                      "\"seq\":999,\"tenant_id\":\"district-003\"}";
    fleet_send_audit(&F, &a1, "district-003", 999, rec);
    assert_int_equal(audit_cmd("collect --idle-exit 3"), 0);
    assert_non_null(strstr(out, "AUDIT ALERT untrusted_key"));
    assert_int_equal(
        fleet_ctl_scalar(&F, "SELECT count(*) FROM pgrollout_control.audit_log WHERE seq = "
                             "999"),
        0);
    assert_int_equal(
        fleet_ctl_scalar(&F, "SELECT count(*) FROM pgrollout_control.audit_alerts WHERE kind "
                             "= 'untrusted_key' AND tenant_id = 'district-003'"),
        1);
}

/* Tampers as a superuser who bypasses the trigger (session_replication_role = replica). */
static void tamper(const char *sql)
{
    PGconn *c = itest_connect(F.ctl_db);
    itest_exec(c, "SET session_replication_role = replica");
    itest_exec(c, sql);
    PQfinish(c);
}

static void test_audit_verify_catches_tampering(void **state)
{
    pgr_keypair intruder;
    (void)state;
    assert_int_equal(audit_cmd("verify"), 0);
    /* district-001: one record's body changed */
    tamper("UPDATE pgrollout_control.audit_log SET record = replace(record, '\"operator\":', "
           "'\"operator\":\"x\",\"was\":') WHERE tenant_id = 'district-001' AND seq = 4");
    assert_int_equal(audit_cmd("verify"), 1);
    assert_non_null(strstr(out, "BROKEN tenant district-001 at seq 4"));
    /* district-002: one record deleted */
    tamper("DELETE FROM pgrollout_control.audit_log WHERE tenant_id = 'district-002' AND seq = 6");
    assert_int_equal(audit_cmd("verify --tenant district-002"), 1);
    assert_non_null(strstr(out, "BROKEN tenant district-002 at seq 7: gap"));
    /* district-003: two records swapped */
    tamper("UPDATE pgrollout_control.audit_log a SET record = b.record, hash = b.hash, envelope "
           "= b.envelope FROM pgrollout_control.audit_log b WHERE a.tenant_id = 'district-003' "
           "AND b.tenant_id = 'district-003' AND ((a.seq = 2 AND b.seq = 3) OR (a.seq = 3 AND "
           "b.seq = 2))");
    assert_int_equal(audit_cmd("verify --tenant district-003"), 1);
    assert_non_null(strstr(out, "BROKEN tenant district-003 at seq 2"));
    /* district-001 again, after restoring seq 4: a record re-signed with an untrusted key */
    PGconn *c = itest_connect(F.ctl_db);
    PGresult *r = PQexec(c, "SELECT envelope FROM pgrollout_control.audit_log WHERE tenant_id = "
                            "'district-001' AND seq = 9");
    const char *env = PQgetvalue(r, 0, 0);
    json_t *e = json_loads(env, 0, NULL);
    const char *p64 = json_string_value(json_object_get(e, "payload"));
    uint8_t buf[65536];
    size_t n = 0;
    assert_int_equal(pgr_crypto_base64_decode(p64, strlen(p64), buf, sizeof(buf), &n), PGR_OK);
    load_key("intruder", &intruder);
    char *forged = pgr_envelope_seal(PGR_DOMAIN_AUDIT, &intruder, (const char *)buf, n);
    json_decref(e);
    PQclear(r);
    PQfinish(c);
    tamper("UPDATE pgrollout_control.audit_log SET record = replace(record, '\"x\",\"was\":', '') "
           "WHERE tenant_id = 'district-001' AND seq = 4");
    char sql[8192];
    snprintf(sql, sizeof(sql),
             "UPDATE pgrollout_control.audit_log SET envelope = '%s', kid = 'intruder' WHERE "
             "tenant_id = 'district-001' AND seq = 9",
             forged);
    tamper(sql);
    free(forged);
    assert_int_equal(audit_cmd("verify --tenant district-001"), 1);
    assert_non_null(strstr(out, "BROKEN tenant district-001 at seq 9: signature"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_audit_every_record_once_and_verified),
        cmocka_unit_test(test_audit_collector_killed_mid_batch_restarts_cleanly),
        cmocka_unit_test(test_audit_log_is_append_only),
        cmocka_unit_test(test_audit_agent_key_cannot_write_another_tenants_chain),
        cmocka_unit_test(test_audit_verify_catches_tampering),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
