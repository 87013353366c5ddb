/* indexdef.c - canonical form of CREATE INDEX statements for definition comparison. */
#include "pgr/indexdef.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Removes every occurrence of word (already lower case, may contain spaces) from s in place. */
static void remove_all(char *s, const char *word)
{
    size_t n = strlen(word);
    char *p;
    while ((p = strstr(s, word)) != NULL)
        memmove(p, p + n, strlen(p + n) + 1);
}

static bool is_ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '"' || c == '.' || c == '[' || c == ']';
}

/* Skips a cast "::type" starting at sql[i] (the first ':'); returns the new i. A type name is
 * one identifier, plus the words of PostgreSQL's multi-word types ("character varying",
 * "timestamp with time zone", "double precision"); nothing after it is swallowed. */
static size_t skip_cast(const char *sql, size_t i)
{
    static const char *const more[] = {"varying", "precision", "with", "without", "time", "zone"};
    i += 2;
    while (sql[i] != '\0' && is_ident_char(sql[i]))
        i++;
    for (bool again = true; again;) {
        again = false;
        for (size_t k = 0; k < sizeof(more) / sizeof(more[0]) && sql[i] == ' '; k++) {
            size_t n = strlen(more[k]);
            if (strncasecmp(sql + i + 1, more[k], n) == 0 && !is_ident_char(sql[i + 1 + n])) {
                i += 1 + n;
                again = true;
            }
        }
    }
    return i;
}

char *pgr_indexdef_canonical(const char *sql)
{
    size_t n = strlen(sql), o = 0;
    char *out = malloc(n + 2);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = sql[i];
        if (c == '\'') { /* literals verbatim, with their doubled quotes */
            out[o++] = c;
            for (i++; i < n; i++) {
                out[o++] = sql[i];
                if (sql[i] == '\'' && sql[i + 1] != '\'')
                    break;
                if (sql[i] == '\'')
                    out[o++] = sql[++i];
            }
            continue;
        }
        if (c == '-' && sql[i + 1] == '-') { /* comments are not part of the definition */
            while (i + 1 < n && sql[i + 1] != '\n')
                i++;
            continue;
        }
        if (c == ':' && sql[i + 1] == ':') {
            i = skip_cast(sql, i) - 1;
            continue;
        }
        if (c == '(' || c == ')' || c == '"')
            continue;
        if (isspace((unsigned char)c)) {
            if (o > 0 && out[o - 1] != ' ')
                out[o++] = ' ';
            continue;
        }
        out[o++] = (char)tolower((unsigned char)c);
    }
    out[o] = '\0';
    remove_all(out, " concurrently");
    remove_all(out, " if not exists");
    remove_all(out, " using btree");
    remove_all(out, "public.");
    remove_all(out, " ");
    o = strlen(out);
    while (o > 0 && out[o - 1] == ';')
        out[--o] = '\0';
    return out;
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
