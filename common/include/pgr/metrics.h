/*
 * metrics.h - Prometheus metrics of a process: counters, gauges and histograms with labels, kept
 * in a fixed table that is updated with atomics (the job path never waits for a scrape), and
 * served as the text exposition format (version 0.0.4) on GET /metrics by libmicrohttpd's own
 * thread. Off unless `[metrics] listen` is set.
 *
 * Names follow Prometheus conventions: `pgrollout_` prefix, `_total` counters, `_seconds`
 * histograms; labels are a rendered list `k="v",k="v"` (values escaped by the caller's choice of
 * bounded values: no tenant ids, which are unbounded).
 */
#ifndef PGR_METRICS_H
#define PGR_METRICS_H

#include "pgr/error.h"

#include <stdbool.h>

typedef struct pgr_metrics pgr_metrics;

typedef enum pgr_metric_type {
    PGR_METRIC_COUNTER,
    PGR_METRIC_GAUGE,
    PGR_METRIC_HISTOGRAM
} pgr_metric_type;

/* A new table (up to 512 series). NULL when out of memory. */
pgr_metrics *pgr_metrics_new(void);
/* Stops the server (if any) and frees the table. NULL is fine. */
void pgr_metrics_free(pgr_metrics *m);

/* Serves the table on listen ("HOST:PORT", IPv4 literal) until pgr_metrics_free. */
pgr_code pgr_metrics_serve(pgr_metrics *m, const char *listen, pgr_error *err) PGR_MUSTCHECK;

/* Adds n to a counter (created at its first use). m NULL: nothing (metrics off). */
void pgr_metrics_add(pgr_metrics *m, const char *name, const char *help, const char *labels,
                     long long n);
/* Sets a gauge (integer values; seconds since the epoch for timestamps). */
void pgr_metrics_set(pgr_metrics *m, const char *name, const char *help, const char *labels,
                     long long v);
/* Observes a duration in a histogram of seconds (buckets 0.01 s to 600 s). */
void pgr_metrics_observe(pgr_metrics *m, const char *name, const char *help, const char *labels,
                         double seconds);

/* The text exposition of every series (malloc'ed). */
char *pgr_metrics_render(pgr_metrics *m);

#endif
