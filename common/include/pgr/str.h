/*
 * str.h - small string helpers: bounded copy, cutting format, trimming, identifiers.
 * Used instead of strcpy/strncpy, which STYLE.md bans.
 */
#ifndef PGR_STR_H
#define PGR_STR_H
#include "pgr/error.h"
#include <stdbool.h>
#include <stddef.h>

/* Copies at most dstlen-1 bytes and always terminates; returns strlen(src) (truncation if >=). */
size_t pgr_str_copy(char *dst, const char *src, size_t dstlen);

/* Formats into dst (size len), cutting on purpose what does not fit: for messages that quote
 * another message, whose start says what went wrong. Returns whether everything fit. */
bool pgr_str_cut(char *dst, size_t len, const char *fmt, ...) PGR_PRINTF(3, 4);

/* Returns s advanced past leading blanks, with trailing blanks overwritten by NUL. */
char *pgr_str_trim(char *s);

/* True when s consists of [A-Za-z0-9_] and starts with a letter or underscore, len 1..63. */
bool pgr_str_is_simple_ident(const char *s);

/* True for a valid tenant id: 1 to 128 of a-z, A-Z, 0-9, '_', '-', '.'. Tenant ids become Kafka
 * keys, file names and values in records: every place that takes one checks it with this. */
bool pgr_str_is_tenant_id(const char *id);

#endif
