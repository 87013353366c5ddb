/*
 * fuzz_sqltext.c - the SQL lexer (common/src/sqltext.c) and its users that take any text: lint's
 * normaliser and the index-definition comparison. The input is read with and without backslash
 * escapes in plain strings. Properties: tokens are non-empty, follow each other with no gap and
 * never cross the input's end; each token looks like its kind; line numbers count LFs; the
 * statements rejoin to the input byte for byte, each but the last ends with its only ';', and a
 * statement lexed alone is one statement (or none); split and count agree; an error ends the
 * input; the normaliser grows the text by one byte at most; a definition equals itself.
 */
#include "fuzz_common.h"

#include "pgr/indexdef.h"
#include "pgr/lint.h"
#include "pgr/sqltext.h"

#include <stdlib.h>
#include <string.h>

static bool starts(const char *p, size_t n, const char *s)
{
    return n >= strlen(s) && memcmp(p, s, strlen(s)) == 0;
}

/* What a complete token of each kind must look like. */
static void check_shape(const char *p, size_t n, pgr_sqltext_kind kind, bool complete)
{
    switch (kind) {
    case PGR_SQLTEXT_SPACE:
        for (size_t i = 0; i < n; i++) {
            if (strchr(" \t\n\r\f\v", p[i]) == NULL || p[i] == '\0')
                fuzz_fail("a space token holds a non-blank byte");
        }
        break;
    case PGR_SQLTEXT_COMMENT:
        if (!starts(p, n, "--") || memchr(p, '\n', n) != NULL || memchr(p, '\r', n) != NULL)
            fuzz_fail("a -- comment does not start with -- or runs past a CR or LF");
        break;
    case PGR_SQLTEXT_BLOCK_COMMENT:
        if (!starts(p, n, "/*") || (complete && (n < 4 || memcmp(p + n - 2, "*/", 2) != 0)))
            fuzz_fail("a block comment is not delimited");
        break;
    case PGR_SQLTEXT_STRING:
        if (complete && (n < 2 || p[n - 1] != '\''))
            fuzz_fail("a string does not end with a quote");
        break;
    case PGR_SQLTEXT_QUOTED_IDENT:
        if (complete && (n < 2 || p[n - 1] != '"'))
            fuzz_fail("a quoted identifier does not end with a quote");
        break;
    case PGR_SQLTEXT_DOLLAR_STRING: {
        const char *end = memchr(p + 1, '$', n - 1);
        size_t d = end != NULL ? (size_t)(end - p) + 1 : 0;
        if (d == 0 || p[0] != '$' || (complete && (n < 2 * d || memcmp(p, p + n - d, d) != 0)))
            fuzz_fail("a dollar-quoted string does not end with its own delimiter");
        break;
    }
    case PGR_SQLTEXT_SEMICOLON:
        if (n != 1 || p[0] != ';')
            fuzz_fail("a semicolon token is not one ';'");
        break;
    default:
        if (memchr(p, ';', n) != NULL && kind != PGR_SQLTEXT_OTHER)
            fuzz_fail("a plain token holds a ';'");
        break;
    }
}

/* Tokens: contiguous, non-empty, inside the input, shaped like their kind, lines counted. */
static void check_tokens(const char *buf, size_t size, unsigned flags)
{
    pgr_sqltext lx;
    pgr_sqltext_token t;
    pgr_error err;
    size_t at = 0;
    int line = 1;
    pgr_code rc = PGR_OK;

    pgr_sqltext_init(&lx, buf, size, 1, flags);
    while (rc == PGR_OK && (rc = pgr_sqltext_next(&lx, &t, &err)) != PGR_ERR_NOTFOUND) {
        if (rc != PGR_OK && rc != PGR_ERR_INVALID)
            fuzz_fail("the lexer returned an unexpected code");
        if (t.off != at || t.len == 0 || t.len > size - at || t.line != line)
            fuzz_fail(
                "a token leaves a gap, is empty, crosses the input's end or has a wrong line");
        if (rc == PGR_ERR_INVALID &&
            (t.off + t.len != size || strstr(err.msg, "unterminated") == NULL))
            fuzz_fail("an unterminated token does not run to the end or lacks its message");
        check_shape(buf + t.off, t.len, t.kind, rc == PGR_OK);
        for (size_t i = 0; i < t.len; i++)
            line += buf[t.off + i] == '\n';
        at += t.len;
    }
    if (rc == PGR_ERR_NOTFOUND && at != size)
        fuzz_fail("the tokens do not cover the input");
}

/* Statements: rejoin to the input; each ends with its only ';'; alone, each is one statement. */
static void check_statements(const char *buf, size_t size, unsigned flags)
{
    pgr_sqltext_stmt *s = NULL;
    size_t n = 0, counted = 0, with_sql = 0, at = 0;
    pgr_code rc = pgr_sqltext_split(buf, size, 1, flags, &s, &n, NULL);
    pgr_code rc2 = pgr_sqltext_count(buf, size, 1, flags, &counted, NULL);

    if (rc != rc2)
        fuzz_fail("split and count disagree on the input");
    if (rc != PGR_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        size_t alone = 99;
        if (s[i].off != at || s[i].len == 0 || s[i].len > size - at)
            fuzz_fail("statements do not follow each other");
        if (i + 1 < n && buf[s[i].off + s[i].len - 1] != ';')
            fuzz_fail("a statement other than the last does not end with ';'");
        size_t len = s[i].len - (buf[s[i].off + s[i].len - 1] == ';' ? 1 : 0);
        if (pgr_sqltext_count(buf + s[i].off, len, 1, flags, &alone, NULL) != PGR_OK ||
            alone != (s[i].has_sql ? 1 : 0))
            fuzz_fail("a statement lexed alone is not one statement");
        with_sql += s[i].has_sql;
        at += s[i].len;
    }
    if (at != size || with_sql != counted)
        fuzz_fail("the statements do not rejoin to the input, or the count differs");
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;

    check_tokens(buf, size, 0);
    check_tokens(buf, size, PGR_SQLTEXT_BACKSLASH_STRINGS);
    check_statements(buf, size, 0);
    check_statements(buf, size, PGR_SQLTEXT_BACKSLASH_STRINGS);

    /* the string users stop at a NUL, as the parser's bodies never hold one */
    char *text = malloc(size + 1);
    if (text == NULL)
        fuzz_fail("out of memory");
    memcpy(text, buf, size);
    text[size] = '\0';
    char *norm = pgr_lint_normalize_sql(text);
    if (norm == NULL || strlen(norm) > strlen(text) + 1)
        fuzz_fail("the normalised text is missing or longer than the input plus one byte");
    free(norm);
    if (!pgr_indexdef_equal(text, text))
        fuzz_fail("an index definition differs from itself");
    free(text);
    return 0;
}
