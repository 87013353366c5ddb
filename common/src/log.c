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

/* Length of the value starting at p in a key=value DSN (quoted or bare). */
static size_t dsn_value_len(const char *p)
{
    size_t n = 0;
    if (*p == '\'') {
        n = 1;
        while (p[n] != '\0' && p[n] != '\'') {
            if (p[n] == '\\' && p[n + 1] != '\0')
                n++;
            n++;
        }
        return p[n] == '\'' ? n + 1 : n;
    }
    while (p[n] != '\0' && p[n] != ' ')
        n++;
    return n;
}

static void redact_uri(const char *dsn, char *out, size_t outlen)
{
    /* postgresql://user:secret@host/db -> postgresql://user:***@host/db */
    const char *scheme = strstr(dsn, "://");
    const char *at = strchr(dsn, '@');
    const char *colon = scheme != NULL ? strchr(scheme + 3, ':') : NULL;
    if (scheme == NULL || at == NULL || colon == NULL || colon > at) {
        snprintf(out, outlen, "%s", dsn);
    } else {
        snprintf(out, outlen, "%.*s:***%s", (int)(colon - dsn), dsn, at);
    }
    /* A password may also be passed as a query parameter. */
    char *q = strstr(out, "password=");
    if (q != NULL) {
        q += strlen("password=");
        char *end = strchr(q, '&');
        size_t rest = end != NULL ? strlen(end) : 0;
        if ((size_t)(q - out) + 3 + rest < outlen) {
            memmove(q + 3, end != NULL ? end : q + strlen(q), rest + 1);
            memcpy(q, "***", 3);
        }
    }
}

/* The text form: the DSN as written, password values replaced (key=value and URI forms). */
static void redact_text(const char *dsn, char *out, size_t outlen)
{
    size_t o = 0;

    if (outlen == 0)
        return;
    if (strstr(dsn, "://") != NULL) {
        redact_uri(dsn, out, outlen);
        return;
    }
    for (const char *p = dsn; *p != '\0' && o + 1 < outlen;) {
        if (strncmp(p, "password", 8) == 0 && (p == dsn || p[-1] == ' ')) {
            const char *eq = p + 8;
            while (*eq == ' ')
                eq++;
            if (*eq == '=') {
                eq++;
                while (*eq == ' ')
                    eq++;
                int w = snprintf(out + o, outlen - o, "password=***");
                o += (size_t)w < outlen - o ? (size_t)w : outlen - o - 1;
                p = eq + dsn_value_len(eq);
                continue;
            }
        }
        out[o++] = *p++;
    }
    out[o] = '\0';
}

bool pgr_log_dsn_is_conninfo(const char *dsn)
{
    return strchr(dsn, '=') != NULL || strncmp(dsn, "postgresql://", 13) == 0 ||
           strncmp(dsn, "postgres://", 11) == 0;
}

bool pgr_log_dsn_valid(const char *dsn)
{
    if (!pgr_log_dsn_is_conninfo(dsn))
        return true;
    PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
    PQconninfoFree(opts);
    return opts != NULL;
}

bool pgr_log_dsn_secret_in(const char *dsn, const char *text)
{
    PQconninfoOption *opts = pgr_log_dsn_is_conninfo(dsn) ? PQconninfoParse(dsn, NULL) : NULL;
    bool found = false;
    /* libpq marks the options that hold secrets (password, sslpassword) with dispchar "*" */
    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL && !found; o++) {
        if (o->dispchar != NULL && o->dispchar[0] == '*' && o->val != NULL && o->val[0] != '\0')
            found = strstr(text, o->val) != NULL;
    }
    PQconninfoFree(opts);
    return found;
}

/* The parsed form: every option that is set, secrets as "***", values quoted when needed. */
static void redact_parsed(const PQconninfoOption *opts, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    for (const PQconninfoOption *p = opts; p->keyword != NULL && o + 1 < outlen; p++) {
        if (p->val == NULL)
            continue;
        bool secret = p->dispchar != NULL && p->dispchar[0] == '*';
        bool quote = !secret && (p->val[0] == '\0' || strpbrk(p->val, " \t\n'\\") != NULL);
        int w = snprintf(out + o, outlen - o, "%s%s=%s%s%s", o > 0 ? " " : "", p->keyword,
                         quote ? "'" : "", secret ? "***" : p->val, quote ? "'" : "");
        o += w > 0 && (size_t)w < outlen - o ? (size_t)w : outlen - o - 1;
    }
}

void pgr_log_redact_dsn(const char *dsn, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    if (!pgr_log_dsn_is_conninfo(dsn)) {
        snprintf(out, outlen, "%s", dsn);
        return;
    }
    /* A string libpq cannot parse is not shown at all: where the parse fails is unknown, so a
     * password may sit anywhere in it (an unquoted space, a bad %-escape in a URI). */
    PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
    if (opts == NULL) {
        snprintf(out, outlen, "(invalid connection string, not shown)");
        return;
    }
    /* The form as written, in full; if a secret still shows (a tab before "password", an
     * "sslpassword"), the parsed form instead. */
    size_t cap = 2 * strlen(dsn) + 64;
    char *full = malloc(cap);
    if (full != NULL)
        redact_text(dsn, full, cap);
    if (full != NULL && !pgr_log_dsn_secret_in(dsn, full))
        snprintf(out, outlen, "%s", full);
    else
        redact_parsed(opts, out, outlen);
    free(full);
    PQconninfoFree(opts);
}
