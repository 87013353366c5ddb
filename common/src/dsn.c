/*
 * dsn.c - libpq connection strings (dsn.h): classification and redaction of secrets.
 */
#include "pgr/dsn.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the value starting at p in a key=value DSN (quoted or bare). */
static size_t dsn_value_len(const char *p)
{
    size_t n = 0;
    if (*p == '\'') {
        n = 1;
        while (p[n] != '\0' && p[n] != '\'') {
            if (p[n] == '\\' && p[n + 1] != '\0')
                n++;
            n++;
        }
        return p[n] == '\'' ? n + 1 : n;
    }
    while (p[n] != '\0' && p[n] != ' ')
        n++;
    return n;
}

static void redact_uri(const char *dsn, char *out, size_t outlen)
{
    /* postgresql://user:secret@host/db -> postgresql://user:***@host/db */
    const char *scheme = strstr(dsn, "://");
    const char *at = strchr(dsn, '@');
    const char *colon = scheme != NULL ? strchr(scheme + 3, ':') : NULL;
    if (scheme == NULL || at == NULL || colon == NULL || colon > at) {
        snprintf(out, outlen, "%s", dsn);
    } else {
        snprintf(out, outlen, "%.*s:***%s", (int)(colon - dsn), dsn, at);
    }
    /* A password may also be passed as a query parameter. */
    char *q = strstr(out, "password=");
    if (q != NULL) {
        q += strlen("password=");
        char *end = strchr(q, '&');
        size_t rest = end != NULL ? strlen(end) : 0;
        if ((size_t)(q - out) + 3 + rest < outlen) {
            memmove(q + 3, end != NULL ? end : q + strlen(q), rest + 1);
            memcpy(q, "***", 3);
        }
    }
}

/* The text form: the DSN as written, password values replaced (key=value and URI forms). */
static void redact_text(const char *dsn, char *out, size_t outlen)
{
    size_t o = 0;

    if (outlen == 0)
        return;
    if (strstr(dsn, "://") != NULL) {
        redact_uri(dsn, out, outlen);
        return;
    }
    for (const char *p = dsn; *p != '\0' && o + 1 < outlen;) {
        if (strncmp(p, "password", 8) == 0 && (p == dsn || p[-1] == ' ')) {
            const char *eq = p + 8;
            while (*eq == ' ')
                eq++;
            if (*eq == '=') {
                eq++;
                while (*eq == ' ')
                    eq++;
                int w = snprintf(out + o, outlen - o, "password=***");
                o += (size_t)w < outlen - o ? (size_t)w : outlen - o - 1;
                p = eq + dsn_value_len(eq);
                continue;
            }
        }
        out[o++] = *p++;
    }
    out[o] = '\0';
}

bool pgr_dsn_is_conninfo(const char *dsn)
{
    return strchr(dsn, '=') != NULL || strncmp(dsn, "postgresql://", 13) == 0 ||
           strncmp(dsn, "postgres://", 11) == 0;
}

bool pgr_dsn_valid(const char *dsn)
{
    if (!pgr_dsn_is_conninfo(dsn))
        return true;
    PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
    PQconninfoFree(opts);
    return opts != NULL;
}

bool pgr_dsn_secret_in(const char *dsn, const char *text)
{
    PQconninfoOption *opts = pgr_dsn_is_conninfo(dsn) ? PQconninfoParse(dsn, NULL) : NULL;
    bool found = false;
    /* libpq marks the options that hold secrets (password, sslpassword) with dispchar "*" */
    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL && !found; o++) {
        if (o->dispchar != NULL && o->dispchar[0] == '*' && o->val != NULL && o->val[0] != '\0')
            found = strstr(text, o->val) != NULL;
    }
    PQconninfoFree(opts);
    return found;
}

/* The parsed form: every option that is set, secrets as "***", values quoted when needed. */
static void redact_parsed(const PQconninfoOption *opts, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    for (const PQconninfoOption *p = opts; p->keyword != NULL && o + 1 < outlen; p++) {
        if (p->val == NULL)
            continue;
        bool secret = p->dispchar != NULL && p->dispchar[0] == '*';
        bool quote = !secret && (p->val[0] == '\0' || strpbrk(p->val, " \t\n'\\") != NULL);
        int w = snprintf(out + o, outlen - o, "%s%s=%s%s%s", o > 0 ? " " : "", p->keyword,
                         quote ? "'" : "", secret ? "***" : p->val, quote ? "'" : "");
        o += w > 0 && (size_t)w < outlen - o ? (size_t)w : outlen - o - 1;
    }
}

void pgr_dsn_redact(const char *dsn, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    if (!pgr_dsn_is_conninfo(dsn)) {
        snprintf(out, outlen, "%s", dsn);
        return;
    }
    /* A string libpq cannot parse is not shown at all: where the parse fails is unknown, so a
     * password may sit anywhere in it (an unquoted space, a bad %-escape in a URI). */
    PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
    if (opts == NULL) {
        snprintf(out, outlen, "(invalid connection string, not shown)");
        return;
    }
    /* The form as written, in full; if a secret still shows (a tab before "password", an
     * "sslpassword"), the parsed form instead. */
    size_t cap = 2 * strlen(dsn) + 64;
    char *full = malloc(cap);
    if (full != NULL)
        redact_text(dsn, full, cap);
    if (full != NULL && !pgr_dsn_secret_in(dsn, full))
        snprintf(out, outlen, "%s", full);
    else
        redact_parsed(opts, out, outlen);
    free(full);
    PQconninfoFree(opts);
}
