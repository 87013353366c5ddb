/* test_sqltext.c - the SQL lexer against PostgreSQL's scanner rules (scan.l): one test per rule,
 * with the exact tokens and statements it must produce. */
#include "pgr_test.h"

#include "pgr/sqltext.h"

/* "kind<text>" for every token, separated by blanks; "!" and the message on an error. */
static char *dump(const char *sql, unsigned flags)
{
    static char out[4096];
    size_t o = 0;
    pgr_sqltext lx;
    pgr_sqltext_token t;
    pgr_error err;
    pgr_code rc;

    pgr_error_clear(&err);
    pgr_sqltext_init(&lx, sql, strlen(sql), 1, flags);
    while ((rc = pgr_sqltext_next(&lx, &t, &err)) != PGR_ERR_NOTFOUND) {
        o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s<%.*s>", o > 0 ? " " : "",
                              pgr_sqltext_kind_name(t.kind), (int)t.len, sql + t.off);
        if (rc != PGR_OK)
            o += (size_t)snprintf(out + o, sizeof(out) - o, " !%s", err.msg);
        assert_true(o < sizeof(out));
    }
    out[o] = '\0';
    return out;
}

/* The statements, each as "[text]" (with "*" after when it holds SQL). */
static char *split(const char *sql, unsigned flags)
{
    static char out[4096];
    size_t o = 0, count = 0;
    pgr_sqltext_stmt *s = NULL;

    out[0] = '\0';
    assert_int_equal(pgr_sqltext_split(sql, strlen(sql), 1, flags, &s, &count, NULL), PGR_OK);
    for (size_t i = 0; i < count; i++)
        o += (size_t)snprintf(out + o, sizeof(out) - o, "[%.*s]%s", (int)s[i].len, sql + s[i].off,
                              s[i].has_sql ? "*" : "");
    free(s);
    return out;
}

static size_t count(const char *sql, unsigned flags)
{
    size_t n = 99;
    assert_int_equal(pgr_sqltext_count(sql, strlen(sql), 1, flags, &n, NULL), PGR_OK);
    return n;
}

static void test_sqltext_line_comment_ends_at_cr(void **state)
{
    (void)state;
    assert_string_equal(dump("a; -- x\rDROP TABLE t;", 0),
                        "ident<a> semicolon<;> space< > comment<-- x> space<\r> ident<DROP> "
                        "space< > ident<TABLE> space< > ident<t> semicolon<;>");
    assert_string_equal(split("a; -- x\rDROP TABLE t;", 0), "[a;]*[ -- x\rDROP TABLE t;]*");
    assert_int_equal(count("CREATE INDEX i ON t (c); -- x\rDROP TABLE students;", 0), 2);
    assert_int_equal(count("CREATE INDEX i ON t (c); -- x\nDROP TABLE students;", 0), 2);
    assert_int_equal(count("CREATE INDEX i ON t (c); -- x DROP TABLE students;", 0), 1);
    /* an operator stops before "--", which starts a comment */
    assert_string_equal(dump("1+--x\r;", 0),
                        "number<1> operator<+> comment<--x> space<\r> semicolon<;>");
}

static void test_sqltext_block_comments_nest(void **state)
{
    (void)state;
    assert_string_equal(dump("a /* /* nested */ ; */ b", 0),
                        "ident<a> space< > block_comment</* /* nested */ ; */> space< > ident<b>");
    assert_int_equal(count("SELECT 1 /* /* nested */ ; */ ;", 0), 1);
    /* "/" "*" "/" does not close; an operator stops before a comment */
    assert_string_equal(dump("/*/ x */;*/* y */", 0),
                        "block_comment</*/ x */> semicolon<;> operator<*> block_comment</* y */>");
}

static void test_sqltext_dollar_quotes(void **state)
{
    (void)state;
    assert_string_equal(dump("$$a;b$$ $t$ $$ ; $u$ $t$", 0),
                        "dollar_string<$$a;b$$> space< > dollar_string<$t$ $$ ; $u$ $t$>");
    /* a mismatched inner tag is text, and its last '$' may start the real end */
    assert_string_equal(dump("$a$x$b$a$;", 0), "dollar_string<$a$x$b$a$> semicolon<;>");
    /* $1 is a parameter; '$' continues an identifier; a tag cannot start with a digit */
    assert_string_equal(dump("$1;a$$b;$2$", 0),
                        "param<$1> semicolon<;> ident<a$$b> semicolon<;> param<$2> other<$>");
    assert_string_equal(dump("$_9x$;$_9x$", 0), "dollar_string<$_9x$;$_9x$>");
    /* tags are case sensitive */
    assert_string_equal(dump("$A$;$a$", 0), "dollar_string<$A$;$a$> !unterminated "
                                            "dollar-quoted string starting at line 1");
}

static void test_sqltext_standard_strings(void **state)
{
    (void)state;
    assert_string_equal(dump("'it''s;' ;", 0), "string<'it''s;'> space< > semicolon<;>");
    /* a backslash is an ordinary character in a standard string */
    assert_string_equal(dump("'a\\';'b'", 0), "string<'a\\'> semicolon<;> string<'b'>");
    /* a newline between two constants continues the first (a comment may sit in between) */
    assert_string_equal(dump("'a' -- c\n  'b';'c' 'd'", 0),
                        "string<'a' -- c\n  'b'> semicolon<;> string<'c'> space< > string<'d'>");
    assert_string_equal(dump("b'01' x'ff' N'n'", 0),
                        "string<b'01'> space< > string<x'ff'> space< > string<N'n'>");
}

static void test_sqltext_escape_strings(void **state)
{
    (void)state;
    assert_string_equal(dump("E'\\';' e'\\\\';x", 0),
                        "string<E'\\';'> space< > string<e'\\\\'> semicolon<;> ident<x>");
    /* only a whole token opens one: "xe" is an identifier */
    assert_string_equal(dump("xe'\\';", 0), "ident<xe> string<'\\'> semicolon<;>");
    /* a continuation keeps the escapes: \' does not end it */
    assert_int_equal(count("SELECT E'a'\n'\\'; DROP TABLE t; --';", 0), 1);
    /* standard_conforming_strings off: plain strings take escapes as well */
    assert_int_equal(count("SELECT 'a\\'' ; DROP TABLE t; --';", 0), 1);
    assert_int_equal(count("SELECT 'a\\'' ; DROP TABLE t; --';", PGR_SQLTEXT_BACKSLASH_STRINGS), 2);
}

static void test_sqltext_unicode_forms(void **state)
{
    (void)state;
    assert_string_equal(dump("U&'d\\0061t;' u&\"a;\"\"b\" U&x", 0),
                        "string<U&'d\\0061t;'> space< > quoted_ident<u&\"a;\"\"b\"> space< > "
                        "ident<U> operator<&> ident<x>");
    /* no backslash escapes in U&'' */
    assert_int_equal(count("SELECT U&'\\' ;", PGR_SQLTEXT_BACKSLASH_STRINGS), 1);
}

static void test_sqltext_quoted_identifiers(void **state)
{
    (void)state;
    assert_string_equal(dump("\"a;--\"\"/*\" ;", 0),
                        "quoted_ident<\"a;--\"\"/*\"> space< > semicolon<;>");
    assert_int_equal(count("CREATE INDEX \"i;x\" ON \"t;\" (\"c--\")", 0), 1);
}

static void test_sqltext_whitespace_kinds(void **state)
{
    (void)state;
    assert_string_equal(dump("a \t\n\r\f\vb", 0), "ident<a> space< \t\n\r\f\v> ident<b>");
    assert_string_equal(split(" ; ;x; -- end", 0), "[ ;][ ;][x;]*[ -- end]");
    assert_int_equal(count("-- only\r/* comments */\n;", 0), 0);
}

static void test_sqltext_tokens_exact(void **state)
{
    (void)state;
    assert_string_equal(
        dump("CREATE INDEX CONCURRENTLY i ON s.t USING gin ((c::text[]), 1.5e-3) WHERE x<>$1;", 0),
        "ident<CREATE> space< > ident<INDEX> space< > ident<CONCURRENTLY> space< > ident<i> "
        "space< > ident<ON> space< > ident<s> punct<.> ident<t> space< > ident<USING> space< > "
        "ident<gin> space< > punct<(> punct<(> ident<c> punct<::> ident<text> punct<[> punct<]> "
        "punct<)> punct<,> space< > number<1.5e-3> punct<)> space< > ident<WHERE> space< > "
        "ident<x> operator<<>> param<$1> semicolon<;>");
}

static void test_sqltext_unterminated_is_an_error(void **state)
{
    static const char *const cases[][2] = {
        {"a\n'x", "unterminated quoted string starting at line 2"},
        {"E'x\\'", "unterminated quoted string starting at line 1"},
        {"'x'\n'y", "unterminated quoted string starting at line 1"},
        {"\"x", "unterminated quoted identifier starting at line 1"},
        {"\n\n$t$ x $T$", "unterminated dollar-quoted string starting at line 3"},
        {"/* /* */", "unterminated /* comment starting at line 1"},
        {"E'\\", "unterminated quoted string starting at line 1"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pgr_error err;
        size_t n = 0;
        pgr_sqltext_stmt *s = NULL;
        pgr_error_clear(&err);
        assert_int_equal(pgr_sqltext_count(cases[i][0], strlen(cases[i][0]), 1, 0, &n, &err),
                         PGR_ERR_INVALID);
        assert_string_equal(err.msg, cases[i][1]);
        assert_int_equal(pgr_sqltext_split(cases[i][0], strlen(cases[i][0]), 1, 0, &s, &n, NULL),
                         PGR_ERR_INVALID);
    }
    /* the token covers the rest of the input, never more */
    assert_string_equal(dump("x 'a;b", 0), "ident<x> space< > string<'a;b> !unterminated quoted "
                                           "string starting at line 1");
}

static void test_sqltext_split_rejoins_input(void **state)
{
    const char *sql = "SELECT 1; /* c; */ SELECT ';' ; \n-- tail";
    pgr_sqltext_stmt *s = NULL;
    size_t n = 0, at = 0;
    (void)state;
    assert_int_equal(pgr_sqltext_split(sql, strlen(sql), 7, 0, &s, &n, NULL), PGR_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(s[i].off, at);
        at += s[i].len;
    }
    assert_int_equal(at, strlen(sql));
    assert_int_equal(s[1].line, 7);
    assert_false(s[2].has_sql);
    assert_int_equal(s[2].line, 7);
    free(s);
    assert_string_equal(split("", 0), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sqltext_line_comment_ends_at_cr),
        cmocka_unit_test(test_sqltext_block_comments_nest),
        cmocka_unit_test(test_sqltext_dollar_quotes),
        cmocka_unit_test(test_sqltext_standard_strings),
        cmocka_unit_test(test_sqltext_escape_strings),
        cmocka_unit_test(test_sqltext_unicode_forms),
        cmocka_unit_test(test_sqltext_quoted_identifiers),
        cmocka_unit_test(test_sqltext_whitespace_kinds),
        cmocka_unit_test(test_sqltext_tokens_exact),
        cmocka_unit_test(test_sqltext_unterminated_is_an_error),
        cmocka_unit_test(test_sqltext_split_rejoins_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
