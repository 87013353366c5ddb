/*
 * lint.h - safety rules for migration files (the rules PostgreSQL migration linters enforce,
 * plus pgrollout's own). Findings carry file, line, rule and message.
 */
#ifndef PGR_LINT_H
#define PGR_LINT_H

#include "pgr/migration.h"

typedef struct pgr_lint_finding {
    char *file;
    int line;
    const char *rule;
    char *message;
} pgr_lint_finding;

typedef struct pgr_lint_report {
    pgr_lint_finding *items;
    size_t count;
} pgr_lint_report;

typedef struct pgr_lint_rule {
    const char *name;
    const char *description;
} pgr_lint_rule;

/* Every rule, terminated by a NULL name. */
const pgr_lint_rule *pgr_lint_rules(void);

pgr_lint_report *pgr_lint_report_new(void);
void pgr_lint_report_free(pgr_lint_report *r);

void pgr_lint_add(pgr_lint_report *r, const char *file, int line, const char *rule, const char *fmt,
                  ...) PGR_PRINTF(5, 6);

/* Lints a file's bytes: a parse error becomes a "parse" finding. On success *out (may be NULL)
 * receives the parsed migration, owned by the caller. */
void pgr_lint_buffer(pgr_lint_report *r, const char *buf, size_t len, const char *filename,
                     pgr_migration **out);

/* Per-migration rules. */
void pgr_lint_migration(pgr_lint_report *r, const pgr_migration *m);

/* Rules across files: duplicate index names, version order and uniqueness. `ms` in the order
 * the files were given. */
void pgr_lint_across(pgr_lint_report *r, pgr_migration *const *ms, size_t count);

/* Upper-cases SQL, drops comments and string literal contents, collapses whitespace and removes
 * blanks before '(' so that keyword searches are simple. Tokens come from the SQL lexer
 * (sqltext.h), so comments and literals end where PostgreSQL ends them. Caller frees; NULL when
 * out of memory. */
char *pgr_lint_normalize_sql(const char *sql);

#endif
