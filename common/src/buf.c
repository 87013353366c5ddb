/*
 * buf.c - the growable buffer (buf.h).
 */
#include "pgr/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
