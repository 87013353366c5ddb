/* bench_util.h - helpers shared by the benchmark programs of tests/bench/ (never ctests):
 * a Kafka configuration from a bootstrap address and a topic prefix, clocks, UUIDs, a
 * consumer assigned to every partition of one topic, and signed agent events built the way
 * agent/daemon_events.c builds them (docs/PROTOCOL.md section 9). */
#ifndef PGR_BENCH_UTIL_H
#define PGR_BENCH_UTIL_H

#include "pgr/config.h"
#include "pgr/envelope.h"
#include "pgr/job.h"
#include "pgr/kafka.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline double bench_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static inline void bench_die(const char *what, const char *why)
{
    fprintf(stderr, "bench: %s: %s\n", what, why != NULL ? why : "failed");
    exit(1);
}

static inline void bench_uuid4(char out[37])
{
    uint8_t b[16];
    char hex[33];
    randombytes_buf(b, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    pgr_crypto_hex_encode(b, sizeof(b), hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

/* A configuration carrying only bootstrap.servers, extra [kafka] pairs and the prefix. */
static inline pgr_config *bench_config(const char *bootstrap, const char *prefix,
                                       const char *const *extra)
{
    pgr_config *cfg = pgr_config_new();
    size_t n = 1;
    while (extra != NULL && extra[2 * (n - 1)] != NULL)
        n++;
    cfg->kafka = calloc(n, sizeof(pgr_kv));
    cfg->kafka[0].key = strdup("bootstrap.servers");
    cfg->kafka[0].value = strdup(bootstrap);
    for (size_t i = 1; i < n; i++) {
        cfg->kafka[i].key = strdup(extra[2 * (i - 1)]);
        cfg->kafka[i].value = strdup(extra[2 * (i - 1) + 1]);
    }
    cfg->kafka_count = n;
    free(cfg->topic_prefix);
    cfg->topic_prefix = strdup(prefix);
    return cfg;
}

/* A consumer of every partition of topic t, from offset (RD_KAFKA_OFFSET_END/BEGINNING). */
static inline rd_kafka_t *bench_consumer(const pgr_config *cfg, pgr_topic t, int64_t offset)
{
    char topic[256], group[128];
    rd_kafka_t *c = NULL;
    int parts = 0;
    pgr_error err;
    snprintf(group, sizeof(group), "bench-%d-%ld", (int)getpid(), (long)time(NULL));
    pgr_kafka_topic_name(cfg, t, topic, sizeof(topic));
    if (pgr_kafka_consumer_new(cfg, group, &c, &err) != PGR_OK)
        bench_die("consumer", err.msg);
    if (pgr_kafka_partitions(c, topic, 10000, &parts, &err) != PGR_OK)
        bench_die("partitions", err.msg);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
    for (int p = 0; p < parts; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = offset;
    if (rd_kafka_assign(c, l) != RD_KAFKA_RESP_ERR_NO_ERROR)
        bench_die("assign", topic);
    rd_kafka_topic_partition_list_destroy(l);
    return c;
}

static inline void bench_time_now(char out[32])
{
    pgr_clock_format_utc(time(NULL), out);
}

/* An event payload with the common members of PROTOCOL.md 9.1 followed by body's members. */
static inline char *bench_event(const char *type, const char *agent, const char *tenant,
                                const char *job_id, long long seq, json_t *body)
{
    char at[32];
    bench_time_now(at);
    json_t *o = json_pack("{s:s, s:s, s:s?, s:s?, s:I, s:s}", "type", type, "agent_id", agent,
                          "tenant_id", tenant, "job_id", job_id, "seq", (json_int_t)seq, "at", at);
    json_object_update(o, body);
    json_decref(body);
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return text;
}

#endif
