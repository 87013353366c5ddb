/* test_log.c - log levels, text and JSON lines with context, DSN redaction. */
#include "pgr_test.h"

#include "pgr/log.h"
#include "pgr/dsn.h"

#include <jansson.h>

static char *capture(pgr_log_level setup_level, pgr_log_format fmt, pgr_log_level level,
                     const char *msg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    pgr_log_ctx ctx = {"executor", "district-001", "0f8c7f1e-job"};
    pgr_log_setup(setup_level, fmt, f);
    pgr_log(level, &ctx, "%s", msg);
    fclose(f);
    pgr_log_setup(PGR_LOG_INFO, PGR_LOG_TEXT, NULL);
    return buf;
}

static void test_log_text_line_carries_context(void **state)
{
    (void)state;
    char *out = capture(PGR_LOG_INFO, PGR_LOG_TEXT, PGR_LOG_WARN, "index \"x\" is invalid");
    assert_non_null(strstr(out, " warn "));
    assert_non_null(strstr(out, "[executor] tenant=district-001 job=0f8c7f1e-job"));
    assert_non_null(strstr(out, "index \"x\" is invalid\n"));
    free(out);
}

static void test_log_json_line_is_one_valid_object(void **state)
{
    (void)state;
    char *out = capture(PGR_LOG_DEBUG, PGR_LOG_JSON, PGR_LOG_ERROR, "quote \" and newline \n");
    json_error_t je;
    assert_int_equal(strchr(out, '\n') - out, (long)strlen(out) - 1);
    json_t *o = json_loads(out, 0, &je);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "level")), "error");
    assert_string_equal(json_string_value(json_object_get(o, "tenant")), "district-001");
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "quote \" and newline \n");
    json_decref(o);
    free(out);
}

static void test_log_level_filters(void **state)
{
    (void)state;
    char *out = capture(PGR_LOG_WARN, PGR_LOG_TEXT, PGR_LOG_INFO, "hidden");
    assert_true(out == NULL || strlen(out) == 0);
    free(out);
}

static void test_log_level_parse(void **state)
{
    pgr_log_level l = PGR_LOG_INFO;
    pgr_error e;
    (void)state;
    assert_int_equal(pgr_log_level_parse("DEBUG", &l, &e), PGR_OK);
    assert_int_equal(l, PGR_LOG_DEBUG);
    assert_int_equal(pgr_log_level_parse("loud", &l, &e), PGR_ERR_INVALID);
    assert_non_null(strstr(e.msg, "loud"));
}

static void test_log_redact_dsn_hides_passwords(void **state)
{
    char out[256];
    (void)state;
    pgr_dsn_redact("host=db user=app password=s3cret dbname=t1", out, sizeof(out));
    assert_string_equal(out, "host=db user=app password=*** dbname=t1");
    pgr_dsn_redact("password = 'a b\\'c' host=x", out, sizeof(out));
    assert_null(strstr(out, "a b"));
    assert_non_null(strstr(out, "host=x"));
    pgr_dsn_redact("postgresql://app:s3cret@db:5432/t1", out, sizeof(out));
    assert_string_equal(out, "postgresql://app:***@db:5432/t1");
    pgr_dsn_redact("postgresql://db/t1?user=a&password=s3cret&sslmode=require", out, sizeof(out));
    assert_null(strstr(out, "s3cret"));
    assert_non_null(strstr(out, "sslmode=require"));
    pgr_dsn_redact("host=db dbname=t1", out, sizeof(out));
    assert_string_equal(out, "host=db dbname=t1");
    pgr_dsn_redact("tenant_0042", out, sizeof(out)); /* a plain database name */
    assert_string_equal(out, "tenant_0042");
}

/* Forms the text redaction alone missed: libpq's parse then decides what is a secret. */
static void test_log_redact_dsn_hides_every_secret_form(void **state)
{
    char out[256];
    (void)state;
    /* a tab before the key, sslpassword (the client key's passphrase), several in a URI */
    pgr_dsn_redact("host=db\tpassword=s3cret dbname=t1", out, sizeof(out));
    assert_string_equal(out, "password=*** dbname=t1 host=db");
    pgr_dsn_redact("host=db sslpassword=s3cret dbname=t1", out, sizeof(out));
    assert_string_equal(out, "dbname=t1 host=db sslpassword=***");
    pgr_dsn_redact("postgresql://u:p1@db/t1?sslpassword=p2&password=p3", out, sizeof(out));
    assert_null(strstr(out, "p1"));
    assert_null(strstr(out, "p2"));
    assert_null(strstr(out, "p3"));
    assert_non_null(strstr(out, "host=db"));
    /* strings libpq cannot parse are not shown: its error would quote part of the password */
    pgr_dsn_redact("host=db password=s3cret more dbname=t1", out, sizeof(out));
    assert_string_equal(out, "(invalid connection string, not shown)");
    pgr_dsn_redact("postgresql://u:s3cret%zz@db/t1", out, sizeof(out));
    assert_string_equal(out, "(invalid connection string, not shown)");
    assert_false(pgr_dsn_valid("postgresql://u:s3cret%zz@db/t1"));
    assert_true(pgr_dsn_valid("tenant_0042"));
    assert_true(pgr_dsn_secret_in("host=db password=s3cret", "x s3cret y"));
    assert_false(pgr_dsn_secret_in("host=db password=s3cret", "host=db password=***"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_text_line_carries_context),
        cmocka_unit_test(test_log_json_line_is_one_valid_object),
        cmocka_unit_test(test_log_level_filters),
        cmocka_unit_test(test_log_level_parse),
        cmocka_unit_test(test_log_redact_dsn_hides_passwords),
        cmocka_unit_test(test_log_redact_dsn_hides_every_secret_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
