/*
 * tenantsrc.c - tenant sources (tenantsrc.h): parsing a source line, the ids and connection strings
 * of its databases.
 */
#include "pgr/tenantsrc.h"
#include "pgr/buf.h"
#include "pgr/dsn.h"
#include "pgr/str.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char PGR_TENANTSRC_LIST_SQL[] =
    "SELECT datname FROM pg_catalog.pg_database WHERE datallowconn AND NOT datistemplate AND "
    "datconnlimit <> -2 AND starts_with(datname, $1) AND right(datname, length($2)) = $2 AND "
    "length(datname) >= "
    "length($1) + length($2) ORDER BY datname";

void pgr_tenantsrc_clear(pgr_tenantsrc *s)
{
    free(s->name);
    free(s->conninfo);
    free(s->list_db);
    free(s->prefix);
    free(s->suffix);
    free(s->id_template);
    free(s->tags);
    memset(s, 0, sizeof(*s));
}

/* Text being built; one failed allocation fails the whole (never a string cut short). */
typedef struct text {
    pgr_buf b;
    bool failed;
} text;

static void put(text *t, const char *data, size_t len)
{
    if (pgr_buf_append(&t->b, data, len) != PGR_OK)
        t->failed = true;
}

static void puts_(text *t, const char *s)
{
    put(t, s, strlen(s));
}

/* The text built (malloc'ed, "" when nothing was put), or NULL after a failed allocation. */
static char *take(text *t)
{
    char *r = t->failed ? NULL : t->b.data != NULL ? t->b.data : strdup("");
    if (t->failed)
        pgr_buf_free(&t->b);
    pgr_buf_init(&t->b);
    return r;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Appends "key='value'" to b (libpq quoting: backslash before ' and \). */
static void append_option(text *t, const char *key, const char *value)
{
    if (t->b.len > 0)
        puts_(t, " ");
    puts_(t, key);
    puts_(t, "='");
    for (const char *p = value; *p != '\0'; p++) {
        if (*p == '\'' || *p == '\\')
            puts_(t, "\\");
        put(t, p, 1);
    }
    puts_(t, "'");
}

/* One key=value of a libpq connection string at *pp (its rules: spaces around '=', a value quoted
 * with '...' and backslash escapes); false at a syntax error. */
static bool next_option(const char **pp, char *key, size_t keylen, text *value)
{
    const char *p = *pp;
    size_t k = 0;
    while (*p != '\0' && *p != '=' && !is_space(*p)) {
        if (k + 1 < keylen)
            key[k++] = *p;
        p++;
    }
    key[k] = '\0';
    while (is_space(*p))
        p++;
    if (k == 0 || *p != '=')
        return false;
    p++;
    while (is_space(*p))
        p++;
    bool quoted = *p == '\'';
    p += quoted ? 1 : 0;
    while (*p != '\0' && (quoted ? *p != '\'' : !is_space(*p))) {
        if (*p == '\\' && p[1] != '\0')
            p++;
        put(value, p++, 1);
    }
    if (quoted && *p != '\'')
        return false;
    *pp = p + (quoted ? 1 : 0);
    return true;
}

/* The literal characters of a template must be those of a tenant id; {suffix} and {name} are the
 * only placeholders, and one of them must appear once (else every database gets the same id). */
static const char *template_broken(const char *t)
{
    int placeholders = 0;
    for (const char *p = t; *p != '\0';) {
        if (strncmp(p, "{suffix}", 8) == 0 || strncmp(p, "{name}", 6) == 0) {
            placeholders++;
            p += p[1] == 's' ? 8 : 6;
            continue;
        }
        char one[2] = {*p, '\0'};
        if (!pgr_str_is_tenant_id(one))
            return "id: only letters, digits, '_', '-', '.', {suffix} and {name}";
        p++;
    }
    /* exactly one, so that an id leads back to its database (pgr_tenantsrc_dbname) */
    return placeholders == 1   ? NULL
           : placeholders == 0 ? "id: needs {suffix} or {name} (else every database gets one id)"
                               : "id: {suffix} or {name} once, not more";
}

static const char *pattern_broken(const char *pattern)
{
    const char *pct = strchr(pattern, '%');
    if (pct == NULL || strchr(pct + 1, '%') != NULL)
        return "dbname_pattern: needs exactly one '%'";
    if (strlen(pattern) > PGR_TENANTSRC_DBNAME_MAX)
        return "dbname_pattern: longer than a database name can be";
    return NULL;
}

/* Takes our options (and dbname) out of value; the rest stays libpq's. */
static const char *split_options(const char *value, pgr_tenantsrc *s, char **pattern, text *rest)
{
    const char *p = value;
    while (true) {
        while (is_space(*p))
            p++;
        if (*p == '\0')
            return NULL;
        char key[64];
        text v = {0};
        bool ok = next_option(&p, key, sizeof(key), &v);
        char *val = take(&v);
        if (!ok || val == NULL) {
            free(val);
            return ok ? "out of memory"
                      : "expected key=value options (the URI form is not accepted here)";
        }
        char **ours = strcmp(key, "dbname_pattern") == 0 ? pattern
                      : strcmp(key, "id") == 0           ? &s->id_template
                      : strcmp(key, "tags") == 0         ? &s->tags
                      : strcmp(key, "dbname") == 0       ? &s->list_db
                                                         : NULL;
        if (ours != NULL) {
            free(*ours);
            *ours = val;
        } else {
            append_option(rest, key, val);
            free(val);
        }
    }
}

pgr_code pgr_tenantsrc_parse(const char *name, const char *value, pgr_tenantsrc *out,
                             pgr_error *err)
{
    pgr_tenantsrc s = {0};
    char *pattern = NULL;
    text rest = {0};
    const char *broken = !pgr_str_is_simple_ident(name)
                             ? "source name: letters, digits and '_' only"
                             : split_options(value, &s, &pattern, &rest);
    if (broken == NULL && pattern == NULL)
        broken = "dbname_pattern=PATTERN is required";
    if (broken == NULL && s.id_template == NULL)
        broken = "id=TEMPLATE is required";
    if (broken == NULL)
        broken = pattern_broken(pattern);
    if (broken == NULL)
        broken = template_broken(s.id_template);
    if (broken == NULL && s.tags != NULL && s.tags[0] == '\0')
        broken = "tags: empty";
    char *conninfo = take(&rest);
    if (broken == NULL && conninfo == NULL)
        broken = "out of memory";
    if (broken == NULL && conninfo[0] != '\0' && !pgr_dsn_valid(conninfo))
        broken = "invalid connection options (not shown: they may hold a password)";
    if (broken == NULL) {
        char *pct = strchr(pattern, '%');
        s.name = strdup(name);
        s.suffix = strdup(pct + 1);
        *pct = '\0';
        s.prefix = pattern;
        pattern = NULL;
        s.conninfo = conninfo;
        conninfo = NULL;
        if (s.list_db == NULL)
            s.list_db = strdup("postgres");
        if (s.name == NULL || s.suffix == NULL || s.conninfo == NULL || s.list_db == NULL)
            broken = "out of memory";
    }
    free(pattern);
    free(conninfo);
    if (broken != NULL) {
        pgr_tenantsrc_clear(&s);
        return pgr_error_set(err, PGR_ERR_CONFIG, "tenant source \"%s\": %s", name, broken);
    }
    *out = s;
    return PGR_OK;
}

pgr_tenantsrc_match pgr_tenantsrc_id(const pgr_tenantsrc *s, const char *dbname, char *id,
                                     size_t idlen)
{
    size_t n = strlen(dbname), np = strlen(s->prefix), ns = strlen(s->suffix);
    if (n < np + ns || strncmp(dbname, s->prefix, np) != 0 ||
        strcmp(dbname + n - ns, s->suffix) != 0)
        return PGR_TENANTSRC_NO_MATCH;
    text t = {0};
    for (const char *p = s->id_template; *p != '\0';) {
        if (strncmp(p, "{suffix}", 8) == 0) {
            put(&t, dbname + np, n - np - ns);
            p += 8;
        } else if (strncmp(p, "{name}", 6) == 0) {
            puts_(&t, dbname);
            p += 6;
        } else {
            put(&t, p++, 1);
        }
    }
    char *made = take(&t);
    bool ok = made != NULL && pgr_str_is_tenant_id(made) && strlen(made) < idlen;
    if (ok)
        memcpy(id, made, strlen(made) + 1);
    free(made);
    return ok ? PGR_TENANTSRC_MATCH : PGR_TENANTSRC_BAD_ID;
}

char *pgr_tenantsrc_dsn(const pgr_tenantsrc *s, const char *dbname)
{
    text t = {0};
    puts_(&t, s->conninfo);
    append_option(&t, "dbname", dbname);
    return take(&t);
}

bool pgr_tenantsrc_dbname(const pgr_tenantsrc *s, const char *id, char *db, size_t dblen)
{
    const char *ph = strstr(s->id_template, "{suffix}");
    bool suffix = ph != NULL;
    if (ph == NULL)
        ph = strstr(s->id_template, "{name}");
    if (ph == NULL)
        return false;
    size_t before = (size_t)(ph - s->id_template);
    const char *after = ph + (suffix ? 8 : 6);
    size_t n = strlen(id), na = strlen(after);
    if (n < before + na || strncmp(id, s->id_template, before) != 0 ||
        strcmp(id + n - na, after) != 0)
        return false;
    int w = snprintf(db, dblen, "%s%.*s%s", suffix ? s->prefix : "", (int)(n - before - na),
                     id + before, suffix ? s->suffix : "");
    char back[129];
    /* the way back must lead to the same id (a name that does not match, or a database name
     * longer than PostgreSQL keeps, is not one of this source's) */
    return w > 0 && (size_t)w < dblen && (size_t)w <= PGR_TENANTSRC_DBNAME_MAX &&
           pgr_tenantsrc_id(s, db, back, sizeof(back)) == PGR_TENANTSRC_MATCH &&
           strcmp(back, id) == 0;
}
