/*
 * sqltext.c - SQL tokens and statement boundaries by the rules of PostgreSQL's scanner
 * (scan.l). Each scan_* function reads one token kind starting at lx->off and returns its end
 * offset; unterminated tokens return the input's length and set *open. The rules that decide
 * where a statement ends are the ones that matter for safety, so each names its scan.l source.
 */
#include "pgr/sqltext.h"

#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {
    "space",  "comment", "block_comment", "ident", "quoted_ident", "string", "dollar_string",
    "number", "param",   "operator",      "punct", "semicolon",    "other",
};

const char *pgr_sqltext_kind_name(pgr_sqltext_kind kind)
{
    return (size_t)kind < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[kind] : "?";
}

bool pgr_sqltext_is_blank(pgr_sqltext_kind kind)
{
    return kind == PGR_SQLTEXT_SPACE || kind == PGR_SQLTEXT_COMMENT ||
           kind == PGR_SQLTEXT_BLOCK_COMMENT;
}

/* scan.l: space [ \t\n\r\f\v] */
static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* scan.l: newline [\n\r] -- a "--" comment ends at either (non_newline [^\n\r]) */
static bool is_newline(char c)
{
    return c == '\n' || c == '\r';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* scan.l: ident_start [A-Za-z\200-\377_] (also dolq_start) */
static bool is_ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (unsigned char)c >= 0x80;
}

/* scan.l: dolq_cont [A-Za-z\200-\377_0-9]; ident_cont adds '$' */
static bool is_dolq_cont(char c)
{
    return is_ident_start(c) || is_digit(c);
}

/* scan.l: op_chars [\~\!\@\#\^\&\|\`\?\+\-\*\/\%\<\>\=] */
static bool is_op_char(char c)
{
    return c != '\0' && strchr("~!@#^&|`?+-*/%<>=", c) != NULL;
}

static bool at(const pgr_sqltext *lx, size_t i, const char *two)
{
    return i + 1 < lx->len && lx->sql[i] == two[0] && lx->sql[i + 1] == two[1];
}

static size_t scan_line_comment(const pgr_sqltext *lx, size_t i)
{
    while (i < lx->len && !is_newline(lx->sql[i]))
        i++;
    return i;
}

/* scan.l <xc>: comments nest; "/" followed by "*" opens, "*" followed by "/" closes. */
static size_t scan_block_comment(const pgr_sqltext *lx, size_t i, bool *open)
{
    int depth = 0;

    while (i < lx->len) {
        if (at(lx, i, "/*")) {
            depth++;
            i += 2;
        } else if (at(lx, i, "*/")) {
            i += 2;
            if (--depth == 0)
                return i;
        } else {
            i++;
        }
    }
    *open = true;
    return lx->len;
}

/* scan.l quotecontinue: {whitespace_with_newline}{quote}, where whitespace_with_newline is
 * horizontal blanks or comments, a newline, then any blanks and comments. Returns the offset
 * of the continuing quote, or 0 when the string ends at i. */
static size_t string_continues(const pgr_sqltext *lx, size_t i)
{
    bool newline = false;

    while (i < lx->len) {
        char c = lx->sql[i];
        if (is_newline(c))
            newline = true;
        if (is_space(c))
            i++;
        else if (at(lx, i, "--"))
            i = scan_line_comment(lx, i);
        else
            break;
    }
    return newline && i < lx->len && lx->sql[i] == '\'' ? i : 0;
}

/* A string constant whose body starts at i (after the opening quote). '' stands for a quote;
 * with backslash, a backslash takes the next byte whatever it is (xeescape, xeoctesc,
 * xehexesc and xeunicode never end on a quote). A continuation keeps the string's kind. */
static size_t scan_string(const pgr_sqltext *lx, size_t i, bool backslash, bool *open)
{
    while (i < lx->len) {
        char c = lx->sql[i];
        if (backslash && c == '\\') {
            i += 2;
        } else if (c != '\'') {
            i++;
        } else if (i + 1 < lx->len && lx->sql[i + 1] == '\'') {
            i += 2;
        } else {
            size_t next = string_continues(lx, i + 1);
            if (next == 0)
                return i + 1;
            i = next + 1;
        }
    }
    *open = true;
    return lx->len;
}

/* A quoted identifier whose body starts at i: "" stands for a quote, nothing else is special. */
static size_t scan_quoted_ident(const pgr_sqltext *lx, size_t i, bool *open)
{
    while (i < lx->len) {
        if (lx->sql[i] != '"')
            i++;
        else if (i + 1 < lx->len && lx->sql[i + 1] == '"')
            i += 2;
        else
            return i + 1;
    }
    *open = true;
    return lx->len;
}

/* Length of the dollar-quote delimiter at i (scan.l dolqdelim: \$({dolq_start}{dolq_cont}*)?\$),
 * 0 when there is none ("$1", "$ ", "$a b"). */
static size_t dollar_delim_len(const pgr_sqltext *lx, size_t i)
{
    size_t j = i + 1;

    if (j < lx->len && is_ident_start(lx->sql[j])) {
        while (j < lx->len && is_dolq_cont(lx->sql[j]))
            j++;
    }
    return j < lx->len && lx->sql[j] == '$' ? j - i + 1 : 0;
}

/* scan.l <xdolq>: the string ends at the first copy of its own delimiter. Another delimiter
 * ($x$ inside $y$) is text; scanning byte by byte finds the same end as scan.l, which gives
 * back the last '$' of a delimiter that does not match. */
static size_t scan_dollar_string(const pgr_sqltext *lx, size_t i, size_t delim, bool *open)
{
    for (size_t j = i + delim; j + delim <= lx->len; j++) {
        if (lx->sql[j] == '$' && memcmp(lx->sql + j, lx->sql + i, delim) == 0)
            return j + delim;
    }
    *open = true;
    return lx->len;
}

/* Digits, a fraction, an exponent, and any identifier bytes glued to them (scan.l refuses those
 * as "trailing junk", so taking them here changes no statement boundary). */
static size_t scan_number(const pgr_sqltext *lx, size_t i)
{
    const char *s = lx->sql;
    size_t n = lx->len;

    while (i < n && is_digit(s[i]))
        i++;
    if (i < n && s[i] == '.' && !(i + 1 < n && s[i + 1] == '.')) {
        i++;
        while (i < n && is_digit(s[i]))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < n && (s[j] == '+' || s[j] == '-'))
            j++;
        if (j < n && is_digit(s[j])) {
            i = j;
            while (i < n && is_digit(s[i]))
                i++;
        }
    }
    if (i < n && is_ident_start(s[i])) {
        while (i < n && (is_dolq_cont(s[i]) || s[i] == '$'))
            i++;
    }
    return i;
}

/* scan.l {operator}: op_chars, cut before an embedded "--" or slash-star, which start a
 * comment. */
static size_t scan_operator(const pgr_sqltext *lx, size_t i)
{
    size_t start = i;

    while (i < lx->len && is_op_char(lx->sql[i])) {
        if (i > start && (at(lx, i, "--") || at(lx, i, "/*")))
            break;
        i++;
    }
    return i;
}

static size_t scan_ident(const pgr_sqltext *lx, size_t i)
{
    while (i < lx->len && (is_dolq_cont(lx->sql[i]) || lx->sql[i] == '$'))
        i++;
    return i;
}

/* Identifier-led tokens: E'' (xestart), B'' X'' N'' (xbstart, xhstart, xnstart), U&'' and U&""
 * (xusstart, xuistart) win over an identifier because flex takes the longest match. */
static size_t scan_word(const pgr_sqltext *lx, size_t i, pgr_sqltext_kind *kind, bool *open)
{
    const char *s = lx->sql;
    char c = (char)(s[i] | 0x20);
    bool quote_next = i + 1 < lx->len && s[i + 1] == '\'';
    bool backslash = (lx->flags & PGR_SQLTEXT_BACKSLASH_STRINGS) != 0;

    *kind = PGR_SQLTEXT_STRING;
    if (quote_next && c == 'e')
        return scan_string(lx, i + 2, true, open);
    if (quote_next && (c == 'b' || c == 'x' || c == 'n'))
        return scan_string(lx, i + 2, backslash && c == 'n', open);
    if (c == 'u' && i + 2 < lx->len && s[i + 1] == '&' && s[i + 2] == '\'')
        return scan_string(lx, i + 3, false, open); /* xus: no backslash escapes */
    if (c == 'u' && i + 2 < lx->len && s[i + 1] == '&' && s[i + 2] == '"') {
        *kind = PGR_SQLTEXT_QUOTED_IDENT;
        return scan_quoted_ident(lx, i + 3, open);
    }
    *kind = PGR_SQLTEXT_IDENT;
    return scan_ident(lx, i);
}

/* Tokens that start with '$': a dollar-quoted string, a parameter, or the byte alone. */
static size_t scan_dollar(const pgr_sqltext *lx, size_t i, pgr_sqltext_kind *kind, bool *open)
{
    size_t delim = dollar_delim_len(lx, i);

    if (delim > 0) {
        *kind = PGR_SQLTEXT_DOLLAR_STRING;
        return scan_dollar_string(lx, i, delim, open);
    }
    if (i + 1 < lx->len && is_digit(lx->sql[i + 1])) {
        *kind = PGR_SQLTEXT_PARAM;
        return scan_number(lx, i + 1);
    }
    *kind = PGR_SQLTEXT_OTHER;
    return i + 1;
}

/* Punctuation, operators and single bytes. */
static size_t scan_symbol(const pgr_sqltext *lx, size_t i, pgr_sqltext_kind *kind)
{
    char c = lx->sql[i];

    if (c == ';') {
        *kind = PGR_SQLTEXT_SEMICOLON;
        return i + 1;
    }
    if (c != '\0' && strchr(",()[].:", c) != NULL) {
        *kind = PGR_SQLTEXT_PUNCT;
        return at(lx, i, "::") ? i + 2 : i + 1;
    }
    if (is_op_char(c)) {
        *kind = PGR_SQLTEXT_OPERATOR;
        return scan_operator(lx, i);
    }
    *kind = PGR_SQLTEXT_OTHER;
    return i + 1;
}

/* Reads the token at i: its kind, its end, and whether it is left open by the input's end. */
static size_t scan_token(const pgr_sqltext *lx, size_t i, pgr_sqltext_kind *kind, bool *open)
{
    const char *s = lx->sql;
    char c = s[i];

    if (is_space(c)) {
        *kind = PGR_SQLTEXT_SPACE;
        while (i < lx->len && is_space(s[i]))
            i++;
        return i;
    }
    if (at(lx, i, "--")) {
        *kind = PGR_SQLTEXT_COMMENT;
        return scan_line_comment(lx, i);
    }
    if (at(lx, i, "/*")) {
        *kind = PGR_SQLTEXT_BLOCK_COMMENT;
        return scan_block_comment(lx, i, open);
    }
    if (c == '\'') {
        *kind = PGR_SQLTEXT_STRING;
        return scan_string(lx, i + 1, (lx->flags & PGR_SQLTEXT_BACKSLASH_STRINGS) != 0, open);
    }
    if (c == '"') {
        *kind = PGR_SQLTEXT_QUOTED_IDENT;
        return scan_quoted_ident(lx, i + 1, open);
    }
    if (c == '$')
        return scan_dollar(lx, i, kind, open);
    if (is_ident_start(c))
        return scan_word(lx, i, kind, open);
    if (is_digit(c) || (c == '.' && i + 1 < lx->len && is_digit(s[i + 1]))) {
        *kind = PGR_SQLTEXT_NUMBER;
        return scan_number(lx, i);
    }
    return scan_symbol(lx, i, kind);
}

void pgr_sqltext_init(pgr_sqltext *lx, const char *sql, size_t len, int first_line, unsigned flags)
{
    lx->sql = sql;
    lx->len = len;
    lx->off = 0;
    lx->line = first_line;
    lx->flags = flags;
}

static pgr_code unterminated(const pgr_sqltext_token *tok, pgr_error *err)
{
    static const char *const what[] = {
        [PGR_SQLTEXT_BLOCK_COMMENT] = "unterminated /* comment",
        [PGR_SQLTEXT_QUOTED_IDENT] = "unterminated quoted identifier",
        [PGR_SQLTEXT_STRING] = "unterminated quoted string",
        [PGR_SQLTEXT_DOLLAR_STRING] = "unterminated dollar-quoted string",
    };
    return pgr_error_set(err, PGR_ERR_INVALID, "%s starting at line %d", what[tok->kind],
                         tok->line);
}

pgr_code pgr_sqltext_next(pgr_sqltext *lx, pgr_sqltext_token *tok, pgr_error *err)
{
    bool open = false;
    pgr_sqltext_kind kind = PGR_SQLTEXT_OTHER;

    if (lx->off >= lx->len)
        return PGR_ERR_NOTFOUND;
    size_t end = scan_token(lx, lx->off, &kind, &open);
    if (end > lx->len) /* a backslash as the last byte of an E'' string */
        end = lx->len;
    tok->kind = kind;
    tok->off = lx->off;
    tok->len = end - lx->off;
    tok->line = lx->line;
    for (size_t i = lx->off; i < end; i++) {
        if (lx->sql[i] == '\n')
            lx->line++;
    }
    lx->off = end;
    return open ? unterminated(tok, err) : PGR_OK;
}

/* Walks the statements of sql; calls add (when not NULL) for each, counts those with SQL. */
static pgr_code walk_statements(const char *sql, size_t len, int first_line, unsigned flags,
                                pgr_code (*add)(void *, const pgr_sqltext_stmt *), void *arg,
                                size_t *count, pgr_error *err)
{
    pgr_sqltext lx;
    pgr_sqltext_token tok;
    pgr_sqltext_stmt cur = {0, 0, first_line, false};
    pgr_code rc;

    *count = 0;
    pgr_sqltext_init(&lx, sql, len, first_line, flags);
    while ((rc = pgr_sqltext_next(&lx, &tok, err)) == PGR_OK) {
        if (!cur.has_sql && !pgr_sqltext_is_blank(tok.kind) && tok.kind != PGR_SQLTEXT_SEMICOLON) {
            cur.has_sql = true;
            cur.line = tok.line;
        }
        if (tok.kind != PGR_SQLTEXT_SEMICOLON)
            continue;
        cur.len = lx.off - cur.off;
        *count += cur.has_sql ? 1 : 0;
        rc = add != NULL ? add(arg, &cur) : PGR_OK;
        if (rc != PGR_OK)
            return rc;
        cur = (pgr_sqltext_stmt){lx.off, 0, lx.line, false};
    }
    if (rc != PGR_ERR_NOTFOUND)
        return rc;
    if (cur.off < len) {
        cur.len = len - cur.off;
        *count += cur.has_sql ? 1 : 0;
        return add != NULL ? add(arg, &cur) : PGR_OK;
    }
    return PGR_OK;
}

typedef struct stmt_list {
    pgr_sqltext_stmt *items;
    size_t count;
    pgr_error *err;
} stmt_list;

static pgr_code stmt_list_add(void *arg, const pgr_sqltext_stmt *s)
{
    stmt_list *l = arg;
    pgr_sqltext_stmt *n = realloc(l->items, (l->count + 1) * sizeof(*n));
    if (n == NULL)
        return pgr_error_set(l->err, PGR_ERR_NOMEM, "out of memory");
    n[l->count++] = *s;
    l->items = n;
    return PGR_OK;
}

pgr_code pgr_sqltext_split(const char *sql, size_t len, int first_line, unsigned flags,
                           pgr_sqltext_stmt **out, size_t *count, pgr_error *err)
{
    stmt_list l = {NULL, 0, err};
    size_t with_sql = 0;
    pgr_code rc = walk_statements(sql, len, first_line, flags, stmt_list_add, &l, &with_sql, err);

    if (rc != PGR_OK) {
        free(l.items);
        return rc;
    }
    *out = l.items;
    *count = l.count;
    return PGR_OK;
}

pgr_code pgr_sqltext_count(const char *sql, size_t len, int first_line, unsigned flags,
                           size_t *count, pgr_error *err)
{
    return walk_statements(sql, len, first_line, flags, NULL, NULL, count, err);
}
