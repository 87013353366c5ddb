/* test_term.c - escaping of untrusted text for terminals: exact bytes out. */
#include "pgr_test.h"

#include "pgr/term.h"

static void expect_escaped(const char *in, const char *want)
{
    char out[256];
    size_t n = pgr_term_escape(in, out, sizeof(out));
    if (strcmp(out, want) != 0)
        fail_msg("escaped \"%s\", expected \"%s\"", out, want);
    assert_int_equal(n, strlen(want));
}

static void test_term_escapes_control_bytes(void **state)
{
    (void)state;
    expect_escaped("plain tenant-01", "plain tenant-01");
    expect_escaped("\x1b]0;pwn\x07", "\\x1b]0;pwn\\x07");
    expect_escaped("a\nb\tc\rd", "a\\nb\\tc\\rd");
    expect_escaped("del\x7f", "del\\x7f");
    expect_escaped("back\\slash", "back\\\\slash");
    expect_escaped("\x01\x1f", "\\x01\\x1f");
    expect_escaped(NULL, "");
    expect_escaped("", "");
}

static void test_term_keeps_valid_utf8(void **state)
{
    (void)state;
    expect_escaped("Zürich-Spital \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x8f\xa5",
                   "Zürich-Spital \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x8f\xa5");
}

static void test_term_escapes_invalid_utf8_and_c1(void **state)
{
    (void)state;
    expect_escaped("\xc2\x9b"
                   "31m",
                   "\\u009b31m"); /* C1 CSI */
    expect_escaped("a\xff"
                   "b",
                   "a\\xffb");                         /* never valid */
    expect_escaped("\xc0\xaf", "\\xc0\\xaf");          /* overlong '/' */
    expect_escaped("\xed\xa0\x80", "\\xed\\xa0\\x80"); /* surrogate */
    expect_escaped("\xe2\x80\xae"
                   "abc",
                   "\\u202eabc");                   /* right-to-left override */
    expect_escaped("cut\xe6\x9d", "cut\\xe6\\x9d"); /* truncated sequence */
}

static void test_term_truncates_whole_escapes(void **state)
{
    char out[8];
    (void)state;
    /* "abcde" fits in 8 bytes, its escape "\x1b" (4 more) does not: it is left out whole, not
     * cut; likewise a UTF-8 character */
    size_t n = pgr_term_escape("abcde\x1b", out, sizeof(out));
    assert_int_equal(n, 9);
    assert_string_equal(out, "abcde");
    n = pgr_term_escape("abcd\xe6\x9d\xb1", out, 6);
    assert_int_equal(n, 7);
    assert_string_equal(out, "abcd");
    char *dup = pgr_term_escape_dup("x\x1by");
    assert_string_equal(dup, "x\\x1by");
    free(dup);
}

static void test_term_format_escapes_the_whole_line(void **state)
{
    char out[128];
    (void)state;
    pgr_term_format(out, sizeof(out), "tenant %s seq %d: %s", "t\x1b[2J", 7, "line1\nFAKE");
    assert_string_equal(out, "tenant t\\x1b[2J seq 7: line1\\nFAKE");
}

static void test_term_json_string_keeps_text_and_escapes_invalid_utf8(void **state)
{
    (void)state;
    json_t *v = pgr_term_json_string("\"><script>\x1b]0;pwn\x07 Zürich");
    assert_string_equal(json_string_value(v), "\"><script>\x1b]0;pwn\x07 Zürich");
    json_decref(v);
    v = pgr_term_json_string("bad\xff\x1b");
    assert_non_null(v);
    assert_string_equal(json_string_value(v), "bad\\xff\\x1b");
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_term_escapes_control_bytes),
        cmocka_unit_test(test_term_keeps_valid_utf8),
        cmocka_unit_test(test_term_escapes_invalid_utf8_and_c1),
        cmocka_unit_test(test_term_truncates_whole_escapes),
        cmocka_unit_test(test_term_format_escapes_the_whole_line),
        cmocka_unit_test(test_term_json_string_keeps_text_and_escapes_invalid_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
