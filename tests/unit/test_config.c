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

/* [tenant_sources]: our options are taken out, the rest stays libpq's (re-quoted), and the id
 * of each database name follows the template. */
static void test_config_tenant_sources(void **state)
{
    pgr_config *cfg = NULL;
    pgr_error e;
    char id[129];
    (void)state;
    const char *text = "[tenant_sources]\neu1 = host=db-eu1 user=agent password='it''s' "
                       "dbname_pattern=district_% id=district-{suffix} tags=region:eu\n"
                       "all = dbname=admin dbname_pattern=%_prod id={name}\n";
    assert_int_equal(parse(text, &cfg, &e), PGR_ERR_CONFIG); /* '' is not libpq's quoting */
    text = "[tenant_sources]\neu1 = host=db-eu1 user=agent password='it\\'s' "
           "dbname_pattern=district_% id=district-{suffix} tags=region:eu\n"
           "all = dbname=admin dbname_pattern=%_prod id={name}\n";
    assert_int_equal(parse(text, &cfg, &e), PGR_OK);
    assert_int_equal(cfg->source_count, 2);
    const pgr_tenantsrc *s = &cfg->sources[0];
    assert_string_equal(s->name, "eu1");
    assert_string_equal(s->conninfo, "host='db-eu1' user='agent' password='it\\'s'");
    assert_string_equal(s->list_db, "postgres");
    assert_string_equal(s->prefix, "district_");
    assert_string_equal(s->suffix, "");
    assert_string_equal(s->tags, "region:eu");
    assert_int_equal(pgr_tenantsrc_id(s, "district_0042", id, sizeof(id)), PGR_TENANTSRC_MATCH);
    assert_string_equal(id, "district-0042");
    /* '_' is literal: no LIKE wildcard */
    assert_int_equal(pgr_tenantsrc_id(s, "districtX0042", id, sizeof(id)), PGR_TENANTSRC_NO_MATCH);
    assert_int_equal(pgr_tenantsrc_id(s, "district_a b", id, sizeof(id)), PGR_TENANTSRC_BAD_ID);
    assert_int_equal(pgr_tenantsrc_id(s, "district_", id, sizeof(id)), PGR_TENANTSRC_MATCH);
    assert_string_equal(id, "district-"); /* '%' matches no character too */
    /* and back: the database an id would come from */
    char db[64];
    assert_true(pgr_tenantsrc_dbname(s, "district-0042", db, sizeof(db)));
    assert_string_equal(db, "district_0042");
    assert_false(pgr_tenantsrc_dbname(s, "school-0042", db, sizeof(db)));
    char *dsn = pgr_tenantsrc_dsn(s, "district_it's");
    assert_string_equal(dsn, "host='db-eu1' user='agent' password='it\\'s' "
                             "dbname='district_it\\'s'");
    assert_true(pgr_dsn_valid(dsn));
    free(dsn);
    s = &cfg->sources[1];
    assert_string_equal(s->list_db, "admin");
    assert_string_equal(s->conninfo, "");
    assert_int_equal(pgr_tenantsrc_id(s, "school_prod", id, sizeof(id)), PGR_TENANTSRC_MATCH);
    assert_string_equal(id, "school_prod");
    assert_int_equal(pgr_tenantsrc_id(s, "_prod", id, sizeof(id)), PGR_TENANTSRC_MATCH);
    assert_int_equal(pgr_tenantsrc_id(s, "school_test", id, sizeof(id)), PGR_TENANTSRC_NO_MATCH);
    assert_true(pgr_tenantsrc_dbname(s, "school_prod", db, sizeof(db)));
    assert_string_equal(db, "school_prod");
    assert_false(pgr_tenantsrc_dbname(s, "school_test", db, sizeof(db))); /* not a match */
    pgr_config_free(cfg);

    expect_error("[tenant_sources]\ns = host=a id=t-{suffix}\n",
                 "agent.ini:2: tenant_sources.s: tenant source \"s\": dbname_pattern=PATTERN is "
                 "required");
    expect_error("[tenant_sources]\ns = dbname_pattern=a_% \n", "id=TEMPLATE is required");
    expect_error("[tenant_sources]\ns = dbname_pattern=a_%_% id={suffix}\n", "exactly one '%'");
    expect_error("[tenant_sources]\ns = dbname_pattern=a_ id={suffix}\n", "exactly one '%'");
    expect_error("[tenant_sources]\ns = dbname_pattern=a_% id=tenant\n",
                 "needs {suffix} or {name}");
    expect_error("[tenant_sources]\ns = dbname_pattern=a_% id={suffix}-{name}\n",
                 "id: {suffix} or {name} once, not more");
    expect_error("[tenant_sources]\ns = dbname_pattern=a_% id=t/{suffix}\n", "id: only letters");
    expect_error("[tenant_sources]\ns = dbname_pattern=a_% id=t-{sufix}\n", "id: only letters");
    expect_error("[tenant_sources]\ns-1 = dbname_pattern=a_% id={name}\n", "source name");
    expect_error("[tenant_sources]\ns = postgresql://u:secret@h/db dbname_pattern=a_% id={name}\n",
                 "URI form");
    expect_error("[tenant_sources]\ns = dbname_pattern=a_% id={name}\ns = dbname_pattern=b_% "
                 "id={name}\n",
                 "agent.ini:3: tenant_sources.s: tenant source \"s\" is listed twice");
    /* libpq refuses the options: said without quoting them (a password may be among them) */
    pgr_config *bad = NULL;
    const char *secret = "[tenant_sources]\ns = host=a passwrd=hunter2 dbname_pattern=a_% "
                         "id={name}\n";
    assert_int_equal(parse(secret, &bad, &e), PGR_ERR_CONFIG);
    assert_non_null(strstr(e.msg, "invalid connection options (not shown"));
    assert_null(strstr(e.msg, "hunter2"));
    expect_error("[tenant_sources]\ns = host='a dbname_pattern=a_% id={name}\n",
                 "expected key=value options");
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
        cmocka_unit_test(test_config_tenant_sources),
        cmocka_unit_test(test_config_every_key_documented),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
