/*
 * metrics.c - Prometheus metrics (metrics.h). A series is found by a lock-free scan of the
 * published entries; a new one is added under a mutex and published by the count's release
 * store, so readers (the scrape thread, other workers) see only complete entries.
 */
#include "pgr/metrics.h"
#include "pgr/buf.h"

#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SERIES 512
#define NBUCKETS   10

static const double BUCKETS[NBUCKETS] = {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 600};

typedef struct series {
    char name[96];
    char help[160];
    char labels[160];
    pgr_metric_type type;
    atomic_llong value;            /* counter, gauge; histogram: count */
    atomic_llong sum_us;           /* histogram */
    atomic_llong bucket[NBUCKETS]; /* histogram: observations <= BUCKETS[i] (not cumulative) */
} series;

struct pgr_metrics {
    series s[MAX_SERIES];
    atomic_size_t count;
    pthread_mutex_t add_mu;
    struct MHD_Daemon *http;
};

pgr_metrics *pgr_metrics_new(void)
{
    pgr_metrics *m = calloc(1, sizeof(*m));
    if (m != NULL)
        pthread_mutex_init(&m->add_mu, NULL);
    return m;
}

void pgr_metrics_free(pgr_metrics *m)
{
    if (m == NULL)
        return;
    if (m->http != NULL)
        MHD_stop_daemon(m->http);
    pthread_mutex_destroy(&m->add_mu);
    free(m);
}

static series *find(pgr_metrics *m, const char *name, const char *labels, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(m->s[i].name, name) == 0 && strcmp(m->s[i].labels, labels) == 0)
            return &m->s[i];
    }
    return NULL;
}

/* The series of name and labels, added when new; NULL when the table is full. */
static series *get(pgr_metrics *m, const char *name, const char *help, const char *labels,
                   pgr_metric_type type)
{
    labels = labels != NULL ? labels : "";
    series *s = find(m, name, labels, atomic_load_explicit(&m->count, memory_order_acquire));
    if (s != NULL)
        return s;
    pthread_mutex_lock(&m->add_mu);
    size_t n = atomic_load_explicit(&m->count, memory_order_relaxed);
    s = find(m, name, labels, n);
    if (s == NULL && n < MAX_SERIES) {
        s = &m->s[n];
        snprintf(s->name, sizeof(s->name), "%s", name);
        snprintf(s->help, sizeof(s->help), "%s", help);
        snprintf(s->labels, sizeof(s->labels), "%s", labels);
        s->type = type;
        atomic_store_explicit(&m->count, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&m->add_mu);
    return s;
}

void pgr_metrics_add(pgr_metrics *m, const char *name, const char *help, const char *labels,
                     long long n)
{
    series *s = m != NULL ? get(m, name, help, labels, PGR_METRIC_COUNTER) : NULL;
    if (s != NULL)
        atomic_fetch_add(&s->value, n);
}

void pgr_metrics_set(pgr_metrics *m, const char *name, const char *help, const char *labels,
                     long long v)
{
    series *s = m != NULL ? get(m, name, help, labels, PGR_METRIC_GAUGE) : NULL;
    if (s != NULL)
        atomic_store(&s->value, v);
}

void pgr_metrics_observe(pgr_metrics *m, const char *name, const char *help, const char *labels,
                         double seconds)
{
    series *s = m != NULL ? get(m, name, help, labels, PGR_METRIC_HISTOGRAM) : NULL;
    if (s == NULL)
        return;
    for (int i = 0; i < NBUCKETS; i++) {
        if (seconds <= BUCKETS[i]) {
            atomic_fetch_add(&s->bucket[i], 1);
            break;
        }
    }
    atomic_fetch_add(&s->sum_us, (long long)(seconds * 1e6));
    atomic_fetch_add(&s->value, 1);
}

/* `name{labels,extra}` */
static void series_name(pgr_buf *b, const series *s, const char *suffix, const char *extra)
{
    bool any = s->labels[0] != '\0' || extra != NULL;
    PGR_IGNORE(pgr_buf_appendf(b, "%s%s%s%s%s%s%s", s->name, suffix, any ? "{" : "", s->labels,
                               s->labels[0] != '\0' && extra != NULL ? "," : "",
                               extra != NULL ? extra : "", any ? "}" : ""));
}

static void render_one(pgr_buf *b, const series *s)
{
    if (s->type != PGR_METRIC_HISTOGRAM) {
        series_name(b, s, "", NULL);
        PGR_IGNORE(pgr_buf_appendf(b, " %lld\n", (long long)atomic_load(&s->value)));
        return;
    }
    long long cum = 0;
    for (int i = 0; i < NBUCKETS; i++) {
        char le[48];
        cum += atomic_load(&s->bucket[i]);
        snprintf(le, sizeof(le), "le=\"%g\"", BUCKETS[i]);
        series_name(b, s, "_bucket", le);
        PGR_IGNORE(pgr_buf_appendf(b, " %lld\n", cum));
    }
    long long count = atomic_load(&s->value);
    series_name(b, s, "_bucket", "le=\"+Inf\"");
    PGR_IGNORE(pgr_buf_appendf(b, " %lld\n", count > cum ? count : cum));
    series_name(b, s, "_sum", NULL);
    PGR_IGNORE(pgr_buf_appendf(b, " %.6f\n", (double)atomic_load(&s->sum_us) / 1e6));
    series_name(b, s, "_count", NULL);
    PGR_IGNORE(pgr_buf_appendf(b, " %lld\n", count > cum ? count : cum));
}

char *pgr_metrics_render(pgr_metrics *m)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    pgr_buf b;
    pgr_buf_init(&b);
    size_t n = atomic_load_explicit(&m->count, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = strcmp(m->s[k].name, m->s[i].name) == 0;
        if (seen)
            continue; /* its family was written with the first series of the name */
        PGR_IGNORE(pgr_buf_appendf(&b, "# HELP %s %s\n# TYPE %s %s\n", m->s[i].name, m->s[i].help,
                                   m->s[i].name, types[m->s[i].type]));
        for (size_t k = i; k < n; k++) {
            if (strcmp(m->s[k].name, m->s[i].name) == 0)
                render_one(&b, &m->s[k]);
        }
    }
    if (b.data == NULL)
        PGR_IGNORE(pgr_buf_append(&b, "", 0));
    return b.data;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)state;
    pgr_metrics *m = cls;
    bool ok = strcmp(method, "GET") == 0 && strcmp(url, "/metrics") == 0;
    char *text = ok ? pgr_metrics_render(m) : strdup("not found: GET /metrics\n");
    if (text == NULL)
        return MHD_NO;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type",
                            ok ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain");
    enum MHD_Result rc = MHD_queue_response(c, ok ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND, r);
    MHD_destroy_response(r);
    return rc;
}

pgr_code pgr_metrics_serve(pgr_metrics *m, const char *listen, pgr_error *err)
{
    char host[64];
    int port = 0;
    const char *colon = strrchr(listen, ':');
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    if (colon == NULL || (size_t)(colon - listen) >= sizeof(host) ||
        sscanf(colon + 1, "%d", &port) != 1 || port < 1 || port > 65535)
        return pgr_error_set(err, PGR_ERR_CONFIG,
                             "metrics.listen \"%s\": expected HOST:PORT (an IPv4 address)", listen);
    snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return pgr_error_set(err, PGR_ERR_CONFIG,
                             "metrics.listen \"%s\": %s is not an IPv4 address", listen, host);
    addr.sin_port = htons((uint16_t)port);
    m->http = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port,
                               NULL, NULL, answer, m, MHD_OPTION_SOCK_ADDR,
                               (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT, 16u,
                               MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (m->http == NULL)
        return pgr_error_set(err, PGR_ERR_IO, "metrics.listen \"%s\": could not listen (in use?)",
                             listen);
    return PGR_OK;
}
