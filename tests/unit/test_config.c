/* test_config.c - INI loading: defaults, typed keys with bounds, pass-through, precise errors. */
#include "pgr_test.h"

#include "pgr/config.h"

static pgr_code parse(const char *text, pgr_config **cfg, pgr_error *e)
{
    pgr_error_clear(e);
    return pgr_config_parse(text, strlen(text), "agent.ini", cfg, e);
}

static void test_config_good_file(void **state)
{
    pgr_config *cfg = NULL;
    pgr_error e;
    (void)state;
    const char *text = "# agent\n[agent]\nid = agent-1\nlock_timeout_ms = 2500\n"
                       "secret_key = /etc/pgrollout/agent.key\n\n[kafka]\n"
                       "bootstrap.servers = 127.0.0.1:9092\nsecurity.protocol = SSL\n"
                       "[tenants]\ndistrict-001 = host=127.0.0.1 dbname=t1\n"
                       "[tenant_tags]\ndistrict-001 = region:us-east\n[log]\nformat = json\n";
    assert_int_equal(parse(text, &cfg, &e), PGR_OK);
    assert_string_equal(cfg->agent_id, "agent-1");
    assert_int_equal(cfg->lock_timeout_ms, 2500);
    assert_int_equal(cfg->retries, 5); /* default */
    assert_string_equal(cfg->topic_prefix, "pgrollout.");
    assert_int_equal(cfg->kafka_count, 2);
    assert_string_equal(cfg->kafka[1].key, "security.protocol");
    assert_string_equal(cfg->kafka[1].value, "SSL");
    assert_int_equal(cfg->tenant_count, 1);
    const pgr_tenant_conf *t = pgr_config_tenant(cfg, "district-001");
    assert_non_null(t);
    assert_string_equal(t->dsn, "host=127.0.0.1 dbname=t1");
    assert_string_equal(t->tags, "region:us-east");
    assert_null(pgr_config_tenant(cfg, "district-002"));
    assert_string_equal(cfg->log_format, "json");
    pgr_config_free(cfg);
}

static void expect_error(const char *text, const char *fragment)
{
    pgr_config *cfg = NULL;
    pgr_error e;
    assert_int_equal(parse(text, &cfg, &e), PGR_ERR_CONFIG);
    assert_null(cfg);
    if (strstr(e.msg, fragment) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", e.msg, fragment);
}

static void test_config_errors_name_file_line_and_key(void **state)
{
    (void)state;
    expect_error("[agent]\nid = a\nlock_timeout_ms = 0\n",
                 "agent.ini:3: agent.lock_timeout_ms: value 0 is out of range");
    expect_error("[agent]\nlock_timeout_ms = fast\n",
                 "agent.ini:2: agent.lock_timeout_ms: invalid integer \"fast\"");
    expect_error("[agent]\n\nbogus = 1\n", "agent.ini:3: agent.bogus: unknown key");
    expect_error("[log]\nlevel = loud\n", "agent.ini:2: log.level: invalid value \"loud\"");
    expect_error("[agent]\nid = x\nthis line has no equals\n", "agent.ini:3: syntax error");
    expect_error("[agent\n", "agent.ini:1: syntax error");
    expect_error("id = x\n", "agent.ini:1: id: key outside of any section");
    expect_error("[tenants]\nt1 = host=a\nt1 = host=b\n", "agent.ini:3: tenants.t1: tenant \"t1\" "
                                                          "is listed twice");
    expect_error("[tenants]\nbad/id = host=a\n", "agent.ini:2: tenants.bad/id: invalid tenant");
    expect_error("[tenant_tags]\nt9 = a:b\n", "agent.ini:2: tenant_tags.t9: tags for tenant");
    /* a connection string libpq cannot parse: refused at load, and not quoted */
    expect_error("[tenants]\nt1 = host=a password=s3 cret\n",
                 "agent.ini:2: tenants.t1: tenant \"t1\": invalid connection string (not shown");
}

static void test_config_rejects_nul_and_long_lines(void **state)
{
    pgr_config *cfg = NULL;
    pgr_error e;
    char big[600];
    (void)state;
    const char nul[] = "[agent]\nid = a\0b\n";
    assert_int_equal(pgr_config_parse(nul, sizeof(nul) - 1, "x.ini", &cfg, &e), PGR_ERR_CONFIG);
    assert_non_null(strstr(e.msg, "x.ini:2: line contains a NUL byte"));
    snprintf(big, sizeof(big), "[agent]\nid = %0500d\n", 1);
    assert_int_equal(parse(big, &cfg, &e), PGR_ERR_CONFIG);
    assert_non_null(strstr(e.msg, "agent.ini:2: line is longer than"));
}

static void test_config_load_missing_file(void **state)
{
    pgr_config *cfg = NULL;
    pgr_error e;
    (void)state;
    assert_int_equal(pgr_config_load("/nonexistent/agent.ini", &cfg, &e), PGR_ERR_CONFIG);
    assert_non_null(strstr(e.msg, "/nonexistent/agent.ini"));
}

static void test_config_every_key_documented(void **state)
{
    char *ops = NULL;
    size_t len = 0;
    (void)state;
    FILE *f = fopen(PGR_SOURCE_DIR "/docs/OPERATIONS.md", "rb");
    assert_non_null(f);
    assert_int_equal(getdelim(&ops, &len, '\0', f) > 0, 1);
    fclose(f);
    for (const pgr_config_key *k = pgr_config_keys(); k->name != NULL; k++) {
        if (strstr(ops, k->name) == NULL)
            fail_msg("config key %s is not documented in docs/OPERATIONS.md", k->name);
    }
    free(ops);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_good_file),
        cmocka_unit_test(test_config_errors_name_file_line_and_key),
        cmocka_unit_test(test_config_rejects_nul_and_long_lines),
        cmocka_unit_test(test_config_load_missing_file),
        cmocka_unit_test(test_config_every_key_documented),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
