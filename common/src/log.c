/* log.c - text or JSON-lines logging with context; the only place common/ writes to stderr. */
#include "pgr/log.h"
#include "pgr/term.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Set once at start-up, read-only afterwards (the "loaded config" exception to no globals). */
static pgr_log_level log_level = PGR_LOG_INFO;
static pgr_log_format log_format = PGR_LOG_TEXT;
static FILE *log_sink = NULL;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void pgr_log_setup(pgr_log_level level, pgr_log_format format, FILE *sink)
{
    log_level = level;
    log_format = format;
    log_sink = sink;
}

pgr_log_level pgr_log_get_level(void)
{
    return log_level;
}

pgr_code pgr_log_level_parse(const char *s, pgr_log_level *out, pgr_error *err)
{
    for (int i = 0; i <= PGR_LOG_DEBUG; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (pgr_log_level)i;
            return PGR_OK;
        }
    }
    return pgr_error_set(err, PGR_ERR_INVALID,
                         "invalid log level \"%s\": expected error, warn, info or debug", s);
}

static void log_timestamp(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

static void log_write_json(FILE *out, const char *ts, pgr_log_level level, const pgr_log_ctx *ctx,
                           const char *msg)
{
    json_t *o = json_object();
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "level", json_string(level_names[level]));
    if (ctx != NULL && ctx->component != NULL)
        json_object_set_new(o, "component", json_string(ctx->component));
    if (ctx != NULL && ctx->tenant != NULL)
        json_object_set_new(o, "tenant", json_string(ctx->tenant));
    if (ctx != NULL && ctx->job_id != NULL)
        json_object_set_new(o, "job_id", json_string(ctx->job_id));
    json_object_set_new(o, "msg", json_string(msg));
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (line != NULL) {
        fprintf(out, "%s\n", line);
        free(line);
    }
    json_decref(o);
}

/* A text log line goes to a terminal or a journal: the tenant, the job id and the message may
 * quote a Kafka message, so the whole line is escaped (term.h) and stays one line. */
static void log_write_text(FILE *out, const char *ts, pgr_log_level level, const pgr_log_ctx *ctx,
                           const char *msg)
{
    char head[512];
    size_t n = (size_t)snprintf(head, sizeof(head), "%s %-5s", ts, level_names[level]);
    if (ctx != NULL && ctx->component != NULL && n < sizeof(head))
        n += (size_t)snprintf(head + n, sizeof(head) - n, " [%s]", ctx->component);
    if (ctx != NULL && ctx->tenant != NULL && n < sizeof(head))
        n += (size_t)snprintf(head + n, sizeof(head) - n, " tenant=%s", ctx->tenant);
    if (ctx != NULL && ctx->job_id != NULL && n < sizeof(head))
        snprintf(head + n, sizeof(head) - n, " job=%s", ctx->job_id);
    pgr_term_printf(out, "%s %s", head, msg);
}

void pgr_log(pgr_log_level level, const pgr_log_ctx *ctx, const char *fmt, ...)
{
    char msg[2048];
    char ts[40];
    va_list ap;
    FILE *out = log_sink != NULL ? log_sink : stderr;

    if (level > log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_timestamp(ts, sizeof(ts));
    if (log_format == PGR_LOG_JSON)
        log_write_json(out, ts, level, ctx, msg);
    else
        log_write_text(out, ts, level, ctx, msg);
    fflush(out);
}
