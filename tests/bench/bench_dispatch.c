/* bench_dispatch.c - dispatch latency: publish a signed job, wait for the agent's first
 * `step started` event of that job (the round trip through Kafka both ways, an upper bound of
 * the one-way latency), wait for its result, next job. Jobs alternate between applying one
 * trivial migration and rolling it back, so every job runs exactly one step.
 *
 *   bench_dispatch --bootstrap HOST:PORT --prefix P --key coord.key --keyring agents.ring
 *                  --tenant ID --jobs N
 *
 * Prints one latency in milliseconds per job on stdout; a summary on stderr. */
#include "bench_util.h"

#include "pgr/keyring.h"
#include "pgr/keys.h"

#include <getopt.h>

#define MIGRATION                                                                                  \
    "-- pgrollout:up\n-- pgrollout:step sql\nSELECT 1;\n-- pgrollout:down\n-- pgrollout:step "     \
    "sql\nSELECT 1;\n"
#define VERSION "20300101000000"

typedef struct probe {
    const char *bootstrap, *prefix, *key, *keyring, *tenant;
    int jobs;
    pgr_keypair kp;
    pgr_keyring *agents;
    rd_kafka_t *producer, *consumer;
    char topic_jobs[256];
} probe;

static void parse_args(int argc, char **argv, probe *p)
{
    static const struct option opts[] = {{"bootstrap", required_argument, NULL, 'b'},
                                         {"prefix", required_argument, NULL, 'p'},
                                         {"key", required_argument, NULL, 'k'},
                                         {"keyring", required_argument, NULL, 'r'},
                                         {"tenant", required_argument, NULL, 't'},
                                         {"jobs", required_argument, NULL, 'n'},
                                         {NULL, 0, NULL, 0}};
    int c;
    p->jobs = 1000;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'b')
            p->bootstrap = optarg;
        else if (c == 'p')
            p->prefix = optarg;
        else if (c == 'k')
            p->key = optarg;
        else if (c == 'r')
            p->keyring = optarg;
        else if (c == 't')
            p->tenant = optarg;
        else if (c == 'n')
            p->jobs = (int)strtol(optarg, NULL, 10);
        else
            bench_die("usage", "see the comment at the top of bench_dispatch.c");
    }
    if (p->bootstrap == NULL || p->prefix == NULL || p->key == NULL || p->keyring == NULL ||
        p->tenant == NULL || p->jobs < 1)
        bench_die("usage", "--bootstrap, --prefix, --key, --keyring, --tenant are required");
}

/* The signed envelope of job number i (odd: apply, even: roll back). */
static char *job_envelope(probe *p, const pgr_migration_set *set, int i, char job_id[37])
{
    pgr_job job;
    memset(&job, 0, sizeof(job));
    snprintf(job.type, sizeof(job.type), "%s", i % 2 ? "apply" : "rollback");
    bench_uuid4(job.job_id);
    snprintf(job_id, 37, "%s", job.job_id);
    job.rollout_id = (char *)(uintptr_t) "bench-dispatch";
    job.tenant_id = (char *)(uintptr_t)p->tenant;
    job.seq = i;
    job.issued_at = time(NULL);
    job.expires_at = job.issued_at + 3600;
    job.operator_name = (char *)(uintptr_t) "bench";
    job.target = (char *)(uintptr_t)(i % 2 ? VERSION : "0");
    job.options.lock_timeout_ms = 5000;
    job.options.retries = 5;
    char *payload = pgr_job_build(&job, set);
    char *env = pgr_envelope_seal(PGR_DOMAIN_JOB, &p->kp, payload, strlen(payload));
    free(payload);
    return env;
}

/* The next event of job_id: 1 = step started, 2 = result succeeded, -1 = failure. */
static int next_event(probe *p, const char *job_id, double deadline)
{
    while (bench_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(p->consumer, 100);
        if (m == NULL)
            continue;
        char *payload = NULL, kid[PGR_KID_LEN];
        size_t len = 0;
        pgr_envelope_reject why;
        int got = 0;
        if (m->err == 0 &&
            pgr_envelope_open(m->payload, m->len, 1 << 20, PGR_DOMAIN_EVENT, p->agents, &payload,
                              &len, NULL, kid, &why, NULL) == PGR_OK) {
            json_t *ev = json_loadb(payload, len, 0, NULL);
            const char *id = json_string_value(json_object_get(ev, "job_id"));
            const char *type = json_string_value(json_object_get(ev, "type"));
            const char *state = json_string_value(json_object_get(ev, "state"));
            const char *outcome = json_string_value(json_object_get(ev, "outcome"));
            if (id != NULL && strcmp(id, job_id) == 0 && type != NULL) {
                if (strcmp(type, "step") == 0 && state != NULL && strcmp(state, "started") == 0)
                    got = 1;
                else if (strcmp(type, "result") == 0)
                    got = outcome != NULL && strcmp(outcome, "succeeded") == 0 ? 2 : -1;
                else if (strcmp(type, "security") == 0)
                    got = -1;
            }
            json_decref(ev);
            free(payload);
        }
        rd_kafka_message_destroy(m);
        if (got != 0)
            return got;
    }
    return -1;
}

static void setup(probe *p)
{
    pgr_error err;
    if (pgr_crypto_init(&err) != PGR_OK || pgr_keys_load_secret(p->key, &p->kp, &err) != PGR_OK ||
        pgr_keyring_load(p->keyring, &p->agents, &err) != PGR_OK)
        bench_die("keys", err.msg);
    pgr_config *cfg = bench_config(p->bootstrap, p->prefix, NULL);
    if (pgr_kafka_producer_new(cfg, &p->producer, NULL, &err) != PGR_OK)
        bench_die("producer", err.msg);
    p->consumer = bench_consumer(cfg, PGR_TOPIC_EVENTS, RD_KAFKA_OFFSET_END);
    pgr_kafka_topic_name(cfg, PGR_TOPIC_JOBS, p->topic_jobs, sizeof(p->topic_jobs));
    pgr_config_free(cfg);
    /* let the consumer resolve its end offsets before the first job */
    for (double until = bench_now_ms() + 1500; bench_now_ms() < until;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(p->consumer, 100);
        if (m != NULL)
            rd_kafka_message_destroy(m);
    }
}

int main(int argc, char **argv)
{
    probe p;
    pgr_migration *m = NULL;
    pgr_error err;
    memset(&p, 0, sizeof(p));
    parse_args(argc, argv, &p);
    setup(&p);
    pgr_migration_set *set = pgr_migration_set_new();
    if (pgr_migration_parse(MIGRATION, strlen(MIGRATION), VERSION "-bench-trivial.sql", &m, &err) !=
            PGR_OK ||
        pgr_migration_set_add(set, m, &err) != PGR_OK)
        bench_die("migration", err.msg);
    double sum = 0;
    for (int i = 1; i <= p.jobs; i++) {
        char job_id[37];
        char *env = job_envelope(&p, set, i, job_id);
        double t0 = bench_now_ms();
        if (pgr_kafka_send(p.producer, p.topic_jobs, p.tenant, env, strlen(env), &err) != PGR_OK)
            bench_die("send", err.msg);
        rd_kafka_flush(p.producer, 10000);
        free(env);
        if (next_event(&p, job_id, t0 + 30000) != 1)
            bench_die("job", "no step started within 30 s, or the job failed");
        double lat = bench_now_ms() - t0;
        printf("%.2f\n", lat);
        sum += lat;
        if (next_event(&p, job_id, t0 + 60000) != 2)
            bench_die("job", "no succeeded result within 60 s");
    }
    fprintf(stderr, "bench_dispatch: %d jobs, mean %.2f ms\n", p.jobs, sum / p.jobs);
    pgr_migration_set_free(set);
    rd_kafka_consumer_close(p.consumer);
    rd_kafka_destroy(p.consumer);
    rd_kafka_destroy(p.producer);
    pgr_keyring_free(p.agents);
    return 0;
}
