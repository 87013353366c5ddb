/* bench_fleet_sim.c - a load generator that answers a coordinator as a fleet of agents would,
 * so that a rollout over 10,000 tenants measures only the coordinator and Kafka: it reads the
 * jobs topic, verifies each job envelope with the coordinator keyring, and answers with a
 * signed `result` event (succeeded) from the simulated agent serving the tenant; every 5 s each
 * simulated agent sends a signed heartbeat listing its tenants. No database is touched.
 *
 *   bench_fleet_sim --keys DIR --agents A --keyring-out FILE --tenants N
 *       makes A agent keys in DIR and writes their keyring lines (tenants= of each) to FILE
 *   bench_fleet_sim --keys DIR --agents A --tenants N --bootstrap HOST:PORT --prefix P
 *                   --coordinator-keyring FILE
 *       runs until SIGTERM; then prints "jobs J", "events E", "first_job_ms", "last_job_ms".
 * Tenant ids are s00001 ... sNNNNN; agent k (from 0) serves a contiguous block of them. */
#include "bench_util.h"

#include "pgr/keyring.h"
#include "pgr/keys.h"

#include <getopt.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

static volatile sig_atomic_t sim_stop = 0;

static void on_term(int sig)
{
    (void)sig;
    sim_stop = 1;
}

typedef struct sim {
    const char *keys, *keyring_out, *bootstrap, *prefix, *coord_ring;
    int agents, tenants;
    pgr_keypair *kp;
    long long *seq;
    pgr_keyring *coordinators;
    rd_kafka_t *producer, *consumer;
    char topic_events[256];
    long long jobs, events;
    double t0, first_job, last_job;
} sim;

static void parse_args(int argc, char **argv, sim *s)
{
    static const struct option opts[] = {{"keys", required_argument, NULL, 'k'},
                                         {"agents", required_argument, NULL, 'a'},
                                         {"keyring-out", required_argument, NULL, 'o'},
                                         {"tenants", required_argument, NULL, 'n'},
                                         {"bootstrap", required_argument, NULL, 'b'},
                                         {"prefix", required_argument, NULL, 'p'},
                                         {"coordinator-keyring", required_argument, NULL, 'r'},
                                         {NULL, 0, NULL, 0}};
    int c;
    s->agents = 100;
    s->tenants = 10000;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'k')
            s->keys = optarg;
        else if (c == 'a')
            s->agents = (int)strtol(optarg, NULL, 10);
        else if (c == 'o')
            s->keyring_out = optarg;
        else if (c == 'n')
            s->tenants = (int)strtol(optarg, NULL, 10);
        else if (c == 'b')
            s->bootstrap = optarg;
        else if (c == 'p')
            s->prefix = optarg;
        else if (c == 'r')
            s->coord_ring = optarg;
        else
            bench_die("usage", "see the comment at the top of bench_fleet_sim.c");
    }
    if (s->keys == NULL || s->agents < 1 || s->tenants < s->agents)
        bench_die("usage", "--keys is required; tenants >= agents >= 1");
}

static int agent_of(const sim *s, int t) /* t from 1 */
{
    int per = (s->tenants + s->agents - 1) / s->agents;
    return (t - 1) / per;
}

static void make_keys(sim *s)
{
    FILE *f = fopen(s->keyring_out, "w");
    if (f == NULL)
        bench_die("keyring", s->keyring_out);
    if (mkdir(s->keys, 0700) != 0)
        bench_die("keys dir", s->keys);
    for (int a = 0; a < s->agents; a++) {
        char name[32], line[200];
        pgr_keypair kp;
        pgr_error err;
        snprintf(name, sizeof(name), "sim-%03d", a);
        if (pgr_keys_generate(s->keys, name, &kp, &err) != PGR_OK)
            bench_die("keygen", err.msg);
        pgr_keys_format_public(kp.pk, line, sizeof(line));
        fprintf(f, "%s name=%s tenants=", line, name);
        for (int t = 1, n = 0; t <= s->tenants; t++) {
            if (agent_of(s, t) == a)
                fprintf(f, "%ss%05d", n++ > 0 ? "," : "", t);
        }
        fputc('\n', f);
    }
    fclose(f);
}

static void send_event(sim *s, int a, const char *type, const char *tenant, const char *job_id,
                       json_t *body)
{
    char agent[32];
    pgr_error err;
    snprintf(agent, sizeof(agent), "sim-%03d", a);
    char *payload = bench_event(type, agent, tenant, job_id, ++s->seq[a], body);
    char *env = pgr_envelope_seal(PGR_DOMAIN_EVENT, &s->kp[a], payload, strlen(payload));
    if (pgr_kafka_send(s->producer, s->topic_events, tenant != NULL ? tenant : agent, env,
                       strlen(env), &err) != PGR_OK)
        bench_die("send", err.msg);
    s->events++;
    free(payload);
    free(env);
}

static void heartbeats(sim *s)
{
    for (int a = 0; a < s->agents; a++) {
        json_t *tenants = json_array();
        for (int t = 1; t <= s->tenants; t++) {
            char id[16];
            snprintf(id, sizeof(id), "s%05d", t);
            if (agent_of(s, t) == a)
                json_array_append_new(tenants, json_string(id));
        }
        send_event(s, a, "heartbeat", NULL, NULL,
                   json_pack("{s:s, s:o, s:{}, s:i}", "kid", s->kp[a].kid, "tenants", tenants,
                             "tags", "running", 0));
    }
}

/* A job as an agent takes it: verified first, then parsed; answered with its result. */
static void answer(sim *s, const rd_kafka_message_t *m)
{
    char *payload = NULL, kid[PGR_KID_LEN];
    size_t len = 0;
    pgr_envelope_reject why;
    if (pgr_envelope_open(m->payload, m->len, PGR_ENVELOPE_MAX_DEFAULT, PGR_DOMAIN_JOB,
                          s->coordinators, &payload, &len, NULL, kid, &why, NULL) != PGR_OK)
        bench_die("job", "envelope refused");
    json_t *job = json_loadb(payload, len, JSON_REJECT_DUPLICATES, NULL);
    const char *type = json_string_value(json_object_get(job, "type"));
    const char *id = json_string_value(json_object_get(job, "job_id"));
    const char *tenant = json_string_value(json_object_get(job, "tenant_id"));
    if (type == NULL || id == NULL || tenant == NULL || tenant[0] != 's')
        bench_die("job", "not a job of this simulation");
    s->jobs++;
    s->last_job = bench_now_ms() - s->t0;
    if (s->first_job == 0)
        s->first_job = s->last_job;
    if (strcmp(type, "cancel") != 0) {
        bool apply = strcmp(type, "apply") == 0;
        json_t *result =
            json_pack("{s:s, s:s, s:s, s:n, s:s?}", "job_type", type, "outcome", "succeeded",
                      "code", "ok", "message", "from_version", apply ? "0" : NULL);
        /* as today's agents: an apply job asking for it checked its objects (verify_in_job) */
        json_t *vj = json_object_get(json_object_get(job, "options"), "verify_in_job");
        if (apply && json_is_true(vj))
            json_object_set_new(result, "verified", json_true());
        send_event(s, agent_of(s, (int)strtol(tenant + 1, NULL, 10)), "result", tenant, id, result);
    }
    json_decref(job);
    free(payload);
}

static void run(sim *s)
{
    pgr_error err;
    s->kp = calloc((size_t)s->agents, sizeof(pgr_keypair));
    s->seq = calloc((size_t)s->agents, sizeof(long long));
    for (int a = 0; a < s->agents; a++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/sim-%03d.key", s->keys, a);
        if (pgr_keys_load_secret(path, &s->kp[a], &err) != PGR_OK)
            bench_die("key", err.msg);
    }
    if (pgr_keyring_load(s->coord_ring, &s->coordinators, &err) != PGR_OK)
        bench_die("keyring", err.msg);
    pgr_config *cfg = bench_config(s->bootstrap, s->prefix, NULL);
    if (pgr_kafka_producer_new(cfg, &s->producer, NULL, &err) != PGR_OK)
        bench_die("producer", err.msg);
    s->consumer = bench_consumer(cfg, PGR_TOPIC_JOBS, RD_KAFKA_OFFSET_BEGINNING);
    pgr_kafka_topic_name(cfg, PGR_TOPIC_EVENTS, s->topic_events, sizeof(s->topic_events));
    pgr_config_free(cfg);
    s->t0 = bench_now_ms();
    double next_beat = 0;
    while (!sim_stop) {
        if (bench_now_ms() >= next_beat) {
            heartbeats(s);
            next_beat = bench_now_ms() + 5000;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(s->consumer, 100);
        if (m != NULL && m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
            answer(s, m);
        if (m != NULL)
            rd_kafka_message_destroy(m);
        rd_kafka_poll(s->producer, 0);
    }
    rd_kafka_flush(s->producer, 10000);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("jobs %lld\nevents %lld\nfirst_job_ms %.0f\nlast_job_ms %.0f\nsim_cpu_s %ld.%02ld "
           "%ld.%02ld\n",
           s->jobs, s->events, s->first_job, s->last_job, (long)ru.ru_utime.tv_sec,
           (long)ru.ru_utime.tv_usec / 10000, (long)ru.ru_stime.tv_sec,
           (long)ru.ru_stime.tv_usec / 10000);
}

int main(int argc, char **argv)
{
    sim s;
    memset(&s, 0, sizeof(s));
    parse_args(argc, argv, &s);
    if (pgr_crypto_init(NULL) != PGR_OK)
        return 1;
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    if (s.keyring_out != NULL) {
        make_keys(&s);
        return 0;
    }
    if (s.bootstrap == NULL || s.prefix == NULL || s.coord_ring == NULL)
        bench_die("usage", "--bootstrap, --prefix, --coordinator-keyring are required");
    run(&s);
    return 0;
}
