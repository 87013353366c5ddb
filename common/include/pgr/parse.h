/*
 * parse.h - safe parsing of numbers, booleans and strings from untrusted text, small string
 * helpers (bounded copy, trimming, a growable buffer) and whole-file reading with a size cap.
 * Used instead of atoi/strtok/strcpy, which STYLE.md bans.
 */
#ifndef PGR_PARSE_H
#define PGR_PARSE_H

#include "pgr/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses a whole decimal integer (optional sign, no trailing garbage) within [min, max]. */
pgr_code pgr_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out,
                         pgr_error *err) PGR_MUSTCHECK;

/* Parses a decimal number (e.g. "0.02") within [min, max]. */
pgr_code pgr_parse_double(const char *s, double min, double max, double *out,
                          pgr_error *err) PGR_MUSTCHECK;

/* Parses true/false, yes/no, on/off, 1/0 (case-insensitive). */
pgr_code pgr_parse_bool(const char *s, bool *out, pgr_error *err) PGR_MUSTCHECK;

/* Copies at most dstlen-1 bytes and always terminates; returns strlen(src) (truncation if >=). */
size_t pgr_strlcpy(char *dst, const char *src, size_t dstlen);

/* Returns s advanced past leading blanks, with trailing blanks overwritten by NUL. */
char *pgr_str_trim(char *s);

/* True when s consists of [A-Za-z0-9_] and starts with a letter or underscore, len 1..63. */
bool pgr_is_simple_ident(const char *s);

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

/* Reads a whole file (at most max_bytes) into a NUL-terminated malloc'd buffer owned by caller. */
pgr_code pgr_file_read(const char *path, size_t max_bytes, char **out, size_t *out_len,
                       pgr_error *err) PGR_MUSTCHECK;

#endif
