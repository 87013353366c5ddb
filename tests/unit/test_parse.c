/* test_parse.c - checked number/boolean parsing, string helpers, buffers, file reading. */
#include "pgr_test.h"

#include "pgr/parse.h"
#include "pgr/str.h"
#include "pgr/buf.h"
#include "pgr/file.h"

static void test_parse_int64_accepts_in_range(void **state)
{
    int64_t v = 0;
    (void)state;
    assert_int_equal(pgr_parse_int64("5000", 1, 600000, &v, NULL), PGR_OK);
    assert_int_equal(v, 5000);
    assert_int_equal(pgr_parse_int64("-3", -10, 10, &v, NULL), PGR_OK);
    assert_int_equal(v, -3);
}

static void test_parse_int64_rejects_garbage_and_range(void **state)
{
    int64_t v = 42;
    pgr_error e;
    (void)state;
    const char *bad[] = {"", " 5", "5 ", "5x", "0x10", "abc", "99999999999999999999999", NULL};
    for (int i = 0; bad[i] != NULL; i++) {
        assert_int_equal(pgr_parse_int64(bad[i], 0, 1000, &v, &e), PGR_ERR_INVALID);
        assert_int_equal(v, 42);
    }
    assert_int_equal(pgr_parse_int64("1001", 0, 1000, &v, &e), PGR_ERR_INVALID);
    assert_non_null(strstr(e.msg, "out of range"));
    assert_int_equal(pgr_parse_int64(NULL, 0, 1, &v, &e), PGR_ERR_INVALID);
}

static void test_parse_double_bounds(void **state)
{
    double d = 0;
    (void)state;
    assert_int_equal(pgr_parse_double("0.02", 0, 1, &d, NULL), PGR_OK);
    assert_true(d > 0.019 && d < 0.021);
    assert_int_equal(pgr_parse_double("1.5", 0, 1, &d, NULL), PGR_ERR_INVALID);
    assert_int_equal(pgr_parse_double("nan", 0, 1, &d, NULL), PGR_ERR_INVALID);
}

static void test_parse_bool_words(void **state)
{
    bool b = false;
    (void)state;
    assert_int_equal(pgr_parse_bool("YES", &b, NULL), PGR_OK);
    assert_true(b);
    assert_int_equal(pgr_parse_bool("off", &b, NULL), PGR_OK);
    assert_false(b);
    assert_int_equal(pgr_parse_bool("maybe", &b, NULL), PGR_ERR_INVALID);
}

static void test_parse_strlcpy_truncates_and_terminates(void **state)
{
    char small[4];
    (void)state;
    assert_int_equal(pgr_str_copy(small, "abcdef", sizeof(small)), 6);
    assert_string_equal(small, "abc");
}

static void test_parse_trim_and_ident(void **state)
{
    char s[] = "  \t hello world \r\n";
    (void)state;
    assert_string_equal(pgr_str_trim(s), "hello world");
    assert_true(pgr_str_is_simple_ident("medicationId"));
    assert_true(pgr_str_is_simple_ident("_x1"));
    assert_false(pgr_str_is_simple_ident("1x"));
    assert_false(pgr_str_is_simple_ident("a-b"));
    assert_false(pgr_str_is_simple_ident("x\"; DROP TABLE users; --"));
    assert_false(pgr_str_is_simple_ident(""));
}

static void test_parse_buf_grows(void **state)
{
    pgr_buf b;
    (void)state;
    pgr_buf_init(&b);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(pgr_buf_appendf(&b, "%04d", i), PGR_OK);
    assert_int_equal(b.len, 4000);
    assert_memory_equal(b.data + 3996, "0999", 4);
    pgr_buf_free(&b);
    pgr_buf_free(NULL);
}

static void test_parse_file_read_cap_and_missing(void **state)
{
    char dir[64], path[128];
    char *out = NULL;
    size_t len = 0;
    pgr_error e;
    (void)state;
    assert_non_null(pgr_test_tmpdir(dir, sizeof(dir)));
    snprintf(path, sizeof(path), "%s/f", dir);
    pgr_test_write(path, "0123456789");
    assert_int_equal(pgr_file_read(path, 100, &out, &len, &e), PGR_OK);
    assert_int_equal(len, 10);
    assert_string_equal(out, "0123456789");
    free(out);
    assert_int_equal(pgr_file_read(path, 5, &out, &len, &e), PGR_ERR_INVALID);
    snprintf(path, sizeof(path), "%s/missing", dir);
    assert_int_equal(pgr_file_read(path, 5, &out, &len, &e), PGR_ERR_NOTFOUND);
    assert_non_null(strstr(e.msg, "missing"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_int64_accepts_in_range),
        cmocka_unit_test(test_parse_int64_rejects_garbage_and_range),
        cmocka_unit_test(test_parse_double_bounds),
        cmocka_unit_test(test_parse_bool_words),
        cmocka_unit_test(test_parse_strlcpy_truncates_and_terminates),
        cmocka_unit_test(test_parse_trim_and_ident),
        cmocka_unit_test(test_parse_buf_grows),
        cmocka_unit_test(test_parse_file_read_cap_and_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
