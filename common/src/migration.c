/*
 * migration.c - parser of migration files. Lines starting with "-- pgrollout:" are annotations;
 * everything else is the body of the current step (or header/comment text before the first
 * step). Only annotations are interpreted: SQL bodies are carried verbatim.
 */
#include "pgr/migration.h"
#include "pgr/sqltext.h"
#include "pgr/str.h"
#include "pgr/buf.h"
#include "pgr/file.h"

#include <ctype.h>
#include <stdarg.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>

#define ANNOT_PREFIX "-- pgrollout:"
#define MAX_STEPS    4096

typedef struct parse_ctx {
    const char *file;
    pgr_migration *m;
    pgr_step *cur;       /* step receiving body lines, NULL before the first step of a part */
    int part;            /* 0 header, 1 up, 2 down */
    pgr_buf body;        /* body of cur */
    int body_first_line; /* first non-blank line of the body */
    pgr_error *err;
} parse_ctx;

static const char *const kind_names[] = {"sql",       "index",       "drop_index",
                                         "extension", "foreign_key", "drop_foreign_key"};

const char *pgr_migration_step_kind_name(pgr_step_kind kind)
{
    return (size_t)kind < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[kind] : "?";
}

static pgr_code perr(parse_ctx *c, int line, const char *fmt, ...) PGR_PRINTF(3, 4);

static pgr_code perr(parse_ctx *c, int line, const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return pgr_error_set(c->err, PGR_ERR_INVALID, "%s:%d: %s", c->file, line, what);
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

/* "<14 digits>-<name>.sql", name of [a-z0-9_-]. */
static pgr_code parse_filename(parse_ctx *c, const char *path)
{
    const char *b = base_name(path);
    size_t n = strlen(b);

    for (int i = 0; i < PGR_VERSION_LEN; i++) {
        if (!isdigit((unsigned char)b[i]))
            return perr(c, 0, "file name \"%s\" must start with a 14-digit version", b);
    }
    if (b[PGR_VERSION_LEN] != '-' || n < PGR_VERSION_LEN + 6 || strcmp(b + n - 4, ".sql") != 0)
        return perr(c, 0, "file name \"%s\" must look like <14-digit version>-<name>.sql", b);
    for (size_t i = PGR_VERSION_LEN + 1; i < n - 4; i++) {
        char ch = b[i];
        if (!(islower((unsigned char)ch) || isdigit((unsigned char)ch) || ch == '_' || ch == '-'))
            return perr(c, 0, "file name \"%s\": the name may hold only a-z, 0-9, '_' and '-'", b);
    }
    memcpy(c->m->version, b, PGR_VERSION_LEN);
    c->m->version[PGR_VERSION_LEN] = '\0';
    c->m->name = strndup(b + PGR_VERSION_LEN + 1, n - 4 - PGR_VERSION_LEN - 1);
    return c->m->name != NULL ? PGR_OK : pgr_error_set(c->err, PGR_ERR_NOMEM, "out of memory");
}

/* Statements of a step body as PostgreSQL will read them; 0 when the body holds only blanks and
 * comments. An unterminated string, quoted identifier, dollar quote or comment is an error: it
 * would swallow whatever follows, including lines that look like annotations. */
static pgr_code count_statements(parse_ctx *c, const pgr_step *s, size_t *count)
{
    pgr_error lerr;
    pgr_code rc = pgr_sqltext_count(s->sql, strlen(s->sql), s->line + 1, 0, count, &lerr);
    if (rc == PGR_ERR_NOMEM)
        return pgr_error_set(c->err, PGR_ERR_NOMEM, "out of memory");
    if (rc != PGR_OK)
        return perr(c, s->line, "step \"%s\": %s", pgr_migration_step_kind_name(s->kind), lerr.msg);
    return PGR_OK;
}

/* Index, drop_index and extension steps name one object, which the executor checks, records and
 * audits: a second statement would run unchecked under that name (a "CREATE INDEX ...; DROP
 * TABLE students" slipped past review). The body is read twice, with and without backslash
 * escapes in '...' (standard_conforming_strings on and off): a session setting changed by an
 * earlier step must not turn one statement into two. */
static pgr_code check_one_statement(parse_ctx *c, const pgr_step *s, size_t count)
{
    size_t other = 0;
    pgr_error lerr;

    if (s->kind != PGR_STEP_INDEX && s->kind != PGR_STEP_DROP_INDEX &&
        s->kind != PGR_STEP_EXTENSION)
        return PGR_OK;
    if (count != 1)
        return perr(c, s->line, "step \"%s\" must hold exactly one SQL statement, found %zu",
                    pgr_migration_step_kind_name(s->kind), count);
    pgr_code rc = pgr_sqltext_count(s->sql, strlen(s->sql), s->line + 1,
                                    PGR_SQLTEXT_BACKSLASH_STRINGS, &other, &lerr);
    if (rc == PGR_ERR_NOMEM)
        return pgr_error_set(c->err, PGR_ERR_NOMEM, "out of memory");
    if (rc != PGR_OK)
        return perr(c, s->line,
                    "step \"%s\" must hold exactly one SQL statement whether or not backslashes "
                    "escape quotes in strings (standard_conforming_strings): when they do, %s",
                    pgr_migration_step_kind_name(s->kind), lerr.msg);
    if (other != 1)
        return perr(c, s->line,
                    "step \"%s\" must hold exactly one SQL statement whether or not backslashes "
                    "escape quotes in strings (standard_conforming_strings): when they do, it "
                    "holds %zu",
                    pgr_migration_step_kind_name(s->kind), other);
    return PGR_OK;
}

/* Ends the current step: trims its body and stores it. */
static pgr_code finish_step(parse_ctx *c)
{
    if (c->cur == NULL)
        return PGR_OK;
    char *text = c->body.data != NULL ? c->body.data : "";
    size_t n = c->body.len;
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ' || text[n - 1] == '\t' ||
                     text[n - 1] == '\r'))
        n--;
    c->cur->sql = strndup(text, n);
    pgr_buf_free(&c->body);
    if (c->cur->sql == NULL)
        return pgr_error_set(c->err, PGR_ERR_NOMEM, "out of memory");
    int line = c->cur->line;
    pgr_step *s = c->cur;
    size_t count = 0;
    c->cur = NULL;
    pgr_code rc = count_statements(c, s, &count);
    if (rc != PGR_OK)
        return rc;
    s->sql_empty = count == 0;
    if (s->sql_empty && s->kind != PGR_STEP_FOREIGN_KEY && s->kind != PGR_STEP_DROP_FOREIGN_KEY)
        return perr(c, line, "step \"%s\" has no SQL body", pgr_migration_step_kind_name(s->kind));
    if (!s->sql_empty && (s->kind == PGR_STEP_FOREIGN_KEY || s->kind == PGR_STEP_DROP_FOREIGN_KEY))
        return perr(c, line,
                    "step \"%s\" must have no SQL body: the executor generates its statements",
                    pgr_migration_step_kind_name(s->kind));
    return check_one_statement(c, s, count);
}

/* Which attributes each kind takes; a leading '*' marks a required one. */
static const char *const kind_attrs[][10] = {
    [PGR_STEP_SQL] = {"lock", NULL},
    [PGR_STEP_INDEX] = {"*name", "*table", NULL},
    [PGR_STEP_DROP_INDEX] = {"*name", "*table", NULL},
    [PGR_STEP_EXTENSION] = {"*name", NULL},
    [PGR_STEP_FOREIGN_KEY] = {"*name", "*table", "*columns", "*ref_table", "*ref_columns",
                              "on_update", "on_delete", "orphans", NULL},
    [PGR_STEP_DROP_FOREIGN_KEY] = {"*name", "*table", NULL},
};

static char **attr_slot(pgr_step *s, const char *key)
{
    static const struct {
        const char *key;
        size_t off;
    } slots[] = {
        {"name", offsetof(pgr_step, name)},
        {"table", offsetof(pgr_step, table)},
        {"columns", offsetof(pgr_step, columns)},
        {"ref_table", offsetof(pgr_step, ref_table)},
        {"ref_columns", offsetof(pgr_step, ref_columns)},
        {"on_update", offsetof(pgr_step, on_update)},
        {"on_delete", offsetof(pgr_step, on_delete)},
        {"orphans", offsetof(pgr_step, orphans)},
        {"lock", offsetof(pgr_step, lock)},
    };
    for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
        if (strcmp(slots[i].key, key) == 0)
            return (char **)(void *)((char *)s + slots[i].off);
    }
    return NULL;
}

static bool kind_allows(pgr_step_kind kind, const char *key, bool *required)
{
    for (const char *const *a = kind_attrs[kind]; *a != NULL; a++) {
        const char *k = **a == '*' ? *a + 1 : *a;
        if (strcmp(k, key) == 0) {
            *required = **a == '*';
            return true;
        }
    }
    return false;
}

/* identifier list: "a,b" of simple identifiers; `qualified` allows one "schema." prefix each. */
static bool ident_list_valid(const char *v, bool qualified, bool list)
{
    char buf[512];
    char *save = NULL;
    int count = 0;

    size_t n = strlen(v);
    /* n == 0 first: v[n - 1] of "" would read before the string ("name=" is an empty value) */
    if (n == 0 || pgr_str_copy(buf, v, sizeof(buf)) >= sizeof(buf) || *v == ',' ||
        v[n - 1] == ',' || strstr(v, ",,") != NULL)
        return false;
    for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        char *dot = qualified ? strchr(t, '.') : NULL;
        if (dot != NULL) {
            *dot = '\0';
            if (!pgr_str_is_simple_ident(t))
                return false;
            t = dot + 1;
        }
        if (!pgr_str_is_simple_ident(t))
            return false;
        count++;
    }
    return count >= 1 && (list || count == 1);
}

static bool attr_value_valid(const char *key, const char *v)
{
    if (strcmp(key, "on_update") == 0 || strcmp(key, "on_delete") == 0)
        return strcmp(v, "cascade") == 0 || strcmp(v, "restrict") == 0 ||
               strcmp(v, "no_action") == 0 || strcmp(v, "set_null") == 0 ||
               strcmp(v, "set_default") == 0;
    if (strcmp(key, "orphans") == 0)
        return strcmp(v, "abort") == 0 || strcmp(v, "quarantine") == 0;
    if (strcmp(key, "lock") == 0) {
        for (const char *p = v; *p != '\0'; p++) {
            if (!(isupper((unsigned char)*p) || *p == '_'))
                return false;
        }
        return *v != '\0';
    }
    bool list = strcmp(key, "columns") == 0 || strcmp(key, "ref_columns") == 0;
    /* Index, constraint and table names are written unquoted in the step's SQL, where
     * PostgreSQL folds them to lower case; the executor quotes them. Upper case would make the
     * two name different objects. (Columns are only used quoted, so camelCase is fine.) */
    for (const char *p = v; !list && *p != '\0'; p++) {
        if (isupper((unsigned char)*p))
            return false;
    }
    bool qualified = strcmp(key, "table") == 0 || strcmp(key, "ref_table") == 0;
    return ident_list_valid(v, qualified, list);
}

static pgr_code parse_step_flag(parse_ctx *c, pgr_step *s, int line, const char *tok)
{
    if (strcmp(tok, "phi") == 0) {
        s->phi = true;
        return PGR_OK;
    }
    if (strcmp(tok, "no_transaction") == 0 && s->kind == PGR_STEP_SQL) {
        s->no_transaction = true;
        return PGR_OK;
    }
    return perr(c, line, "unknown flag \"%s\" for step kind \"%s\"", tok,
                pgr_migration_step_kind_name(s->kind));
}

static pgr_code parse_step_attr(parse_ctx *c, pgr_step *s, int line, char *tok)
{
    char *eq = strchr(tok, '=');
    bool required = false;

    if (eq == NULL)
        return parse_step_flag(c, s, line, tok);
    *eq = '\0';
    const char *val = eq + 1;
    if (!kind_allows(s->kind, tok, &required))
        return perr(c, line, "unknown attribute \"%s\" for step kind \"%s\"", tok,
                    pgr_migration_step_kind_name(s->kind));
    if (!attr_value_valid(tok, val))
        return perr(c, line, "invalid value for attribute \"%s\": \"%s\"", tok, val);
    char **slot = attr_slot(s, tok);
    if (*slot != NULL)
        return perr(c, line, "attribute \"%s\" given twice", tok);
    *slot = strdup(val);
    return *slot != NULL ? PGR_OK : pgr_error_set(c->err, PGR_ERR_NOMEM, "out of memory");
}

static pgr_code parse_step_attrs(parse_ctx *c, pgr_step *s, int line, char *rest)
{
    char *save = NULL;
    char *kind = strtok_r(rest, " \t", &save);
    size_t k;
    bool required = false;

    if (kind == NULL)
        return perr(c, line,
                    "step without a kind: expected one of sql, index, drop_index, "
                    "extension, foreign_key, drop_foreign_key");
    for (k = 0; k < sizeof(kind_names) / sizeof(kind_names[0]); k++) {
        if (strcmp(kind, kind_names[k]) == 0)
            break;
    }
    if (k == sizeof(kind_names) / sizeof(kind_names[0]))
        return perr(c, line,
                    "unknown step kind \"%s\": expected one of sql, index, drop_index, "
                    "extension, foreign_key, drop_foreign_key",
                    kind);
    s->kind = (pgr_step_kind)k;
    for (char *t = strtok_r(NULL, " \t", &save); t != NULL; t = strtok_r(NULL, " \t", &save)) {
        pgr_code rc = parse_step_attr(c, s, line, t);
        if (rc != PGR_OK)
            return rc;
    }
    for (const char *const *a = kind_attrs[s->kind]; *a != NULL; a++) {
        if (**a == '*' && *attr_slot(s, *a + 1) == NULL && kind_allows(s->kind, *a + 1, &required))
            return perr(c, line, "step \"%s\" needs attribute \"%s\"", kind, *a + 1);
    }
    return PGR_OK;
}

static pgr_code new_step(parse_ctx *c, int line, char *rest)
{
    pgr_migration *m = c->m;
    pgr_step **arr = c->part == 1 ? &m->up : &m->down;
    size_t *count = c->part == 1 ? &m->up_count : &m->down_count;

    if (c->part == 0)
        return perr(c, line, "step before \"-- pgrollout:up\"");
    if (*count >= MAX_STEPS)
        return perr(c, line, "too many steps");
    pgr_step *n = realloc(*arr, (*count + 1) * sizeof(**arr));
    if (n == NULL)
        return pgr_error_set(c->err, PGR_ERR_NOMEM, "out of memory");
    *arr = n;
    pgr_step *s = &n[*count];
    memset(s, 0, sizeof(*s));
    s->line = line;
    s->index = (int)*count;
    s->down = c->part == 2;
    (*count)++;
    pgr_code rc = parse_step_attrs(c, s, line, rest);
    if (rc != PGR_OK)
        return rc;
    c->cur = s;
    pgr_buf_init(&c->body);
    return PGR_OK;
}

static pgr_code handle_annotation(parse_ctx *c, int line, char *text)
{
    char *word = text;
    while (*word == ' ')
        word++;
    char *rest = word;
    while (*rest != '\0' && *rest != ' ' && *rest != '\t')
        rest++;
    if (*rest != '\0')
        *rest++ = '\0';
    pgr_code rc = finish_step(c);
    if (rc != PGR_OK)
        return rc;
    if (strcmp(word, "up") == 0 || strcmp(word, "down") == 0) {
        bool up = strcmp(word, "up") == 0;
        if (*pgr_str_trim(rest) != '\0')
            return perr(c, line, "unexpected text after \"-- pgrollout:%s\"", word);
        if ((up && c->part != 0) || (!up && c->part != 1))
            return perr(c, line, "\"-- pgrollout:%s\" %s", word,
                        up ? "appears twice" : "must follow the up part and appear once");
        c->part = up ? 1 : 2;
        c->m->has_down = c->m->has_down || !up;
        return PGR_OK;
    }
    if (strcmp(word, "step") == 0)
        return new_step(c, line, rest);
    return perr(c, line, "unknown annotation \"%s\": expected up, down or step", word);
}

static pgr_code handle_line(parse_ctx *c, int line, char *text, size_t len)
{
    if (memchr(text, '\0', len) != NULL)
        return perr(c, line, "line contains a NUL byte");
    if (strncmp(text, ANNOT_PREFIX, strlen(ANNOT_PREFIX)) == 0)
        return handle_annotation(c, line, text + strlen(ANNOT_PREFIX));
    if (c->cur == NULL) {
        /* Outside a step only comments and blank lines are allowed: SQL there would never run. */
        char *t = pgr_str_trim(text);
        if (*t != '\0' && strncmp(t, "--", 2) != 0)
            return perr(c, line, "SQL outside of a step: expected \"-- pgrollout:step <kind>\"");
        return PGR_OK;
    }
    if (pgr_buf_append(&c->body, text, len) != PGR_OK || pgr_buf_append(&c->body, "\n", 1))
        return pgr_error_set(c->err, PGR_ERR_NOMEM, "out of memory");
    return PGR_OK;
}

static pgr_code parse_lines(parse_ctx *c, const char *buf, size_t len)
{
    size_t pos = 0;
    int line = 0;
    pgr_code rc = PGR_OK;

    while (pos < len && rc == PGR_OK) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t n = nl != NULL ? (size_t)(nl - (buf + pos)) : len - pos;
        size_t advance = n + (nl != NULL ? 1 : 0);
        char *copy = malloc(n + 1);
        if (copy == NULL)
            return pgr_error_set(c->err, PGR_ERR_NOMEM, "out of memory");
        memcpy(copy, buf + pos, n);
        copy[n] = '\0';
        if (n > 0 && copy[n - 1] == '\r')
            copy[--n] = '\0';
        rc = handle_line(c, ++line, copy, n);
        free(copy);
        pos += advance;
    }
    if (rc == PGR_OK)
        rc = finish_step(c);
    if (rc == PGR_OK && c->part == 0)
        rc = perr(c, line, "missing \"-- pgrollout:up\"");
    if (rc == PGR_OK && c->m->up_count == 0)
        rc = perr(c, line, "the up part has no steps");
    return rc;
}

pgr_code pgr_migration_parse(const char *buf, size_t len, const char *filename, pgr_migration **out,
                             pgr_error *err)
{
    parse_ctx c = {filename, calloc(1, sizeof(pgr_migration)), NULL, 0, {NULL, 0, 0}, 0, err};
    pgr_code rc;

    if (c.m == NULL)
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    if (len > PGR_MIGRATION_MAX_BYTES) {
        rc = perr(&c, 0, "file is larger than 1 MiB");
        goto out;
    }
    rc = parse_filename(&c, filename);
    if (rc == PGR_OK)
        rc = parse_lines(&c, buf, len);
    if (rc == PGR_OK) {
        c.m->filename = strdup(filename);
        c.m->text = strndup(buf, len);
        c.m->text_len = len;
        if (c.m->filename == NULL || c.m->text == NULL)
            rc = pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
        pgr_migration_checksum(buf, len, c.m->checksum);
    }
out:
    pgr_buf_free(&c.body);
    if (rc != PGR_OK) {
        pgr_migration_free(c.m);
        return rc;
    }
    *out = c.m;
    return PGR_OK;
}

pgr_code pgr_migration_load(const char *path, pgr_migration **out, pgr_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    pgr_code rc = pgr_file_read(path, PGR_MIGRATION_MAX_BYTES, &buf, &len, err);
    if (rc != PGR_OK)
        return rc;
    rc = pgr_migration_parse(buf, len, path, out, err);
    free(buf);
    return rc;
}

static void step_free(pgr_step *s)
{
    free(s->name);
    free(s->table);
    free(s->columns);
    free(s->ref_table);
    free(s->ref_columns);
    free(s->on_update);
    free(s->on_delete);
    free(s->orphans);
    free(s->lock);
    free(s->sql);
}

void pgr_migration_free(pgr_migration *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->up_count; i++)
        step_free(&m->up[i]);
    for (size_t i = 0; i < m->down_count; i++)
        step_free(&m->down[i]);
    free(m->up);
    free(m->down);
    free(m->name);
    free(m->filename);
    free(m->text);
    free(m);
}

void pgr_migration_checksum(const char *buf, size_t len, char out[PGR_SHA256_HEX_LEN])
{
    crypto_hash_sha256_state st;
    uint8_t digest[PGR_SHA256_LEN];
    size_t pos = 0;

    crypto_hash_sha256_init(&st);
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl != NULL ? (size_t)(nl - buf) : len;
        size_t a = pos, b = end;
        while (a < b && (buf[a] == ' ' || buf[a] == '\t'))
            a++;
        while (b > a && (buf[b - 1] == ' ' || buf[b - 1] == '\t' || buf[b - 1] == '\r'))
            b--;
        while (b > a && (buf[b - 1] == ' ' || buf[b - 1] == '\t'))
            b--;
        if (b > a) {
            crypto_hash_sha256_update(&st, (const unsigned char *)buf + a, b - a);
            crypto_hash_sha256_update(&st, (const unsigned char *)"\n", 1);
        }
        pos = end + 1;
    }
    crypto_hash_sha256_final(&st, digest);
    pgr_crypto_hex_encode(digest, sizeof(digest), out);
}

pgr_migration_set *pgr_migration_set_new(void)
{
    return calloc(1, sizeof(pgr_migration_set));
}

void pgr_migration_set_free(pgr_migration_set *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i < set->count; i++)
        pgr_migration_free(set->items[i]);
    free(set->items);
    free(set);
}

pgr_code pgr_migration_set_add(pgr_migration_set *set, pgr_migration *m, pgr_error *err)
{
    size_t at = set->count;
    while (at > 0 && strcmp(set->items[at - 1]->version, m->version) > 0)
        at--;
    if (at > 0 && strcmp(set->items[at - 1]->version, m->version) == 0)
        return pgr_error_set(err, PGR_ERR_INVALID, "%s: version %s is also used by \"%s\"",
                             m->filename, m->version, set->items[at - 1]->filename);
    pgr_migration **n = realloc(set->items, (set->count + 1) * sizeof(*n));
    if (n == NULL)
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    set->items = n;
    memmove(&n[at + 1], &n[at], (set->count - at) * sizeof(*n));
    n[at] = m;
    set->count++;
    return PGR_OK;
}

const pgr_migration *pgr_migration_set_find(const pgr_migration_set *set, const char *version)
{
    for (size_t i = 0; i < set->count; i++) {
        if (strcmp(set->items[i]->version, version) == 0)
            return set->items[i];
    }
    return NULL;
}

static bool is_sql_file(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".sql") == 0 && name[0] != '.';
}

pgr_code pgr_migration_dir_load(const char *dir, pgr_migration_set **out, pgr_error *err)
{
    DIR *d = opendir(dir);
    pgr_migration_set *set = pgr_migration_set_new();
    pgr_code rc = PGR_OK;
    struct dirent *e;
    char path[4096];

    if (d == NULL || set == NULL) {
        if (d != NULL)
            closedir(d);
        free(set);
        return pgr_error_set(err, PGR_ERR_NOTFOUND, "could not open migrations directory \"%s\"",
                             dir);
    }
    while (rc == PGR_OK && (e = readdir(d)) != NULL) {
        pgr_migration *m = NULL;
        if (!is_sql_file(e->d_name))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        rc = pgr_migration_load(path, &m, err);
        if (rc == PGR_OK) {
            rc = pgr_migration_set_add(set, m, err);
            if (rc != PGR_OK)
                pgr_migration_free(m);
        }
    }
    closedir(d);
    if (rc != PGR_OK) {
        pgr_migration_set_free(set);
        return rc;
    }
    *out = set;
    return PGR_OK;
}

bool pgr_migration_version_valid(const char *v)
{
    if (v == NULL)
        return false;
    if (strcmp(v, "0") == 0)
        return true;
    if (strlen(v) != PGR_VERSION_LEN)
        return false;
    for (const char *p = v; *p != '\0'; p++) {
        if (!isdigit((unsigned char)*p))
            return false;
    }
    return true;
}

bool pgr_migration_step_transactional(const pgr_step *s)
{
    switch (s->kind) {
    case PGR_STEP_SQL:
        return !s->no_transaction;
    case PGR_STEP_EXTENSION:
    case PGR_STEP_DROP_FOREIGN_KEY:
    case PGR_STEP_FOREIGN_KEY:
        return true;
    case PGR_STEP_INDEX:
    case PGR_STEP_DROP_INDEX:
        return false;
    }
    return true;
}

const char *pgr_migration_step_lock(const pgr_step *s)
{
    switch (s->kind) {
    case PGR_STEP_INDEX:
    case PGR_STEP_DROP_INDEX:
        return "SHARE UPDATE EXCLUSIVE";
    case PGR_STEP_FOREIGN_KEY:
        return "SHARE ROW EXCLUSIVE (brief, NOT VALID) then SHARE UPDATE EXCLUSIVE (VALIDATE)";
    case PGR_STEP_DROP_FOREIGN_KEY:
        return "ACCESS EXCLUSIVE (brief)";
    case PGR_STEP_EXTENSION:
        return "none on tenant tables";
    case PGR_STEP_SQL:
        return s->lock != NULL ? s->lock : "ACCESS EXCLUSIVE (assumed)";
    }
    return "?";
}

void pgr_migration_step_describe(const pgr_step *s, char *out, size_t outlen)
{
    switch (s->kind) {
    case PGR_STEP_INDEX:
    case PGR_STEP_DROP_INDEX:
        snprintf(out, outlen, "index %s on %s", s->name, s->table);
        break;
    case PGR_STEP_FOREIGN_KEY:
        snprintf(out, outlen, "constraint %s on %s(%s) -> %s(%s)", s->name, s->table, s->columns,
                 s->ref_table, s->ref_columns);
        break;
    case PGR_STEP_DROP_FOREIGN_KEY:
        snprintf(out, outlen, "constraint %s on %s", s->name, s->table);
        break;
    case PGR_STEP_EXTENSION:
        snprintf(out, outlen, "extension %s", s->name);
        break;
    case PGR_STEP_SQL:
        snprintf(out, outlen, "sql");
        break;
    }
}
