/*
 * error.h - the one error type of pgrollout.
 *
 * Every fallible call returns a pgr_code (PGR_OK = 0) and fills an optional pgr_error that
 * carries the code, the SQLSTATE when PostgreSQL reported one, whether a retry may succeed,
 * and a message in PostgreSQL's style (lowercase, no final period, object names in quotes,
 * never secrets or PHI). The error pointer comes last and may be NULL.
 */
#ifndef PGR_ERROR_H
#define PGR_ERROR_H

#include <stdbool.h>
#include <stddef.h>

#define PGR_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#define PGR_MUSTCHECK                __attribute__((warn_unused_result))
#define PGR_UNUSED(x)                ((void)(x))
/* Deliberately ignores a PGR_MUSTCHECK result (best-effort cleanup paths); gcc does not accept
 * a (void) cast for that. */
#define PGR_IGNORE(e)                                                                              \
    do {                                                                                           \
        if ((e) != 0) {                                                                            \
        }                                                                                          \
    } while (0)

#ifdef PGR_UNIT_TESTS
#define PGR_STATIC
#else
#define PGR_STATIC static
#endif

typedef enum pgr_code {
    PGR_OK = 0,
    PGR_ERR_INVALID,  /* bad input: malformed file, flag, message */
    PGR_ERR_IO,       /* file system or network I/O */
    PGR_ERR_NOMEM,    /* allocation failed */
    PGR_ERR_CONFIG,   /* configuration file or value */
    PGR_ERR_CRYPTO,   /* key material, signature */
    PGR_ERR_PERM,     /* permissions (key file mode, privilege) */
    PGR_ERR_EXISTS,   /* refusing to overwrite */
    PGR_ERR_NOTFOUND, /* file, key, object missing */
    PGR_ERR_DB,       /* PostgreSQL reported an error */
    PGR_ERR_KAFKA,    /* Kafka reported an error */
    PGR_ERR_DRIFT,    /* applied migration differs from its file */
    PGR_ERR_LOCKED,   /* another runner holds the lock */
    PGR_ERR_INTERNAL, /* a bug */
} pgr_code;

typedef struct pgr_error {
    pgr_code code;
    char sqlstate[6];
    bool retriable;
    char msg[512];
} pgr_error;

/* Clears err (when not NULL) to PGR_OK with an empty message. */
void pgr_error_clear(pgr_error *err);

/* Sets code and a formatted message; returns code so callers can `return pgr_error_set(...)`. */
pgr_code pgr_error_set(pgr_error *err, pgr_code code, const char *fmt, ...) PGR_PRINTF(3, 4);

/* Prefixes the existing message with "context: " (for wrapping a lower-level error). */
void pgr_error_prefix(pgr_error *err, const char *fmt, ...) PGR_PRINTF(2, 3);

/* Sets sqlstate and marks 55P03 (lock timeout), 40P01 (deadlock), 40001 and connection
 * failures (class 08) as retriable. */
void pgr_error_set_sqlstate(pgr_error *err, const char *sqlstate);

/* Stable lowercase name of a code ("invalid", "io", ...). */
const char *pgr_error_code_name(pgr_code code);

/* Assertion for invariants (never for input): reports expression, file and line, then aborts. */
void pgr_error_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
#define PGR_ASSERT(e) ((e) ? (void)0 : pgr_error_assert_fail(#e, __FILE__, __LINE__))

#endif
