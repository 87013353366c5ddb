/* test_error.c - the pgr_error type: messages, prefixes, SQLSTATE retriability. */
#include "pgr_test.h"

#include "pgr/error.h"

static void test_error_set_formats_message_and_returns_code(void **state)
{
    pgr_error e;
    (void)state;
    pgr_error_clear(&e);
    assert_int_equal(pgr_error_set(&e, PGR_ERR_CONFIG, "key \"%s\" is %d", "x", 7), PGR_ERR_CONFIG);
    assert_int_equal(e.code, PGR_ERR_CONFIG);
    assert_string_equal(e.msg, "key \"x\" is 7");
    assert_false(e.retriable);
}

static void test_error_set_accepts_null(void **state)
{
    (void)state;
    assert_int_equal(pgr_error_set(NULL, PGR_ERR_IO, "ignored"), PGR_ERR_IO);
    pgr_error_clear(NULL);
    pgr_error_set_sqlstate(NULL, "55P03");
}

static void test_error_prefix_wraps_message(void **state)
{
    pgr_error e;
    (void)state;
    pgr_error_set(&e, PGR_ERR_IO, "disk full");
    pgr_error_prefix(&e, "backup of \"%s\"", "t1");
    assert_string_equal(e.msg, "backup of \"t1\": disk full");
}

static void test_error_long_message_is_truncated_not_overflowed(void **state)
{
    pgr_error e;
    char big[1000];
    (void)state;
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    pgr_error_set(&e, PGR_ERR_INVALID, "%s", big);
    assert_int_equal(strlen(e.msg), sizeof(e.msg) - 1);
}

static void test_error_sqlstate_retriable_classes(void **state)
{
    static const struct {
        const char *state;
        bool retriable;
    } cases[] = {{"55P03", true}, {"40P01", true},  {"40001", true},  {"08006", true},
                 {"57P01", true}, {"23503", false}, {"42P01", false}, {"22012", false}};
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pgr_error e;
        pgr_error_set(&e, PGR_ERR_DB, "x");
        pgr_error_set_sqlstate(&e, cases[i].state);
        assert_string_equal(e.sqlstate, cases[i].state);
        assert_int_equal(e.retriable, cases[i].retriable);
    }
}

static void test_error_code_names(void **state)
{
    (void)state;
    assert_string_equal(pgr_error_code_name(PGR_OK), "ok");
    assert_string_equal(pgr_error_code_name(PGR_ERR_DRIFT), "drift");
    assert_string_equal(pgr_error_code_name(PGR_ERR_INTERNAL), "internal");
    assert_string_equal(pgr_error_code_name((pgr_code)999), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_set_formats_message_and_returns_code),
        cmocka_unit_test(test_error_set_accepts_null),
        cmocka_unit_test(test_error_prefix_wraps_message),
        cmocka_unit_test(test_error_long_message_is_truncated_not_overflowed),
        cmocka_unit_test(test_error_sqlstate_retriable_classes),
        cmocka_unit_test(test_error_code_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
