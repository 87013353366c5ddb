/*
 * test_tls.c - encrypted links against the real services of tests/run.sh: Kafka over SASL_SSL
 * (SCRAM-SHA-512, the broker's certificate from a test CA made by services.sh) and PostgreSQL
 * with sslmode=verify-full. The database roles of agents and coordinator are members of
 * pgrollout_tls_only, which pg_hba refuses without TLS, so a finished rollout proves that every
 * database connection was encrypted; the agents and the coordinator are given only the SASL_SSL
 * listener, as a SCRAM user that is no Kafka super user. Neither database role is a superuser:
 * the agents' role has exactly what deploy/sql/agent-role.sql grants, the coordinator's owns the
 * control database (docs/SECURITY.md section 3). A wrong CA and a wrong SASL password fail with
 * a clear error that never shows the password; test_tls_negative.c covers more TLS refusals.
 */
#include "rollout_env.h"

#define MIGS PGR_SOURCE_DIR "/migrations"

static fleet F;
static char out[1 << 20];
static char role[64];       /* the agents' role (deploy/sql/agent-role.sql) */
static char coord_role[64]; /* the coordinator's: owner of the control database */
static char owner_role[64]; /* NOLOGIN owner of the tenant tables */

static const char *env_required(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        fail_msg("%s is not set: run through tests/run.sh (services.sh up exports it)", name);
    return v;
}

/* Rewrites a fleet config file: Kafka through the SASL_SSL listener, every DSN (tenants and
 * control) over verify-full TLS as the TLS-only role user. sasl_password NULL: the right one. */
static void secure_config(const char *file, const char *user, const char *sasl_password)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "sed -i -e 's|^bootstrap.servers = .*|bootstrap.servers = %s\\nsecurity.protocol = "
             "SASL_SSL\\nsasl.mechanism = SCRAM-SHA-512\\nsasl.username = %s\\nsasl.password = "
             "%s\\nssl.ca.location = %s|' -e 's|= dbname=\\([^ ]*\\)|= host=localhost port=%s "
             "dbname=\\1 user=%s sslmode=verify-full sslrootcert=%s|' %s/%s",
             env_required("PGR_KAFKA_TLS_BOOTSTRAP"), env_required("PGR_KAFKA_SASL_USER"),
             sasl_password != NULL ? sasl_password : env_required("PGR_KAFKA_SASL_PASSWORD"),
             env_required("PGR_TLS_CA"), env_required("PGPORT"), user, env_required("PGR_TLS_CA"),
             F.dir, file);
    assert_int_equal(system(cmd), 0);
}

/* A role left by an earlier run with this pid may own objects in databases of that run: it is
 * then kept (and reused), which does not change what this test proves. */
static void drop_role(PGconn *admin, const char *name)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "DO $$ BEGIN DROP ROLE IF EXISTS %s; EXCEPTION WHEN dependent_objects_still_exist "
             "THEN NULL; END $$",
             name);
    itest_exec(admin, sql);
}

/* The least-privilege roles of docs/SECURITY.md section 3, both TLS-only, neither a superuser. */
static void make_roles(void)
{
    char sql[512];
    PGconn *admin = itest_connect("postgres");
    itest_exec(admin, "DO $$ BEGIN CREATE ROLE pgrollout_tls_only NOLOGIN; EXCEPTION WHEN "
                      "duplicate_object THEN NULL; END $$");
    drop_role(admin, role);
    drop_role(admin, coord_role);
    snprintf(sql, sizeof(sql),
             "DO $$ BEGIN CREATE ROLE %s LOGIN IN ROLE pgrollout_tls_only; EXCEPTION WHEN "
             "duplicate_object THEN NULL; END $$",
             role);
    itest_exec(admin, sql);
    snprintf(sql, sizeof(sql),
             "DO $$ BEGIN CREATE ROLE %s LOGIN IN ROLE pgrollout_tls_only; EXCEPTION WHEN "
             "duplicate_object THEN NULL; END $$",
             coord_role);
    itest_exec(admin, sql);
    snprintf(sql, sizeof(sql), "ALTER DATABASE %s OWNER TO %s", F.ctl_db, coord_role);
    itest_exec(admin, sql);
    PQfinish(admin);
    /* the agents' role gets exactly what the role file grants, on every tenant database */
    snprintf(sql, sizeof(sql), "-v agent_role=%s -v owner_role=%s -v app_role=", role, owner_role);
    for (int t = 0; t < F.n; t++)
        itest_psql_file(F.db[t], "deploy/sql/agent-role.sql", sql);
}

static int setup(void **state)
{
    (void)state;
    snprintf(role, sizeof(role), "pgr_tls_agent_%d", (int)getpid());
    snprintf(coord_role, sizeof(coord_role), "pgr_tls_coord_%d", (int)getpid());
    snprintf(owner_role, sizeof(owner_role), "pgr_tls_owner_%d", (int)getpid());
    fleet_setup(&F, 65536);
    make_roles();
    secure_config("agent1.ini", role, NULL);
    secure_config("agent2.ini", role, NULL);
    secure_config("coord.ini", coord_role, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fleet_stop_all(&F);
    return 0;
}

/* The role cannot connect without TLS at all: what makes the rollout below a proof. */
static void test_tls_only_role_refused_in_plaintext(void **state)
{
    (void)state;
    char dsn[256];
    /* no superuser among the roles the rollout below runs as */
    PGconn *admin = itest_connect("postgres");
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_roles WHERE rolname IN ('%s', '%s') AND NOT rolsuper AND "
             "NOT rolcreatedb AND NOT rolcreaterole AND NOT rolbypassrls",
             role, coord_role);
    assert_int_equal(itest_scalar(admin, sql), 2);
    PQfinish(admin);
    snprintf(dsn, sizeof(dsn), "host=127.0.0.1 dbname=postgres user=%s sslmode=disable", role);
    PGconn *c = PQconnectdb(dsn);
    assert_int_not_equal(PQstatus(c), CONNECTION_OK);
    assert_non_null(strstr(PQerrorMessage(c), "no encryption"));
    PQfinish(c);
    snprintf(dsn, sizeof(dsn),
             "host=localhost dbname=postgres user=%s sslmode=verify-full sslrootcert=%s", role,
             env_required("PGR_TLS_CA"));
    c = PQconnectdb(dsn);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    assert_true(PQsslInUse(c));
    PQfinish(c);
}

static void test_rollout_over_tls(void **state)
{
    (void)state;
    char plan[1024];
    fleet_start_all(&F);
    snprintf(plan, sizeof(plan),
             "{\"name\": \"tls-it\", \"migrations\": \"" MIGS "\", \"target\": "
             "\"20251106000003\", \"options\": {\"orphans\": \"abort\", \"retries\": 3}, "
             "\"tenants\": [\"district-001\", \"district-002\", \"district-003\"]}");
    int rc = fleet_run(&F, plan, out, sizeof(out));
    if (rc != 0)
        fail_msg("rollout over TLS exited %d:\n%s", rc, out);
    assert_non_null(strstr(out, "rollout tls-it: succeeded (0 failed)"));
    for (int t = 0; t < F.n; t++) {
        PGconn *c = itest_connect(F.db[t]);
        fleet_assert_migrated(c);
        PQfinish(c);
    }
    /* the events arrived (through the SASL_SSL listener: the only one the agents know) */
    PGconn *ctl = itest_connect(F.ctl_db);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.events WHERE "
                                       "type = 'result' AND payload->>'job_type' = 'apply' AND "
                                       "payload->>'outcome' = 'succeeded'"),
                     F.n);
    PQfinish(ctl);
}

/* Reads a whole file into out (NUL-terminated). */
static void slurp(const char *path, char *buf, size_t len)
{
    FILE *fp = fopen(path, "r");
    size_t n = fp != NULL ? fread(buf, 1, len - 1, fp) : 0;
    buf[n] = '\0';
    if (fp != NULL)
        fclose(fp);
}

static void test_wrong_ca_and_wrong_password_fail_clearly(void **state)
{
    (void)state;
    char cmd[2048], path[256];
    const char *password = env_required("PGR_KAFKA_SASL_PASSWORD");

    /* a CA that did not sign the server's certificate */
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
             "-subj /CN=other-ca -keyout %s/other-ca.key -out %s/other-ca.crt 2>/dev/null",
             F.dir, F.dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd),
             AGENT_BIN " status --dsn 'host=localhost dbname=%s user=%s sslmode=verify-full "
                       "sslrootcert=%s/other-ca.crt' --migrations " MIGS,
             F.db[0], role, F.dir);
    int rc = run_cmd(cmd, out, sizeof(out));
    assert_int_not_equal(rc, 0);
    if (strstr(out, "certificate verify failed") == NULL)
        fail_msg("no certificate error in:\n%s", out);

    /* the coordinator with a wrong SASL password: refused by the broker, said so, no secret */
    snprintf(cmd, sizeof(cmd), "cp %s/coord.ini %s/coord-badpw.ini", F.dir, F.dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "sed -i 's|^sasl.password = .*|sasl.password = Wr0ng-%s|' %s/%s",
             "pw-must-not-leak", F.dir, "coord-badpw.ini");
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof(path), "%s/plan-badpw.json", F.dir);
    itest_write_file(path, "{\"name\": \"tls-badpw\", \"migrations\": \"" MIGS "\", \"target\": "
                           "\"20251106000003\", \"tenants\": [\"district-001\"]}");
    snprintf(cmd, sizeof(cmd), COORD_BIN " run --config %s/coord-badpw.ini --plan %s --timeout 60",
             F.dir, path);
    double t0 = now_s();
    rc = run_cmd(cmd, out, sizeof(out));
    assert_int_not_equal(rc, 0);
    /* stops on the refusal instead of waiting for --timeout */
    assert_true(now_s() - t0 < 55);
    if (strstr(out, "the broker refused this client's credentials") == NULL)
        fail_msg("no authentication error in:\n%s", out);
    assert_null(strstr(out, "Wr0ng-pw-must-not-leak"));
    assert_null(strstr(out, password));
    /* the same for an agent */
    snprintf(cmd, sizeof(cmd),
             "sed 's|^sasl.password = .*|sasl.password = Wr0ng-pw-must-not-leak|' %s/agent1.ini > "
             "%s/agent-badpw.ini && " AGENT_BIN " run --config %s/agent-badpw.ini",
             F.dir, F.dir, F.dir);
    rc = run_cmd(cmd, out, sizeof(out));
    assert_int_not_equal(rc, 0);
    if (strstr(out, "the broker refused this client's credentials") == NULL)
        fail_msg("no authentication error in:\n%s", out);
    assert_null(strstr(out, "Wr0ng-pw-must-not-leak"));
    assert_null(strstr(out, password));

    /* nothing the agents logged holds the SASL password */
    static char log[1 << 20];
    for (int a = 1; a <= 2; a++) {
        snprintf(path, sizeof(path), "%s/agent%d.log", F.dir, a);
        slurp(path, log, sizeof(log));
        assert_true(strlen(log) > 0);
        assert_null(strstr(log, password));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_only_role_refused_in_plaintext),
        cmocka_unit_test(test_rollout_over_tls),
        cmocka_unit_test(test_wrong_ca_and_wrong_password_fail_clearly),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
