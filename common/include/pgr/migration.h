/*
 * migration.h - migration files: `<14-digit version>-<name>.sql`, split into an up and a down
 * part and into steps by `-- pgrollout:` annotation lines (format in docs/MIGRATIONS.md).
 *
 * The parser takes a buffer and a length (fuzz-friendly), never executes or interprets SQL
 * beyond the annotations, and reports errors as "file:line: what was expected".
 */
#ifndef PGR_MIGRATION_H
#define PGR_MIGRATION_H

#include "pgr/crypto.h"
#include "pgr/error.h"

#include <stdbool.h>
#include <stddef.h>

#define PGR_MIGRATION_MAX_BYTES (1024 * 1024)
#define PGR_VERSION_LEN         14

typedef enum pgr_step_kind {
    PGR_STEP_SQL = 0,
    PGR_STEP_INDEX,
    PGR_STEP_DROP_INDEX,
    PGR_STEP_EXTENSION,
    PGR_STEP_FOREIGN_KEY,
    PGR_STEP_DROP_FOREIGN_KEY,
} pgr_step_kind;

typedef struct pgr_step {
    pgr_step_kind kind;
    int line;          /* line of the annotation (1-based) */
    int index;         /* position within its part, from 0 */
    bool down;         /* belongs to the down part */
    char *name;        /* index, constraint or extension name */
    char *table;       /* table (child table for foreign keys) */
    char *columns;     /* comma-separated column list (foreign keys) */
    char *ref_table;   /* parent table (foreign keys) */
    char *ref_columns; /* parent columns (foreign keys) */
    char *on_update;   /* cascade|restrict|no_action|set_null|set_default */
    char *on_delete;
    char *orphans; /* abort|quarantine, NULL when the file leaves it to the executor */
    char *lock;    /* declared lock level of an sql step, e.g. ACCESS_EXCLUSIVE */
    bool phi;
    bool no_transaction;
    char *sql;      /* body without leading/trailing blank lines; "" when empty */
    bool sql_empty; /* body holds no statement: only comments, blanks and ';' (sqltext.h) */
} pgr_step;

typedef struct pgr_migration {
    char version[PGR_VERSION_LEN + 1];
    char *name;     /* from the file name, without version and ".sql" */
    char *filename; /* as given to the parser */
    char checksum[PGR_SHA256_HEX_LEN];
    bool has_down;
    pgr_step *up;
    size_t up_count;
    pgr_step *down;
    size_t down_count;
    char *text; /* the whole file as read (what jobs ship) */
    size_t text_len;
} pgr_migration;

typedef struct pgr_migration_set {
    pgr_migration **items; /* sorted by version */
    size_t count;
} pgr_migration_set;

/* Parses one migration; filename must be "<version>-<name>.sql" (a path is allowed; only the
 * base name is checked). On success *out is owned by the caller (pgr_migration_free). */
pgr_code pgr_migration_parse(const char *buf, size_t len, const char *filename, pgr_migration **out,
                             pgr_error *err) PGR_MUSTCHECK;

/* Reads and parses a file. */
pgr_code pgr_migration_load(const char *path, pgr_migration **out, pgr_error *err) PGR_MUSTCHECK;

void pgr_migration_free(pgr_migration *m);

/* SHA-256 (lowercase hex) of the normalized text: CRLF -> LF, each line stripped of leading and
 * trailing spaces and tabs, empty lines dropped, every remaining line followed by "\n". */
void pgr_migration_checksum(const char *buf, size_t len, char out[PGR_SHA256_HEX_LEN]);

/* Loads every "*.sql" of a directory, sorted by version; duplicate versions are an error. */
pgr_code pgr_migration_dir_load(const char *dir, pgr_migration_set **out,
                                pgr_error *err) PGR_MUSTCHECK;

/* Adds a parsed migration to a set (keeps the order, refuses a duplicate version). On success
 * m belongs to the set. */
pgr_code pgr_migration_set_add(pgr_migration_set *set, pgr_migration *m,
                               pgr_error *err) PGR_MUSTCHECK;

pgr_migration_set *pgr_migration_set_new(void);
void pgr_migration_set_free(pgr_migration_set *set);

/* Looks a migration up by version; NULL if absent. */
const pgr_migration *pgr_migration_set_find(const pgr_migration_set *set, const char *version);

const char *pgr_migration_step_kind_name(pgr_step_kind kind);

/* True when v is a migration version (14 digits) or "0" (before the first migration). */
bool pgr_migration_version_valid(const char *v);

/* True when the step runs inside a transaction (sql without no_transaction, extension,
 * drop_foreign_key; foreign_key runs two transactions of its own). */
bool pgr_migration_step_transactional(const pgr_step *s);

/* The lock the step takes on its table(s), for plans and docs. */
const char *pgr_migration_step_lock(const pgr_step *s);

/* The object a step acts on ("index idx_x on allergies"), written into out. */
void pgr_migration_step_describe(const pgr_step *s, char *out, size_t outlen);

#endif
