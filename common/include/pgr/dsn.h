/*
 * dsn.h - libpq connection strings: whether a string is one, and copies without its secrets
 * (never log a password).
 */
#ifndef PGR_DSN_H
#define PGR_DSN_H
#include <stdbool.h>
#include <stddef.h>

/* Copies dsn into out with every secret value (password, sslpassword) replaced by "***", in the
 * form it was written (key=value or URI) or, when that form would still show a secret, as the
 * parsed key=value list. A string libpq cannot parse becomes "(invalid connection string, not
 * shown)". */
void pgr_dsn_redact(const char *dsn, char *out, size_t outlen);

/* Whether libpq reads dsn as a connection string (a postgresql:// or postgres:// URI, or
 * key=value pairs: it holds '='); anything else is a plain database name (expand_dbname). */
bool pgr_dsn_is_conninfo(const char *dsn);

/* False when libpq cannot parse dsn (a plain database name is valid). */
bool pgr_dsn_valid(const char *dsn);

/* True when text contains the value of a secret option (password, sslpassword) of dsn. */
bool pgr_dsn_secret_in(const char *dsn, const char *text);

#endif
