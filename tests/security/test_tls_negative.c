/*
 * test_tls_negative.c - TLS refusals against the real services of tests/run.sh. The real
 * `pgrollout run` and `pgrollout-agent run`, given the broker's SASL_SSL listener with
 *   - a CA that did not sign the broker's certificate, or
 *   - the right CA but a host name the certificate does not hold ("127.1": the loopback address
 *     spelled so that it matches neither DNS:localhost nor IP:127.0.0.1 of the certificate),
 * stop within a bounded time with "the broker's TLS certificate could not be verified", exit
 * non-zero, print no password, and write nothing to Kafka (the coordinator creates no topic). A
 * control shows the second case is the host name check: the same address with
 * ssl.endpoint.identification.algorithm=none connects. PostgreSQL with sslmode=verify-full
 * refuses a wrong CA (coordinator) and a host name mismatch (agent: hostaddr=127.0.0.1 with
 * host=db.invalid, the name libpq checks the certificate against) alike.
 */
#include "rollout_env.h"

#define MIGS    PGR_SOURCE_DIR "/migrations"
#define BOUND_S 55 /* the refusal must come well before --timeout */

static fleet F;
static char out[1 << 20];

static const char *env_required(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        fail_msg("%s is not set: run through tests/run.sh (services.sh up exports it)", name);
    return v;
}

/* "127.1:<port of the SASL_SSL listener>". */
static const char *mismatched_bootstrap(void)
{
    static char b[64];
    const char *colon = strrchr(env_required("PGR_KAFKA_TLS_BOOTSTRAP"), ':');
    assert_non_null(colon);
    snprintf(b, sizeof(b), "127.1%s", colon);
    return b;
}

/* Writes <name> from a fleet config file with Kafka over SASL_SSL at bootstrap, trusting ca. */
static void tls_config(const char *from, const char *name, const char *bootstrap, const char *ca)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "sed -e 's|^bootstrap.servers = .*|bootstrap.servers = %s\\nsecurity.protocol = "
             "SASL_SSL\\nsasl.mechanism = SCRAM-SHA-512\\nsasl.username = %s\\nsasl.password = "
             "%s\\nssl.ca.location = %s|' %s/%s > %s/%s",
             bootstrap, env_required("PGR_KAFKA_SASL_USER"),
             env_required("PGR_KAFKA_SASL_PASSWORD"), ca, F.dir, from, F.dir, name);
    assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
    (void)state;
    char cmd[1024], ca[256];
    fleet_setup(&F, 65536);
    /* a throwaway CA that did not sign the broker's (or PostgreSQL's) certificate */
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
             "-subj /CN=other-ca -keyout %s/other-ca.key -out %s/other-ca.crt 2>/dev/null",
             F.dir, F.dir);
    assert_int_equal(system(cmd), 0);
    snprintf(ca, sizeof(ca), "%s/other-ca.crt", F.dir);
    tls_config("coord.ini", "coord-wrong-ca.ini", env_required("PGR_KAFKA_TLS_BOOTSTRAP"), ca);
    tls_config("agent1.ini", "agent-wrong-ca.ini", env_required("PGR_KAFKA_TLS_BOOTSTRAP"), ca);
    tls_config("coord.ini", "coord-wrong-host.ini", mismatched_bootstrap(),
               env_required("PGR_TLS_CA"));
    tls_config("agent1.ini", "agent-wrong-host.ini", mismatched_bootstrap(),
               env_required("PGR_TLS_CA"));
    return 0;
}

/* Whether the broker has a topic of this fleet (asked for all topics as the super user, so
 * that the question cannot auto-create one). */
static bool fleet_has_topics(void)
{
    pgr_config *cfg = fleet_kafka_config(&F);
    rd_kafka_t *rk = NULL;
    assert_int_equal(pgr_kafka_producer_new(cfg, &rk, NULL, NULL), PGR_OK);
    pgr_config_free(cfg);
    const struct rd_kafka_metadata *md = NULL;
    assert_int_equal(rd_kafka_metadata(rk, 1, NULL, &md, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    bool found = false;
    for (int i = 0; i < md->topic_cnt; i++)
        found = found || strncmp(md->topics[i].topic, F.prefix, strlen(F.prefix)) == 0;
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return found;
}

/* Runs cmd; it must fail within BOUND_S saying that the certificate could not be verified,
 * and show no password. */
static void assert_refused(const char *cmd, const char *want)
{
    double t0 = now_s();
    int rc = run_cmd(cmd, out, sizeof(out));
    double took = now_s() - t0;
    if (rc == 0)
        fail_msg("exited 0: %s\n%s", cmd, out);
    if (took >= BOUND_S)
        fail_msg("took %.1f s to stop: %s\n%s", took, cmd, out);
    if (strstr(out, want) == NULL)
        fail_msg("no \"%s\" in the output of %s:\n%s", want, cmd, out);
    assert_null(strstr(out, env_required("PGR_KAFKA_SASL_PASSWORD")));
}

static void run_both(const char *coord_ini, const char *agent_ini)
{
    char cmd[1024], plan[256];
    const char *idx = "SELECT count(*) FROM pg_class WHERE relname LIKE 'idx_%'";
    PGconn *c = itest_connect(F.db[0]);
    long before = itest_scalar(c, idx);
    snprintf(plan, sizeof(plan), "%s/plan-%s.json", F.dir, coord_ini);
    itest_write_file(plan, "{\"name\": \"tls-neg\", \"migrations\": \"" MIGS "\", \"target\": "
                           "\"20251106000003\", \"tenants\": [\"district-001\"]}");
    snprintf(cmd, sizeof(cmd), COORD_BIN " run --config %s/%s --plan %s --timeout 120", F.dir,
             coord_ini, plan);
    assert_refused(cmd, "the broker's TLS certificate could not be verified");
    snprintf(cmd, sizeof(cmd), AGENT_BIN " run --config %s/%s", F.dir, agent_ini);
    assert_refused(cmd, "the broker's TLS certificate could not be verified");
    /* nothing reached Kafka: no topic of this fleet exists, and no tenant was touched */
    assert_false(fleet_has_topics());
    assert_int_equal(itest_scalar(c, idx), before);
    PQfinish(c);
}

static void test_tls_negative_kafka_wrong_ca(void **state)
{
    (void)state;
    run_both("coord-wrong-ca.ini", "agent-wrong-ca.ini");
}

static void test_tls_negative_kafka_host_name_mismatch(void **state)
{
    (void)state;
    run_both("coord-wrong-host.ini", "agent-wrong-host.ini");
}

/* The address, CA and credentials of the host-name case are otherwise right: with the host name
 * check off, the same client gets the broker's metadata. So the refusal above is that check, and
 * the product has it on without any [kafka] setting. */
static void test_tls_negative_host_name_check_is_the_cause(void **state)
{
    (void)state;
    const char *keys[] = {"bootstrap.servers",
                          "security.protocol",
                          "sasl.mechanism",
                          "sasl.username",
                          "sasl.password",
                          "ssl.ca.location",
                          "ssl.endpoint.identification.algorithm"};
    const char *values[] = {mismatched_bootstrap(),
                            "SASL_SSL",
                            "SCRAM-SHA-512",
                            env_required("PGR_KAFKA_SASL_USER"),
                            env_required("PGR_KAFKA_SASL_PASSWORD"),
                            env_required("PGR_TLS_CA"),
                            "none"};
    pgr_config *cfg = fleet_kafka_config(&F);
    free(cfg->kafka[0].key);
    free(cfg->kafka[0].value);
    free(cfg->kafka);
    cfg->kafka = calloc(7, sizeof(pgr_kv));
    assert_non_null(cfg->kafka);
    for (size_t i = 0; i < 7; i++) {
        cfg->kafka[i].key = strdup(keys[i]);
        cfg->kafka[i].value = strdup(values[i]);
    }
    cfg->kafka_count = 7;
    rd_kafka_t *rk = NULL;
    assert_int_equal(pgr_kafka_producer_new(cfg, &rk, NULL, NULL), PGR_OK);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, 15000);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        fail_msg("with the host name check off: %s", rd_kafka_err2str(e));
    assert_true(md->broker_cnt >= 1);
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    pgr_config_free(cfg);
}

/* PostgreSQL, sslmode=verify-full: the coordinator with a wrong CA, the agent with a host name
 * the server certificate does not hold. */
static void test_tls_negative_postgres(void **state)
{
    (void)state;
    char cmd[2048], path[256];
    snprintf(cmd, sizeof(cmd),
             "sed -e 's|^control_dsn = dbname=\\([^ ]*\\)|control_dsn = host=localhost port=%s "
             "dbname=\\1 sslmode=verify-full sslrootcert=%s/other-ca.crt|' %s/coord.ini > "
             "%s/coord-pg-wrong-ca.ini",
             env_required("PGPORT"), F.dir, F.dir, F.dir);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof(path), "%s/plan-pg.json", F.dir);
    itest_write_file(path, "{\"name\": \"tls-neg-pg\", \"migrations\": \"" MIGS "\", \"target\": "
                           "\"20251106000003\", \"tenants\": [\"district-001\"]}");
    snprintf(cmd, sizeof(cmd),
             COORD_BIN " run --config %s/coord-pg-wrong-ca.ini --plan %s --timeout 60", F.dir,
             path);
    int rc = run_cmd(cmd, out, sizeof(out));
    assert_int_not_equal(rc, 0);
    if (strstr(out, "certificate verify failed") == NULL)
        fail_msg("no certificate error in:\n%s", out);
    snprintf(
        cmd, sizeof(cmd),
        AGENT_BIN
        " status --dsn 'hostaddr=127.0.0.1 host=db.invalid port=%s dbname=%s sslmode=verify-full "
        "sslrootcert=%s' --migrations " MIGS,
        env_required("PGPORT"), F.db[0], env_required("PGR_TLS_CA"));
    rc = run_cmd(cmd, out, sizeof(out));
    assert_int_not_equal(rc, 0);
    if (strstr(out, "does not match host name") == NULL)
        fail_msg("no host name error in:\n%s", out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_negative_kafka_wrong_ca),
        cmocka_unit_test(test_tls_negative_kafka_host_name_mismatch),
        cmocka_unit_test(test_tls_negative_host_name_check_is_the_cause),
        cmocka_unit_test(test_tls_negative_postgres),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
