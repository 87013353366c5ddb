/*
 * log.h - levelled logging to stderr as text or JSON lines, with context (component, tenant,
 * job id). Only this module writes to stderr on behalf of common/. Callers must never pass
 * passwords, DSNs with secrets or PHI values; pgr_dsn_redact() (dsn.h) helps with connection
 * strings.
 */
#ifndef PGR_LOG_H
#define PGR_LOG_H

#include "pgr/error.h"
#include "pgr/dsn.h"

#include <stdio.h>

typedef enum pgr_log_level {
    PGR_LOG_ERROR = 0,
    PGR_LOG_WARN = 1,
    PGR_LOG_INFO = 2,
    PGR_LOG_DEBUG = 3,
} pgr_log_level;

typedef enum pgr_log_format { PGR_LOG_TEXT = 0, PGR_LOG_JSON = 1 } pgr_log_format;

/* Context carried by every line; any field may be NULL. */
typedef struct pgr_log_ctx {
    const char *component; /* "agent", "executor", "coordinator", ... */
    const char *tenant;
    const char *job_id;
} pgr_log_ctx;

/* Process-wide settings, set once at start (before threads) from flags or config. */
void pgr_log_setup(pgr_log_level level, pgr_log_format format, FILE *sink);
pgr_log_level pgr_log_get_level(void);

/* Parses "error", "warn", "info", "debug". */
pgr_code pgr_log_level_parse(const char *s, pgr_log_level *out, pgr_error *err);

void pgr_log(pgr_log_level level, const pgr_log_ctx *ctx, const char *fmt, ...) PGR_PRINTF(3, 4);

#define pgr_log_error(ctx, ...) pgr_log(PGR_LOG_ERROR, (ctx), __VA_ARGS__)
#define pgr_log_warn(ctx, ...)  pgr_log(PGR_LOG_WARN, (ctx), __VA_ARGS__)
#define pgr_log_info(ctx, ...)  pgr_log(PGR_LOG_INFO, (ctx), __VA_ARGS__)
#define pgr_log_debug(ctx, ...) pgr_log(PGR_LOG_DEBUG, (ctx), __VA_ARGS__)

#endif
