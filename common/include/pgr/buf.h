/*
 * buf.h - a growable byte buffer, always NUL-terminated.
 */
#ifndef PGR_BUF_H
#define PGR_BUF_H
#include "pgr/error.h"
#include <stddef.h>

/* A growable byte buffer, always NUL-terminated. */
typedef struct pgr_buf {
    char *data;
    size_t len;
    size_t cap;
} pgr_buf;

void pgr_buf_init(pgr_buf *b);
void pgr_buf_free(pgr_buf *b);
pgr_code pgr_buf_append(pgr_buf *b, const void *data, size_t len) PGR_MUSTCHECK;
pgr_code pgr_buf_appendf(pgr_buf *b, const char *fmt, ...) PGR_PRINTF(2, 3);

#endif
