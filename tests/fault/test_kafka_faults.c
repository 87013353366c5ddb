/*
 * test_kafka_faults.c - broker faults during a rollout, injected with librdkafka's MOCK cluster
 * (rdkafka_mock.h; labelled as such: the broker here is the in-process mock, three brokers, so
 * that faults can be scheduled precisely). PostgreSQL is the real server of tests/run.sh.
 *
 * While a rollout of 6 tenants runs (2 agents, one at a time), a fault thread injects:
 * retriable errors on Produce; errors on OffsetCommit; a leader change of every partition; all
 * brokers down for 5 s; then a restart of agent 1 (it re-reads from its last committed
 * offsets, which the commit errors left behind). The rollout must complete, and nothing may be
 * lost or done twice: each tenant has exactly one apply job, each migration applied once, every
 * job event on the topic stored once in the control database, agent 2's events on the topic
 * form the unbroken sequence 1..n with no duplicate, and every audit record of every tenant's
 * outbox is on the audit topic.
 */
#include "rollout_env.h"

#include <stdatomic.h>
#include <jansson.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <time.h>

#include "pgr/crypto.h"

#define MIGS     PGR_SOURCE_DIR "/migrations"
#define TENANTS  6
#define NBROKERS 3
#define NPARTS   6
/* Kafka protocol API keys (rdkafka_protocol.h is not installed) */
#define API_PRODUCE       0
#define API_OFFSET_COMMIT 8

static fleet F;
static char out[1 << 20];
static rd_kafka_t *mock_host;
static rd_kafka_mock_cluster_t *mc;
static atomic_int faults_done;
static _Atomic double brokers_up_at;
static double started;
static char fault_log[4096];

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void note(const char *what)
{
    size_t n = strlen(fault_log);
    snprintf(fault_log + n, sizeof(fault_log) - n, "%.1f s: %s\n", now_s() - started, what);
}

static int setup(void **state)
{
    (void)state;
    char errstr[256], topic[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
    mock_host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    assert_non_null(mock_host);
    mc = rd_kafka_mock_cluster_new(mock_host, NBROKERS);
    assert_non_null(mc);
    setenv("PGR_KAFKA_BOOTSTRAP", rd_kafka_mock_cluster_bootstraps(mc), 1);
    /* The mock answers an injected Produce error without appending, and appends a later batch
     * of the same producer without checking its sequence number. A real broker refuses that
     * batch (OUT_OF_ORDER_SEQUENCE_NUMBER), so librdkafka rightly takes a later batch's success
     * as the acknowledgement of every earlier message; against the mock that would count the
     * refused message as delivered ("implicitly acked by subsequent batch success"). One
     * request in flight per connection keeps a later batch from overtaking a refused one, so
     * what this test checks is the agent, not the mock's missing sequence check. */
    fleet_agent_kafka_extra = "max.in.flight.requests.per.connection = 1\n";
    fleet_setup_n(&F, TENANTS, 65536);
    static const char *const names[] = {"jobs", "events", "audit"};
    for (int i = 0; i < 3; i++) {
        snprintf(topic, sizeof(topic), "%s%s", F.prefix, names[i]);
        assert_int_equal(rd_kafka_mock_topic_create(mc, topic, NPARTS, NBROKERS), 0);
    }
    fleet_start_agent(&F, 0);
    fleet_start_agent(&F, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int a = 0; a < 2; a++) {
        if (F.agent_pid[a] > 0)
            fleet_stop_agent(&F, a, SIGKILL);
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(mock_host);
    return 0;
}

static void set_all_brokers(bool up)
{
    for (int b = 1; b <= NBROKERS; b++) {
        if (up)
            rd_kafka_mock_broker_set_up(mc, b);
        else
            rd_kafka_mock_broker_set_down(mc, b);
    }
}

/* The fault schedule (runs while `pgrollout run` does). No cmocka calls here: not thread safe. */
static void *faults(void *arg)
{
    (void)arg;
    sleep_ms(1500);
    rd_kafka_mock_push_request_errors(
        mc, API_PRODUCE, 6, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND);
    note("6 errors pushed on Produce");
    sleep_ms(1000);
    rd_kafka_mock_push_request_errors(
        mc, API_OFFSET_COMMIT, 8, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS);
    note("8 errors pushed on OffsetCommit");
    sleep_ms(1000);
    static const char *const names[] = {"jobs", "events", "audit"};
    for (int i = 0; i < 3; i++) {
        char topic[256];
        snprintf(topic, sizeof(topic), "%s%s", F.prefix, names[i]);
        for (int p = 0; p < NPARTS; p++)
            rd_kafka_mock_partition_set_leader(mc, topic, p, (p + i + 1) % NBROKERS + 1);
    }
    note("leader of every partition moved");
    sleep_ms(1000);
    set_all_brokers(false);
    note("all brokers down");
    sleep_ms(5000);
    set_all_brokers(true);
    brokers_up_at = now_s();
    note("all brokers up");
    sleep_ms(2000);
    fleet_stop_agent(&F, 0, SIGTERM);
    fleet_start_agent(&F, 0);
    note("agent 1 restarted");
    faults_done = 1;
    return NULL;
}

/* Every message of topic <prefix><name>: each partition is read up to the high watermark it
 * had when reading began (the agents are stopped by then, so nothing is added). */
static int read_topic(const char *name, void (*fn)(const rd_kafka_message_t *m, void *), void *u)
{
    char errstr[256], topic[256];
    int64_t high[NPARTS], next[NPARTS];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", getenv("PGR_KAFKA_BOOTSTRAP"), errstr,
                      sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", "itest-kafka-faults-reader", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    assert_non_null(c);
    snprintf(topic, sizeof(topic), "%s%s", F.prefix, name);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(NPARTS);
    for (int p = 0; p < NPARTS; p++) {
        int64_t low = 0;
        assert_int_equal(rd_kafka_query_watermark_offsets(c, topic, p, &low, &high[p], 10000), 0);
        next[p] = low;
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    assert_int_equal(rd_kafka_assign(c, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    int n = 0, behind = NPARTS;
    for (double until = now_s() + 60; behind > 0 && now_s() < until;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
        if (m != NULL && m->err == 0 && m->partition >= 0 && m->partition < NPARTS) {
            fn(m, u);
            n++;
            next[m->partition] = m->offset + 1;
        }
        if (m != NULL)
            rd_kafka_message_destroy(m);
        behind = 0;
        for (int p = 0; p < NPARTS; p++)
            behind += next[p] < high[p];
    }
    if (behind > 0)
        fail_msg("topic %s: %d partition(s) not read to their end within 60 s", topic, behind);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return n;
}

typedef struct event_tally {
    const pgr_keyring *kr; /* agents.ring: every message must verify */
    PGconn *ctl;
    int job_events, stored;
    long long seq2[4096]; /* agent-2 event seqs as seen on the topic */
    int n2;
} event_tally;

static int cmp_seq(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static void tally_event(const rd_kafka_message_t *m, void *u)
{
    event_tally *t = u;
    json_t *ev = fleet_event_open(t->kr, m);
    const char *agent_id = json_string_value(json_object_get(ev, "agent_id"));
    long long seq = json_integer_value(json_object_get(ev, "seq"));
    if (strcmp(agent_id, "agent-2") == 0 && t->n2 < 4096)
        t->seq2[t->n2++] = seq;
    if (json_is_string(json_object_get(ev, "job_id"))) {
        char digest[PGR_SHA256_HEX_LEN];
        pgr_crypto_sha256_hex(m->payload, m->len, digest);
        const char *params[] = {digest};
        PGresult *r = PQexecParams(t->ctl,
                                   "SELECT count(*) FROM pgrollout_control.events WHERE digest "
                                   "= $1",
                                   1, NULL, params, NULL, NULL, 0);
        t->job_events++;
        t->stored += PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "1") == 0;
        PQclear(r);
    }
    json_decref(ev);
}

typedef struct audit_tally {
    const pgr_keyring *kr;
    char seen[TENANTS][512]; /* tenant index -> seq -> seen */
} audit_tally;

static void tally_audit(const rd_kafka_message_t *m, void *u)
{
    audit_tally *t = u;
    for (int i = 0; i < TENANTS; i++) {
        if (m->key_len == strlen(F.tenant[i]) && memcmp(m->key, F.tenant[i], m->key_len) == 0) {
            json_t *rec = fleet_message_open(t->kr, m, PGR_DOMAIN_AUDIT);
            long long seq = json_integer_value(json_object_get(rec, "seq"));
            if (seq > 0 && seq < 512)
                t->seen[i][seq] = 1;
            json_decref(rec);
        }
    }
}

/* Fails saying what is known of a record that is in the outbox but not on the topic: its
 * action and when it was marked published, and which records of the tenant the topic holds. */
static void audit_missing(int t, long seq, long count, const audit_tally *au)
{
    char seen[2048] = "", params_seq[32];
    size_t n = 0;
    for (long s = 1; s <= count && n + 16 < sizeof(seen); s++) {
        if (au->seen[t][s])
            n += (size_t)snprintf(seen + n, sizeof(seen) - n, "%ld ", s);
    }
    snprintf(params_seq, sizeof(params_seq), "%ld", seq);
    const char *params[] = {params_seq};
    PGconn *c = itest_connect(F.db[t]);
    PGresult *r = PQexecParams(c,
                               "SELECT record::jsonb->>'action', published_at::text, "
                               "record::jsonb->>'ts' FROM pgrollout.audit_outbox WHERE seq = "
                               "$1::bigint",
                               1, NULL, params, NULL, NULL, 0);
    bool found = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    fail_msg("tenant %s: audit record %ld (%s, written %s, marked published %s) is not on the "
             "audit topic; the topic holds records %s(of %ld)",
             F.tenant[t], seq, found ? PQgetvalue(r, 0, 0) : "?", found ? PQgetvalue(r, 0, 2) : "?",
             found ? PQgetvalue(r, 0, 1) : "?", seen, count);
    PQclear(r);
    PQfinish(c);
}

static void test_rollout_survives_broker_faults(void **state)
{
    (void)state;
    pthread_t th;
    char plan[1024];
    snprintf(plan, sizeof(plan),
             "{\"name\": \"kafka-faults\", \"migrations\": \"" MIGS "\", \"target\": "
             "\"20251106000003\", \"options\": {\"orphans\": \"abort\", \"retries\": 5}, "
             "\"tenants\": [\"district-001\", \"district-002\", \"district-003\", "
             "\"district-004\", \"district-005\", \"district-006\"], "
             "\"waves\": [{\"name\": \"all\", \"percent\": 100, \"max_parallel\": 1}]}");
    started = now_s();
    assert_int_equal(pthread_create(&th, NULL, faults, NULL), 0);
    int rc = fleet_run(&F, plan, out, sizeof(out));
    double run_end = now_s();
    pthread_join(th, NULL);
    printf("faults injected:\n%s", fault_log);
    printf("rollout ended at %.1f s\n", run_end - started);
    if (rc != 0)
        fail_msg("rollout under broker faults exited %d:\n%s", rc, out);
    assert_non_null(strstr(out, "rollout kafka-faults: succeeded (0 failed)"));
    /* the broker faults happened while the rollout ran, not after it (the agent restart
     * may come after its end: then it re-reads finished jobs, which must not run again) */
    assert_true(faults_done);
    assert_true(brokers_up_at > 0 && brokers_up_at < run_end);

    /* nothing applied twice, nothing missing */
    for (int t = 0; t < F.n; t++) {
        PGconn *c = itest_connect(F.db[t]);
        assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs WHERE type = "
                                         "'apply'"),
                         1);
        fleet_assert_applied_once(c, 1);
        PQfinish(c);
    }

    /* agents stop cleanly (flushing events and the audit outbox) */
    assert_int_equal(fleet_stop_agent(&F, 0, SIGTERM), 0);
    assert_int_equal(fleet_stop_agent(&F, 1, SIGTERM), 0);

    pgr_keyring *kr = fleet_agents_ring(&F);
    static event_tally ev;
    memset(&ev, 0, sizeof(ev));
    ev.kr = kr;
    ev.ctl = itest_connect(F.ctl_db);
    int n = read_topic("events", tally_event, &ev);
    printf("events topic: %d messages, %d about jobs (%d stored by the coordinator), %d of "
           "agent-2\n",
           n, ev.job_events, ev.stored, ev.n2);
    assert_true(ev.job_events >= TENANTS * 4);
    /* job events after the run's end (none expected) would not be stored: all must be */
    assert_int_equal(ev.stored, ev.job_events);
    /* one process numbers its events one by one from its start: each number once, no hole */
    qsort(ev.seq2, (size_t)ev.n2, sizeof(ev.seq2[0]), cmp_seq);
    for (int i = 1; i < ev.n2; i++) {
        if (ev.seq2[i] != ev.seq2[i - 1] + 1)
            fail_msg("agent-2 event seq %lld follows %lld on the topic", ev.seq2[i],
                     ev.seq2[i - 1]);
    }
    /* each tenant's final result stored exactly once (a job that the restart of agent 1 stopped
     * also reported `interrupted`, depending on timing, before it resumed) */
    assert_int_equal(itest_scalar(ev.ctl, "SELECT count(*) FROM pgrollout_control.events WHERE "
                                          "type = 'result' AND payload->>'job_type' = 'apply' "
                                          "AND payload->>'outcome' IN ('succeeded', 'failed')"),
                     TENANTS);
    PQfinish(ev.ctl);

    static audit_tally au;
    memset(&au, 0, sizeof(au));
    au.kr = kr;
    read_topic("audit", tally_audit, &au);
    pgr_keyring_free(kr);
    for (int t = 0; t < F.n; t++) {
        PGconn *c = itest_connect(F.db[t]);
        assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                         "published_at IS NULL"),
                         0);
        long count = itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox");
        PQfinish(c);
        assert_true(count > 0 && count < 512);
        for (long s = 1; s <= count; s++) {
            if (!au.seen[t][s])
                audit_missing(t, s, count, &au);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rollout_survives_broker_faults),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
