/*
 * indexdef.c - canonical form of CREATE INDEX statements for definition comparison. The
 * statement is read by the SQL lexer (sqltext.c), so comments, literals and quoted identifiers
 * end where PostgreSQL ends them; the canonical form is built from its tokens.
 */
#include "pgr/indexdef.h"
#include "pgr/sqltext.h"
#include "pgr/buf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The tokens that are not blanks or comments. */
typedef struct canon {
    const char *sql;
    pgr_sqltext_token *t;
    size_t n;
    pgr_buf out;
} canon;

static bool is_word(const canon *c, size_t k, const char *word)
{
    return k < c->n && c->t[k].kind == PGR_SQLTEXT_IDENT && c->t[k].len == strlen(word) &&
           strncasecmp(c->sql + c->t[k].off, word, c->t[k].len) == 0;
}

static bool is_punct(const canon *c, size_t k, const char *p)
{
    return k < c->n &&
           (c->t[k].kind == PGR_SQLTEXT_PUNCT || c->t[k].kind == PGR_SQLTEXT_SEMICOLON) &&
           c->t[k].len == strlen(p) && memcmp(c->sql + c->t[k].off, p, c->t[k].len) == 0;
}

static bool is_name(const canon *c, size_t k)
{
    return k < c->n &&
           (c->t[k].kind == PGR_SQLTEXT_IDENT || c->t[k].kind == PGR_SQLTEXT_QUOTED_IDENT);
}

/* Index of the first token after a cast's type (k is the "::"): a possibly qualified name, the
 * words of PostgreSQL's multi-word types ("character varying", "timestamp with time zone",
 * "double precision") and array brackets. Nothing after the type is swallowed. */
static size_t skip_cast(const canon *c, size_t k)
{
    k++;
    if (is_name(c, k))
        k++;
    while (is_punct(c, k, ".") && is_name(c, k + 1))
        k += 2;
    for (bool again = true; again;) {
        again = true;
        if (is_word(c, k, "varying") || is_word(c, k, "precision") || is_word(c, k, "zone"))
            k++;
        else if ((is_word(c, k, "with") || is_word(c, k, "without")) && is_word(c, k + 1, "time"))
            k += 2;
        else if (is_word(c, k, "time") && is_word(c, k + 1, "zone"))
            k += 2;
        else if (is_punct(c, k, "[") && is_punct(c, k + 1, "]"))
            k += 2;
        else
            again = false;
    }
    return k;
}

/* Tokens left out of the canonical form: how many start at k (0 to keep token k). */
static size_t skipped(const canon *c, size_t k)
{
    if (is_word(c, k, "concurrently"))
        return 1;
    if (is_word(c, k, "if") && is_word(c, k + 1, "not") && is_word(c, k + 2, "exists"))
        return 3;
    if (is_word(c, k, "using") && is_word(c, k + 1, "btree"))
        return 2;
    if (is_word(c, k, "public") && is_punct(c, k + 1, "."))
        return 2;
    if (is_punct(c, k, "(") || is_punct(c, k, ")"))
        return 1;
    if (is_punct(c, k, "::"))
        return skip_cast(c, k) - k;
    for (size_t j = k; is_punct(c, j, ";"); j++) {
        if (j + 1 == c->n)
            return j + 1 - k; /* final semicolons */
    }
    return 0;
}

static pgr_code put_lower(pgr_buf *b, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = (char)tolower((unsigned char)p[i]);
        if (pgr_buf_append(b, &ch, 1) != PGR_OK)
            return PGR_ERR_NOMEM;
    }
    return PGR_OK;
}

/* Appends token k: identifiers and keywords in lower case, quoted identifiers without their
 * quotes (case kept: "isActive" and isactive are different columns), string constants verbatim
 * after a lower-case prefix, dollar-quoted strings as the '' literal PostgreSQL prints. */
static pgr_code put_token(canon *c, size_t k)
{
    const pgr_sqltext_token *t = &c->t[k];
    const char *p = c->sql + t->off;
    size_t q = 0;

    if (t->kind == PGR_SQLTEXT_QUOTED_IDENT) {
        while (q < t->len && p[q] != '"')
            q++;
        for (size_t i = q + 1; i + 1 < t->len; i++) {
            if (pgr_buf_append(&c->out, p + i, 1) != PGR_OK)
                return PGR_ERR_NOMEM;
            i += p[i] == '"' ? 1 : 0; /* "" stands for one quote */
        }
        return PGR_OK;
    }
    if (t->kind == PGR_SQLTEXT_DOLLAR_STRING) {
        size_t delim = (size_t)((const char *)memchr(p + 1, '$', t->len - 1) - p) + 1;
        pgr_code rc = pgr_buf_append(&c->out, "'", 1);
        for (size_t i = delim; rc == PGR_OK && i + delim < t->len; i++)
            rc = pgr_buf_append(&c->out, p[i] == '\'' ? "''" : p + i, p[i] == '\'' ? 2 : 1);
        return rc == PGR_OK ? pgr_buf_append(&c->out, "'", 1) : rc;
    }
    if (t->kind == PGR_SQLTEXT_STRING) {
        while (p[q] != '\'')
            q++;
        if (put_lower(&c->out, p, q) != PGR_OK)
            return PGR_ERR_NOMEM;
        return pgr_buf_append(&c->out, p + q, t->len - q);
    }
    return put_lower(&c->out, p, t->len);
}

/* Collects the tokens that are not blanks; an unterminated token is kept as it is. */
static pgr_code collect(canon *c, const char *sql)
{
    pgr_sqltext lx;
    pgr_sqltext_token tok;

    size_t len = strlen(sql);
    pgr_sqltext_init(&lx, sql, len, 1, 0);
    /* every token kept is at least one byte: one slot per byte is a bound (the statements are
     * short) */
    c->t = malloc((len + 1) * sizeof(*c->t));
    if (c->t == NULL)
        return PGR_ERR_NOMEM;
    while (pgr_sqltext_next(&lx, &tok, NULL) != PGR_ERR_NOTFOUND) {
        if (!pgr_sqltext_is_blank(tok.kind))
            c->t[c->n++] = tok;
    }
    return PGR_OK;
}

char *pgr_indexdef_canonical(const char *sql)
{
    canon c = {sql, NULL, 0, {0}};
    pgr_code rc = collect(&c, sql);

    pgr_buf_init(&c.out);
    for (size_t k = 0; rc == PGR_OK && k < c.n;) {
        size_t skip = skipped(&c, k);
        if (skip > 0) {
            k += skip;
            continue;
        }
        rc = put_token(&c, k++);
    }
    if (rc == PGR_OK)
        rc = pgr_buf_append(&c.out, "", 0); /* allocates the NUL of an empty result */
    free(c.t);
    if (rc != PGR_OK) {
        pgr_buf_free(&c.out);
        return NULL;
    }
    return c.out.data;
}

bool pgr_indexdef_equal(const char *step_sql, const char *pg_indexdef)
{
    char *a = pgr_indexdef_canonical(step_sql);
    char *b = pgr_indexdef_canonical(pg_indexdef);
    bool eq = a != NULL && b != NULL && strcmp(a, b) == 0;
    free(a);
    free(b);
    return eq;
}
