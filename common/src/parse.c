/* parse.c - checked number/boolean parsing, bounded string helpers, growable buffer, file read. */
#include "pgr/parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

pgr_code pgr_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out, pgr_error *err)
{
    char *end = NULL;
    long long v;

    if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
        return pgr_error_set(err, PGR_ERR_INVALID, "invalid integer \"%s\"", s != NULL ? s : "");
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno == ERANGE || *end != '\0')
        return pgr_error_set(err, PGR_ERR_INVALID, "invalid integer \"%s\"", s);
    if (v < min || v > max)
        return pgr_error_set(err, PGR_ERR_INVALID,
                             "value %lld is out of range: expected %lld to %lld", v, (long long)min,
                             (long long)max);
    *out = (int64_t)v;
    return PGR_OK;
}

pgr_code pgr_parse_double(const char *s, double min, double max, double *out, pgr_error *err)
{
    char *end = NULL;
    double v;

    if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
        return pgr_error_set(err, PGR_ERR_INVALID, "invalid number \"%s\"", s != NULL ? s : "");
    errno = 0;
    v = strtod(s, &end);
    if (errno == ERANGE || *end != '\0' || v != v)
        return pgr_error_set(err, PGR_ERR_INVALID, "invalid number \"%s\"", s);
    if (v < min || v > max)
        return pgr_error_set(err, PGR_ERR_INVALID, "value %g is out of range: expected %g to %g", v,
                             min, max);
    *out = v;
    return PGR_OK;
}

pgr_code pgr_parse_bool(const char *s, bool *out, pgr_error *err)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; s != NULL && i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return PGR_OK;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return PGR_OK;
        }
    }
    return pgr_error_set(err, PGR_ERR_INVALID, "invalid boolean \"%s\": expected true or false",
                         s != NULL ? s : "");
}

size_t pgr_strlcpy(char *dst, const char *src, size_t dstlen)
{
    size_t n = strlen(src);
    if (dstlen > 0) {
        size_t c = n < dstlen - 1 ? n : dstlen - 1;
        memcpy(dst, src, c);
        dst[c] = '\0';
    }
    return n;
}

char *pgr_str_trim(char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

bool pgr_is_simple_ident(const char *s)
{
    size_t n = 0;
    if (s == NULL || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (; s[n] != '\0'; n++) {
        if (!(isalnum((unsigned char)s[n]) || s[n] == '_'))
            return false;
    }
    return n <= 63;
}

void pgr_buf_init(pgr_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void pgr_buf_free(pgr_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    pgr_buf_init(b);
}

pgr_code pgr_buf_append(pgr_buf *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap == 0 ? 256 : b->cap;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (p == NULL)
            return PGR_ERR_NOMEM;
        b->data = p;
        b->cap = cap;
    }
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return PGR_OK;
}

pgr_code pgr_buf_appendf(pgr_buf *b, const char *fmt, ...)
{
    va_list ap;
    char small[512];

    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return PGR_ERR_INVALID;
    if ((size_t)n < sizeof(small))
        return pgr_buf_append(b, small, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (big == NULL)
        return PGR_ERR_NOMEM;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    pgr_code rc = pgr_buf_append(b, big, (size_t)n);
    free(big);
    return rc;
}

pgr_code pgr_file_read(const char *path, size_t max_bytes, char **out, size_t *out_len,
                       pgr_error *err)
{
    FILE *f = fopen(path, "rb");
    pgr_buf b;
    char chunk[8192];
    size_t n;

    if (f == NULL)
        return pgr_error_set(err, errno == ENOENT ? PGR_ERR_NOTFOUND : PGR_ERR_IO,
                             "could not open file \"%s\": %s", path, strerror(errno));
    pgr_buf_init(&b);
    if (pgr_buf_append(&b, "", 0) != PGR_OK) {
        fclose(f);
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory reading \"%s\"", path);
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b.len + n > max_bytes) {
            fclose(f);
            pgr_buf_free(&b);
            return pgr_error_set(err, PGR_ERR_INVALID, "file \"%s\" is larger than %zu bytes", path,
                                 max_bytes);
        }
        if (pgr_buf_append(&b, chunk, n) != PGR_OK) {
            fclose(f);
            pgr_buf_free(&b);
            return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory reading \"%s\"", path);
        }
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        pgr_buf_free(&b);
        return pgr_error_set(err, PGR_ERR_IO, "could not read file \"%s\"", path);
    }
    *out = b.data;
    if (out_len != NULL)
        *out_len = b.len;
    return PGR_OK;
}
