/*
 * lint.c - migration safety rules. Rules match keywords in a normalized copy of each step body
 * (comments and literals removed, upper case, tokens from the SQL lexer in sqltext.c); they are
 * conservative checks, not an SQL parser.
 */
#include "pgr/lint.h"
#include "pgr/sqltext.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const pgr_lint_rule lint_rules[] = {
    {"parse", "the file does not follow the migration format"},
    {"index-concurrently", "CREATE INDEX without CONCURRENTLY blocks writes for the whole build"},
    {"drop-index-concurrently", "DROP INDEX without CONCURRENTLY takes ACCESS EXCLUSIVE"},
    {"concurrently-in-transaction", "CONCURRENTLY cannot run inside a transactional step"},
    {"fk-not-valid", "foreign key added without NOT VALID + VALIDATE (use a foreign_key step)"},
    {"fk-orphan-policy", "foreign key without an orphan policy (orphans=abort|quarantine)"},
    {"missing-down", "the migration has no down part, or it is empty"},
    {"if-exists", "CREATE/DROP without IF [NOT] EXISTS is not re-runnable"},
    {"volatile-in-index", "non-IMMUTABLE function in an index expression or predicate"},
    {"index-mismatch", "an index step's SQL does not name its declared index and table"},
    {"duplicate-index", "the same index name is created by two migrations"},
    {"version-order", "versions must be valid UTC timestamps, unique, in increasing order"},
    {NULL, NULL},
};

const pgr_lint_rule *pgr_lint_rules(void)
{
    return lint_rules;
}

pgr_lint_report *pgr_lint_report_new(void)
{
    return calloc(1, sizeof(pgr_lint_report));
}

void pgr_lint_report_free(pgr_lint_report *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->count; i++) {
        free(r->items[i].file);
        free(r->items[i].message);
    }
    free(r->items);
    free(r);
}

void pgr_lint_add(pgr_lint_report *r, const char *file, int line, const char *rule, const char *fmt,
                  ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pgr_lint_finding *n = realloc(r->items, (r->count + 1) * sizeof(*n));
    if (n == NULL)
        return;
    r->items = n;
    n[r->count].file = strdup(file);
    n[r->count].line = line;
    n[r->count].rule = rule;
    n[r->count].message = strdup(msg);
    r->count++;
}

/* Appends one byte of normalized text: blanks collapse to one space, a blank before '(' goes,
 * letters are upper-cased. */
static void norm_put(char *out, size_t *o, char ch)
{
    if (isspace((unsigned char)ch)) {
        if (*o > 0 && out[*o - 1] != ' ')
            out[(*o)++] = ' ';
        return;
    }
    if (ch == '(' && *o > 0 && out[*o - 1] == ' ')
        (*o)--;
    out[(*o)++] = (char)toupper((unsigned char)ch);
}

static void norm_token(char *out, size_t *o, const char *sql, const pgr_sqltext_token *t)
{
    const char *p = sql + t->off;

    if (pgr_sqltext_is_blank(t->kind)) {
        norm_put(out, o, ' ');
    } else if (t->kind == PGR_SQLTEXT_STRING) {
        /* keep the prefix (E, U&, B, X, N) and the quotes, drop the contents: literals never
         * hold keywords */
        for (; *p != '\''; p++)
            norm_put(out, o, *p);
        norm_put(out, o, '\'');
        norm_put(out, o, '\'');
    } else if (t->kind == PGR_SQLTEXT_DOLLAR_STRING) {
        norm_put(out, o, '$');
        norm_put(out, o, '$');
    } else {
        /* identifier text, quoted or not, is kept: index-mismatch looks names up */
        for (size_t i = 0; i < t->len; i++)
            norm_put(out, o, p[i]);
    }
}

/* Tokens by the SQL lexer: string and dollar-quoted literals become '' or $$ (E'' and other
 * prefixed strings keep their prefix), comments a blank; quoted identifiers keep their text.
 * The output is at most one byte longer than the input (an unterminated literal still gets its
 * closing quote). */
static char *normalize_n(const char *sql, size_t n)
{
    char *out = malloc(n + 2);
    size_t o = 0;
    pgr_sqltext lx;
    pgr_sqltext_token tok;

    if (out == NULL)
        return NULL;
    pgr_sqltext_init(&lx, sql, n, 1, 0);
    for (;;) {
        pgr_code rc = pgr_sqltext_next(&lx, &tok, NULL);
        if (rc == PGR_ERR_NOTFOUND)
            break;
        norm_token(out, &o, sql, &tok); /* an unterminated token is the last one */
    }
    out[o] = '\0';
    return out;
}

char *pgr_lint_normalize_sql(const char *sql)
{
    return normalize_n(sql, strlen(sql));
}

/* Finds kw in s as a whole word (not part of a longer identifier). */
static const char *find_word(const char *s, const char *kw)
{
    size_t n = strlen(kw);
    for (const char *p = strstr(s, kw); p != NULL; p = strstr(p + 1, kw)) {
        bool before = p == s || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');
        bool after = !(isalnum((unsigned char)p[n]) || p[n] == '_') || kw[n - 1] == '(';
        if (before && after)
            return p;
    }
    return NULL;
}

static void lint_indexes(pgr_lint_report *r, const pgr_migration *m, const pgr_step *s,
                         const char *sql)
{
    static const char *const volatile_fns[] = {"NOW(",
                                               "CURRENT_TIMESTAMP",
                                               "CURRENT_DATE",
                                               "CURRENT_TIME",
                                               "LOCALTIMESTAMP",
                                               "LOCALTIME",
                                               "CLOCK_TIMESTAMP(",
                                               "STATEMENT_TIMESTAMP(",
                                               "TIMEOFDAY(",
                                               "RANDOM(",
                                               "UNACCENT(",
                                               "GEN_RANDOM_UUID(",
                                               "TRANSACTION_TIMESTAMP(",
                                               NULL};
    bool creates =
        find_word(sql, "CREATE INDEX") != NULL || find_word(sql, "CREATE UNIQUE INDEX") != NULL;
    bool concurrent = find_word(sql, "CREATE INDEX CONCURRENTLY") != NULL ||
                      find_word(sql, "CREATE UNIQUE INDEX CONCURRENTLY") != NULL;

    if (creates && !concurrent)
        pgr_lint_add(r, m->filename, s->line, "index-concurrently",
                     "CREATE INDEX without CONCURRENTLY blocks writes to the table");
    if (creates && strstr(sql, "IF NOT EXISTS") == NULL)
        pgr_lint_add(r, m->filename, s->line, "if-exists", "CREATE INDEX without IF NOT EXISTS");
    if (find_word(sql, "DROP INDEX") != NULL && find_word(sql, "DROP INDEX CONCURRENTLY") == NULL)
        pgr_lint_add(r, m->filename, s->line, "drop-index-concurrently",
                     "DROP INDEX without CONCURRENTLY takes ACCESS EXCLUSIVE on the table");
    for (int i = 0; creates && volatile_fns[i] != NULL; i++) {
        if (find_word(sql, volatile_fns[i]) != NULL)
            pgr_lint_add(r, m->filename, s->line, "volatile-in-index",
                         "%s%s is not IMMUTABLE: it cannot be used in an index expression or "
                         "predicate",
                         volatile_fns[i], strchr(volatile_fns[i], '(') != NULL ? ")" : "");
    }
}

static void lint_if_exists(pgr_lint_report *r, const pgr_migration *m, const pgr_step *s,
                           const char *sql)
{
    static const char *const pairs[][2] = {
        {"CREATE EXTENSION", "CREATE EXTENSION IF NOT EXISTS"},
        {"CREATE TABLE", "CREATE TABLE IF NOT EXISTS"},
        {"CREATE SCHEMA", "CREATE SCHEMA IF NOT EXISTS"},
        {"ADD COLUMN", "ADD COLUMN IF NOT EXISTS"},
        {"DROP TABLE", "DROP TABLE IF EXISTS"},
        {"DROP EXTENSION", "DROP EXTENSION IF EXISTS"},
        {"DROP CONSTRAINT", "DROP CONSTRAINT IF EXISTS"},
        {"DROP COLUMN", "DROP COLUMN IF EXISTS"},
        {"DROP INDEX CONCURRENTLY", "DROP INDEX CONCURRENTLY IF EXISTS"},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        const char *p = find_word(sql, pairs[i][0]);
        if (p != NULL && strstr(sql, pairs[i][1]) == NULL)
            pgr_lint_add(r, m->filename, s->line, "if-exists", "%s without IF %sEXISTS",
                         pairs[i][0], strstr(pairs[i][1], "NOT") != NULL ? "NOT " : "");
    }
    if (find_word(sql, "DROP INDEX") != NULL && find_word(sql, "DROP INDEX CONCURRENTLY") == NULL &&
        strstr(sql, "DROP INDEX IF EXISTS") == NULL)
        pgr_lint_add(r, m->filename, s->line, "if-exists", "DROP INDEX without IF EXISTS");
}

static void lint_foreign_keys(pgr_lint_report *r, const pgr_migration *m, const pgr_step *s,
                              const char *sql, bool part_validates)
{
    if (s->kind == PGR_STEP_FOREIGN_KEY && s->orphans == NULL)
        pgr_lint_add(r, m->filename, s->line, "fk-orphan-policy",
                     "foreign key \"%s\" has no orphan policy: add orphans=abort or "
                     "orphans=quarantine",
                     s->name);
    if (s->kind != PGR_STEP_SQL || find_word(sql, "ALTER TABLE") == NULL)
        return;
    if (strstr(sql, "FOREIGN KEY") == NULL && find_word(sql, "REFERENCES") == NULL)
        return;
    if (strstr(sql, "NOT VALID") == NULL)
        pgr_lint_add(r, m->filename, s->line, "fk-not-valid",
                     "foreign key added without NOT VALID: it scans and locks both tables; use a "
                     "foreign_key step");
    else if (!part_validates)
        pgr_lint_add(r, m->filename, s->line, "fk-not-valid",
                     "foreign key added NOT VALID but never validated (VALIDATE CONSTRAINT)");
    pgr_lint_add(r, m->filename, s->line, "fk-orphan-policy",
                 "foreign key in an sql step has no orphan check: use a foreign_key step");
}

/* True when one normalized statement uses CONCURRENTLY in a command PostgreSQL refuses inside a
 * transaction block. REFRESH MATERIALIZED VIEW CONCURRENTLY is allowed there, so it is not one. */
static bool statement_needs_no_transaction(const char *stmt)
{
    while (*stmt == ' ')
        stmt++;
    if (find_word(stmt, "CONCURRENTLY") == NULL)
        return false;
    return find_word(stmt, "CREATE INDEX CONCURRENTLY") != NULL ||
           find_word(stmt, "CREATE UNIQUE INDEX CONCURRENTLY") != NULL ||
           find_word(stmt, "DROP INDEX CONCURRENTLY") != NULL ||
           find_word(stmt, "REINDEX") == stmt || find_word(stmt, "DETACH PARTITION") != NULL;
}

/* Checks each statement of a body, as the SQL lexer splits it. */
static bool has_no_transaction_statement(const char *sql)
{
    pgr_sqltext_stmt *stmts = NULL;
    size_t count = 0;
    bool found = false;

    if (pgr_sqltext_split(sql, strlen(sql), 1, 0, &stmts, &count, NULL) != PGR_OK)
        return false; /* the parser refused unterminated bodies already */
    for (size_t i = 0; i < count && !found; i++) {
        char *norm = normalize_n(sql + stmts[i].off, stmts[i].len);
        found = norm != NULL && statement_needs_no_transaction(norm);
        free(norm);
    }
    free(stmts);
    return found;
}

static void lint_step(pgr_lint_report *r, const pgr_migration *m, const pgr_step *s,
                      bool part_validates)
{
    char *sql = pgr_lint_normalize_sql(s->sql);
    if (sql == NULL)
        return;
    lint_indexes(r, m, s, sql);
    lint_if_exists(r, m, s, sql);
    lint_foreign_keys(r, m, s, sql, part_validates);
    if (pgr_migration_step_transactional(s) && has_no_transaction_statement(s->sql))
        pgr_lint_add(r, m->filename, s->line, "concurrently-in-transaction",
                     "CONCURRENTLY cannot run in a transaction: use an index or drop_index step, "
                     "or mark the step no_transaction");
    if (s->kind == PGR_STEP_INDEX || s->kind == PGR_STEP_DROP_INDEX) {
        char name[160], table[160];
        snprintf(name, sizeof(name), "%s", s->name);
        snprintf(table, sizeof(table), "%s", s->table);
        for (char *p = name; *p != '\0'; p++)
            *p = (char)toupper((unsigned char)*p);
        for (char *p = table; *p != '\0'; p++)
            *p = (char)toupper((unsigned char)*p);
        if (find_word(sql, name) == NULL ||
            (s->kind == PGR_STEP_INDEX && find_word(sql, table) == NULL))
            pgr_lint_add(r, m->filename, s->line, "index-mismatch",
                         "the SQL of step \"%s\" does not name index \"%s\"%s%s",
                         pgr_migration_step_kind_name(s->kind), s->name,
                         s->kind == PGR_STEP_INDEX ? " on table " : "",
                         s->kind == PGR_STEP_INDEX ? s->table : "");
    }
    free(sql);
}

static bool part_has_validate(const pgr_step *steps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *sql = pgr_lint_normalize_sql(steps[i].sql);
        bool found = sql != NULL && strstr(sql, "VALIDATE CONSTRAINT") != NULL;
        free(sql);
        if (found)
            return true;
    }
    return false;
}

void pgr_lint_migration(pgr_lint_report *r, const pgr_migration *m)
{
    bool up_validates = part_has_validate(m->up, m->up_count);
    bool down_validates = part_has_validate(m->down, m->down_count);

    for (size_t i = 0; i < m->up_count; i++)
        lint_step(r, m, &m->up[i], up_validates);
    for (size_t i = 0; i < m->down_count; i++)
        lint_step(r, m, &m->down[i], down_validates);
    if (!m->has_down || m->down_count == 0)
        pgr_lint_add(r, m->filename, 1, "missing-down",
                     "no down part: add \"-- pgrollout:down\" with steps that undo the up part");
}

static int days_in_month(int y, int mo)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return mo == 2 && leap ? 29 : days[mo - 1];
}

/* YYYYMMDDHHMMSS naming a real instant (a UTC timestamp, as the file naming convention says). */
static bool version_is_timestamp(const char *v)
{
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
    if (sscanf(v, "%4d%2d%2d%2d%2d%2d", &y, &mo, &d, &h, &mi, &s) != 6)
        return false;
    if (y < 1970 || mo < 1 || mo > 12)
        return false;
    return d >= 1 && d <= days_in_month(y, mo) && h >= 0 && h <= 23 && mi >= 0 && mi <= 59 &&
           s >= 0 && s <= 59;
}

static void lint_versions(pgr_lint_report *r, pgr_migration *const *ms, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (!version_is_timestamp(ms[i]->version))
            pgr_lint_add(r, ms[i]->filename, 1, "version-order",
                         "version %s is not a YYYYMMDDHHMMSS timestamp", ms[i]->version);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(ms[j]->version, ms[i]->version) == 0)
                pgr_lint_add(r, ms[i]->filename, 1, "version-order",
                             "version %s is also used by \"%s\"", ms[i]->version, ms[j]->filename);
        }
        if (i > 0 && strcmp(ms[i - 1]->version, ms[i]->version) > 0)
            pgr_lint_add(r, ms[i]->filename, 1, "version-order",
                         "version %s comes after %s but is lower: files must be in version order",
                         ms[i]->version, ms[i - 1]->version);
    }
}

void pgr_lint_across(pgr_lint_report *r, pgr_migration *const *ms, size_t count)
{
    lint_versions(r, ms, count);
    for (size_t i = 0; i < count; i++) {
        for (size_t a = 0; a < ms[i]->up_count; a++) {
            const pgr_step *s = &ms[i]->up[a];
            if (s->kind != PGR_STEP_INDEX)
                continue;
            /* earlier steps of all files up to and including this one */
            for (size_t j = 0; j <= i; j++) {
                size_t limit = j == i ? a : ms[j]->up_count;
                for (size_t b = 0; b < limit; b++) {
                    const pgr_step *t = &ms[j]->up[b];
                    if (t->kind == PGR_STEP_INDEX && strcasecmp(t->name, s->name) == 0)
                        pgr_lint_add(r, ms[i]->filename, s->line, "duplicate-index",
                                     "index \"%s\" is also created at %s:%d", s->name,
                                     ms[j]->filename, t->line);
                }
            }
        }
    }
}

void pgr_lint_buffer(pgr_lint_report *r, const char *buf, size_t len, const char *filename,
                     pgr_migration **out)
{
    pgr_migration *m = NULL;
    pgr_error err;
    size_t flen = strlen(filename);

    pgr_error_clear(&err);
    if (pgr_migration_parse(buf, len, filename, &m, &err) != PGR_OK) {
        /* The parser's message reads "file:line: what"; split it back into its parts. */
        int line = 0;
        const char *msg = err.msg;
        if (strncmp(msg, filename, flen) == 0 && msg[flen] == ':') {
            char *end = NULL;
            line = (int)strtol(msg + flen + 1, &end, 10);
            msg = (end != NULL && end[0] == ':' && end[1] == ' ') ? end + 2 : msg;
        }
        pgr_lint_add(r, filename, line, "parse", "%s", msg);
        if (out != NULL)
            *out = NULL;
        return;
    }
    pgr_lint_migration(r, m);
    if (out != NULL)
        *out = m;
    else
        pgr_migration_free(m);
}
