/*
 * pool_env.h - helpers of the agent-pool and Kafka-cluster tests (fault/test_pool.c,
 * fault/test_cluster.c, soak/test_soak_pool_cluster.c): who owns a tenant, the audit chain's
 * fencing order, and a three-broker Kafka cluster of their own
 * (`PGR_KAFKA_BROKERS=3 PGR_SERVICES=kafka deploy/local/services.sh`).
 */
#ifndef PGR_POOL_ENV_H
#define PGR_POOL_ENV_H

#include "rollout_env.h"

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <time.h>

#define POOL_SERVICES PGR_SOURCE_DIR "/deploy/local/services.sh"
#define POOL_BROKERS  3

static inline void pool_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The agent (0-based) that pgrollout.owner of tenant t names, or -1. */
static inline int pool_owner_of(const fleet *f, int t)
{
    PGconn *c = itest_connect(f->db[t]);
    long a = itest_scalar_or(c,
                             "SELECT coalesce((SELECT substr(agent_id, 7)::int FROM "
                             "pgrollout.owner WHERE id = 1), 0)",
                             0);
    PQfinish(c);
    return (int)a - 1;
}

/* The owner of a tenant whose apply job is running index builds, once there is one (until:
 * now_s() deadline), or -1. */
static inline int pool_busy_owner(const fleet *f, double until)
{
    for (; now_s() < until; pool_sleep_ms(50)) {
        for (int t = 0; t < f->n; t++) {
            PGconn *c = itest_connect(f->db[t]);
            long busy = itest_scalar_or(c,
                                        "SELECT count(*) FROM pgrollout.jobs j WHERE state = "
                                        "'running' AND EXISTS (SELECT 1 FROM pgrollout.steps s "
                                        "WHERE s.job_id = j.job_id AND s.kind = 'index')",
                                        0);
            PQfinish(c);
            if (busy > 0)
                return pool_owner_of(f, t);
        }
    }
    return -1;
}

/* Walks tenant t's audit chain in order. Once an agent took the tenant over and started a job
 * there, a record of any other agent is a step run beside it. strict_agent (>= 0): that agent
 * may write nothing at all after another agent took the tenant over. */
static inline void pool_assert_fenced_chain(const fleet *f, int t, int strict_agent)
{
    char strict[32];
    snprintf(strict, sizeof(strict), "agent-%d", strict_agent + 1);
    PGconn *c = itest_connect(f->db[t]);
    PGresult *r = PQexec(c, "SELECT seq, record::jsonb->>'action', record::jsonb->>'agent_id' "
                            "FROM pgrollout.audit_outbox ORDER BY seq");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    char owner[64] = "";
    bool started = false;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *action = PQgetvalue(r, i, 1), *agent = PQgetvalue(r, i, 2);
        if (strcmp(action, "tenant_taken_over") == 0) {
            snprintf(owner, sizeof(owner), "%s", agent);
            started = false;
            continue;
        }
        if (owner[0] == '\0' || agent[0] == '\0')
            continue;
        if (strcmp(agent, owner) == 0) {
            started = started || strcmp(action, "job_start") == 0;
            continue;
        }
        if (started || (strict_agent >= 0 && strcmp(agent, strict) == 0))
            fail_msg("tenant %s: record %s (%s) of %s after %s took the tenant over", f->tenant[t],
                     PQgetvalue(r, i, 0), action, agent, owner);
    }
    PQclear(r);
    PQfinish(c);
}

/* No step of the tenant recorded done twice (a take-over resumes, never repeats). */
static inline void pool_assert_steps_done_once(PGconn *c)
{
    assert_int_equal(itest_scalar(c, "SELECT coalesce(max(n), 1) FROM (SELECT count(*) AS n "
                                     "FROM pgrollout.audit_outbox WHERE record::jsonb->>'action' "
                                     "= 'step_done' GROUP BY record::jsonb->>'version', "
                                     "record::jsonb->>'part', record::jsonb->>'step') s"),
                     1);
}

/* A plan of every tenant of f in one wave. */
static inline void pool_plan(const fleet *f, char *buf, size_t len, const char *name,
                             const char *target, int parallel)
{
    int n = snprintf(buf, len,
                     "{\"name\": \"%s\", \"migrations\": \"" PGR_SOURCE_DIR "/migrations\", "
                     "\"target\": \"%s\", \"waves\": [{\"name\": \"all\", \"percent\": 100, "
                     "\"max_parallel\": %d}], \"tenants\": [",
                     name, target, parallel);
    for (int t = 0; t < f->n; t++)
        n += snprintf(buf + n, len - (size_t)n, "%s\"%s\"", t > 0 ? ", " : "", f->tenant[t]);
    snprintf(buf + n, len - (size_t)n, "]}");
}

/* The state dir of the cluster of this test program (pool_cluster_up). */
static char pool_cluster_dir[64];

/* services.sh ARGS on the cluster's state dir; its output into out. */
static inline int pool_cluster_cmd(const char *args, char *out, size_t outlen)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "PGR_STATE_DIR=%s PGR_SERVICES=kafka PGR_KAFKA_BROKERS=%d " POOL_SERVICES " %s",
             pool_cluster_dir, POOL_BROKERS, args);
    return run_cmd(cmd, out, outlen);
}

/* Starts the three-broker cluster and points PGR_KAFKA_BOOTSTRAP (the fleet's) at it; false
 * (said on stderr) when it did not start. */
static inline bool pool_cluster_up(char *out, size_t outlen)
{
    char boot[256];
    snprintf(pool_cluster_dir, sizeof(pool_cluster_dir), "/tmp/pgrcluster.%d", (int)getpid());
    const char *p = pool_cluster_cmd("up", out, outlen) == 0
                        ? strstr(out, "export PGR_KAFKA_BOOTSTRAP=")
                        : NULL;
    if (p == NULL || sscanf(p + strlen("export PGR_KAFKA_BOOTSTRAP="), "%255s", boot) != 1) {
        fprintf(stderr, "could not start the three-broker cluster:\n%s\n", out);
        return false;
    }
    setenv("PGR_KAFKA_BOOTSTRAP", boot, 1);
    return true;
}

/* The broker (1-3) that leads most partitions of topic; every partition must have 3 copies. */
static inline int pool_busiest_leader(const char *topic)
{
    char errstr[256];
    int lead[POOL_BROKERS + 1] = {0}, best = 1;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", getenv("PGR_KAFKA_BOOTSTRAP"), errstr,
                      sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    assert_int_equal(rd_kafka_metadata(rk, 0, t, &md, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(md->topic_cnt, 1);
    for (int p = 0; p < md->topics[0].partition_cnt; p++) {
        int32_t l = md->topics[0].partitions[p].leader;
        assert_int_equal(md->topics[0].partitions[p].replica_cnt, POOL_BROKERS);
        if (l >= 1 && l <= POOL_BROKERS)
            lead[l]++;
    }
    printf("%s: %d partitions, 3 copies each, led by broker 1: %d, 2: %d, 3: %d\n", topic,
           md->topics[0].partition_cnt, lead[1], lead[2], lead[3]);
    for (int b = 2; b <= POOL_BROKERS; b++)
        best = lead[b] > lead[best] ? b : best;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    rd_kafka_destroy(rk);
    return best;
}

#endif
