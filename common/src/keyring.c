/* keyring.c - trusted public keys with revocation and tenant restrictions. */
#include "pgr/keyring.h"
#include "pgr/str.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEYRING_MAX_BYTES (1024 * 1024)

static pgr_code parse_options(pgr_keyring_entry *e, char *rest, const char *name, int line,
                              pgr_error *err)
{
    char *save = NULL;
    for (char *t = strtok_r(rest, " \t", &save); t != NULL; t = strtok_r(NULL, " \t", &save)) {
        if (strcmp(t, "revoked") == 0) {
            e->revoked = true;
        } else if (strncmp(t, "tenants=", 8) == 0 && t[8] != '\0' && e->tenants == NULL) {
            /* checked: a lost restriction (NULL) would let the key speak for every tenant */
            e->tenants = strdup(t + 8);
            if (e->tenants == NULL)
                return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
        } else if (strncmp(t, "name=", 5) == 0 && t[5] != '\0' && e->name == NULL) {
            e->name = strdup(t + 5);
            if (e->name == NULL)
                return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
        } else {
            return pgr_error_set(err, PGR_ERR_CRYPTO,
                                 "%s:%d: unexpected \"%s\": expected revoked, tenants=... or "
                                 "name=...",
                                 name, line, t);
        }
    }
    return PGR_OK;
}

/* One non-comment line: the first three words are the public key line. */
static pgr_code parse_line(pgr_keyring *kr, char *text, const char *name, int line, pgr_error *err)
{
    pgr_keyring_entry e;
    memset(&e, 0, sizeof(e));
    char *p = text;
    for (int words = 0; words < 3 && *p != '\0'; words++) {
        while (*p == ' ' || *p == '\t')
            p++;
        while (*p != '\0' && *p != ' ' && *p != '\t')
            p++;
    }
    char *rest = *p != '\0' ? p + 1 : p;
    *p = '\0';
    if (pgr_keys_parse_public(text, &e.key, err) != PGR_OK) {
        pgr_error_prefix(err, "%s:%d", name, line);
        return PGR_ERR_CRYPTO;
    }
    pgr_code rc = parse_options(&e, rest, name, line, err);
    if (rc == PGR_OK && pgr_keyring_find(kr, e.key.kid) != NULL)
        rc = pgr_error_set(err, PGR_ERR_CRYPTO, "%s:%d: key \"%s\" is listed twice", name, line,
                           e.key.kid);
    pgr_keyring_entry *n = rc == PGR_OK ? realloc(kr->items, (kr->count + 1) * sizeof(*n)) : NULL;
    if (rc == PGR_OK && n == NULL)
        rc = pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    if (rc != PGR_OK) {
        free(e.tenants);
        free(e.name);
        return rc;
    }
    kr->items = n;
    n[kr->count++] = e;
    return PGR_OK;
}

pgr_code pgr_keyring_parse(const char *buf, size_t len, const char *name, pgr_keyring **out,
                           pgr_error *err)
{
    pgr_keyring *kr = calloc(1, sizeof(*kr));
    size_t pos = 0;
    int line = 0;
    pgr_code rc = kr != NULL ? PGR_OK : pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");

    if (rc == PGR_OK && memchr(buf, '\0', len) != NULL)
        rc = pgr_error_set(err, PGR_ERR_CRYPTO, "%s: keyring contains a NUL byte", name);
    while (rc == PGR_OK && pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t n = nl != NULL ? (size_t)(nl - (buf + pos)) : len - pos;
        char *copy = strndup(buf + pos, n);
        line++;
        pos += n + 1;
        if (copy == NULL) {
            rc = pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
            break;
        }
        char *hash = strchr(copy, '#');
        if (hash != NULL)
            *hash = '\0';
        char *t = pgr_str_trim(copy);
        if (*t != '\0')
            rc = parse_line(kr, t, name, line, err);
        free(copy);
    }
    if (rc != PGR_OK) {
        pgr_keyring_free(kr);
        return rc;
    }
    *out = kr;
    return PGR_OK;
}

pgr_code pgr_keyring_load(const char *path, pgr_keyring **out, pgr_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    /* the trust anchors: a keyring others may write would let them add a key */
    pgr_code rc = pgr_keys_file_read(path, PGR_KEYFILE_KEYRING, KEYRING_MAX_BYTES, &buf, &len, err);
    if (rc != PGR_OK)
        return rc;
    rc = pgr_keyring_parse(buf, len, path, out, err);
    free(buf);
    return rc;
}

void pgr_keyring_free(pgr_keyring *kr)
{
    if (kr == NULL)
        return;
    for (size_t i = 0; i < kr->count; i++) {
        free(kr->items[i].tenants);
        free(kr->items[i].name);
    }
    free(kr->items);
    free(kr);
}

const pgr_keyring_entry *pgr_keyring_find(const pgr_keyring *kr, const char *kid)
{
    for (size_t i = 0; kr != NULL && i < kr->count; i++) {
        if (strcmp(kr->items[i].key.kid, kid) == 0)
            return &kr->items[i];
    }
    return NULL;
}

bool pgr_keyring_allows_tenant(const pgr_keyring_entry *e, const char *tenant)
{
    if (e->tenants == NULL)
        return true;
    size_t n = strlen(tenant);
    for (const char *p = e->tenants; *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, tenant, n) == 0)
            return true;
        /* "district-*": every id that starts with "district-" and goes on (a pool's or a
         * discovered fleet's thousands of tenants in one word) */
        if (len > 1 && p[len - 1] == '*' && n > len - 1 && strncmp(p, tenant, len - 1) == 0)
            return true;
        p = comma != NULL ? comma + 1 : p + len;
    }
    return false;
}
