/*
 * parse.h - safe parsing of numbers and booleans from untrusted text.
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

#endif
