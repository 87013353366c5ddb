/* error.c - the pgr_error type: codes, messages, SQLSTATE classification. */
#include "pgr/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pgr_error_clear(pgr_error *err)
{
    if (err == NULL)
        return;
    memset(err, 0, sizeof(*err));
}

pgr_code pgr_error_set(pgr_error *err, pgr_code code, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return code;
    err->code = code;
    err->retriable = false;
    err->sqlstate[0] = '\0';
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

void pgr_error_prefix(pgr_error *err, const char *fmt, ...)
{
    char prefix[128];
    char old[sizeof(err->msg)];
    va_list ap;

    if (err == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    /* a long message is cut on purpose: its start says what went wrong */
    int n = snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
    PGR_UNUSED(n);
}

void pgr_error_set_sqlstate(pgr_error *err, const char *sqlstate)
{
    if (err == NULL || sqlstate == NULL)
        return;
    snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", sqlstate);
    /* Lock timeouts, deadlocks, serialization failures and lost connections are transient:
     * the same step can succeed when retried later. Everything else is a real failure. */
    err->retriable = strcmp(err->sqlstate, "55P03") == 0 || strcmp(err->sqlstate, "40P01") == 0 ||
                     strcmp(err->sqlstate, "40001") == 0 || strncmp(err->sqlstate, "08", 2) == 0 ||
                     strcmp(err->sqlstate, "57P01") == 0;
}

const char *pgr_error_code_name(pgr_code code)
{
    static const char *const names[] = {
        "ok",     "invalid",   "io", "nomem", "config", "crypto", "perm",
        "exists", "not_found", "db", "kafka", "drift",  "locked", "internal",
    };
    if ((size_t)code >= sizeof(names) / sizeof(names[0]))
        return "unknown";
    return names[code];
}

void pgr_error_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "pgrollout: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
