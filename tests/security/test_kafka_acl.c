/*
 * test_kafka_acl.c - the Kafka ACLs of docs/SECURITY.md section 2, enforced by the real broker
 * of tests/run.sh (services.sh turns on KRaft's StandardAuthorizer; topics without ACLs stay
 * open, and only the plaintext listener's principal is a super user). As that super user the
 * test creates this fleet's three topics and exactly the documented ACLs for the SCRAM users
 * PGR_KAFKA_AGENT_USER and PGR_KAFKA_COORD_USER, none of them a super user. Then, over the
 * SASL_SSL listener: an agent principal cannot produce to the jobs topic and the coordinator
 * principal cannot produce audit records (the broker answers TOPIC_AUTHORIZATION_FAILED and none
 * of those bytes is on the topic), while each can write what the table allows; a principal
 * without ACLs sees none of the topics; a full rollout runs with the real binaries under those
 * ACLs; and the real coordinator given an agent's credentials publishes no job.
 */
#include "rollout_env.h"

#define MIGS   PGR_SOURCE_DIR "/migrations"
#define PROBES 5
#define NPARTS 12
#define WAIT_S 30

static fleet F;
static char out[1 << 20];
static char topics[3][128];
/* Consumer groups are named after agent.id and coordinator.id, not the topic prefix: the ids are
 * made unique to this run, so that these ACLs never touch another test's groups. */
static char ids[3][64]; /* coordinator.id, agent.id of agent 1 and 2 */
static char groups[4][128];

static const char *env_required(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        fail_msg("%s is not set: run through tests/run.sh (services.sh up exports it; services "
                 "started by an older services.sh have no ACL users: down and up again)",
                 name);
    return v;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A client of the super user: the plaintext listener (User:ANONYMOUS). */
static rd_kafka_t *admin_client(void)
{
    pgr_config *cfg = fleet_kafka_config(&F);
    rd_kafka_t *rk = NULL;
    assert_int_equal(pgr_kafka_producer_new(cfg, &rk, NULL, NULL), PGR_OK);
    pgr_config_free(cfg);
    return rk;
}

/* A client configuration for a SCRAM user on the SASL_SSL listener. */
static pgr_config *user_config(const char *user, const char *password)
{
    static const char *const keys[] = {"bootstrap.servers", "security.protocol", "sasl.mechanism",
                                       "sasl.username",     "sasl.password",     "ssl.ca.location"};
    const char *values[] = {env_required("PGR_KAFKA_TLS_BOOTSTRAP"),
                            "SASL_SSL",
                            "SCRAM-SHA-512",
                            user,
                            password,
                            env_required("PGR_TLS_CA")};
    pgr_config *cfg = fleet_kafka_config(&F);
    for (size_t i = 0; i < cfg->kafka_count; i++) {
        free(cfg->kafka[i].key);
        free(cfg->kafka[i].value);
    }
    free(cfg->kafka);
    cfg->kafka = calloc(6, sizeof(pgr_kv));
    assert_non_null(cfg->kafka);
    for (size_t i = 0; i < 6; i++) {
        cfg->kafka[i].key = strdup(keys[i]);
        cfg->kafka[i].value = strdup(values[i]);
    }
    cfg->kafka_count = 6;
    return cfg;
}

/* Waits for the answer of an admin request on q (the caller destroys the event). */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    assert_non_null(ev);
    if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR)
        fail_msg("admin request failed: %s", rd_kafka_event_error_string(ev));
    return ev;
}

/* The three topics, as the Kafka administrator creates them before the first run. */
static void create_topics(rd_kafka_t *rk)
{
    rd_kafka_NewTopic_t *nt[3];
    char errstr[256];
    for (int i = 0; i < 3; i++) {
        nt[i] = rd_kafka_NewTopic_new(topics[i], NPARTS, 1, errstr, sizeof(errstr));
        assert_non_null(nt[i]);
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, nt, 3, NULL, q);
    rd_kafka_event_t *ev = admin_wait(q);
    size_t n = 0;
    const rd_kafka_topic_result_t **tr =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        if (rd_kafka_topic_result_error(tr[i]) != RD_KAFKA_RESP_ERR_NO_ERROR)
            fail_msg("creating topic %s: %s", rd_kafka_topic_result_name(tr[i]),
                     rd_kafka_topic_result_error_string(tr[i]));
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    for (int i = 0; i < 3; i++)
        rd_kafka_NewTopic_destroy(nt[i]);
}

typedef struct acl_list {
    rd_kafka_AclBinding_t *b[32];
    size_t n;
} acl_list;

static void acl_allow(acl_list *l, const char *user, rd_kafka_ResourceType_t type, const char *name,
                      rd_kafka_AclOperation_t op)
{
    char principal[128], errstr[256];
    snprintf(principal, sizeof(principal), "User:%s", user);
    assert_true(l->n < 32);
    l->b[l->n] =
        rd_kafka_AclBinding_new(type, name, RD_KAFKA_RESOURCE_PATTERN_LITERAL, principal, "*", op,
                                RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW, errstr, sizeof(errstr));
    if (l->b[l->n] == NULL)
        fail_msg("ACL binding: %s", errstr);
    l->n++;
}

/* docs/SECURITY.md section 2, for this run's coordinator.id and agent ids (here both agents
 * share one principal). */
static void documented_acls(acl_list *l, const char *coord, const char *agent)
{
    const rd_kafka_ResourceType_t T = RD_KAFKA_RESOURCE_TOPIC, G = RD_KAFKA_RESOURCE_GROUP;
    const char *jobs = topics[PGR_TOPIC_JOBS], *events = topics[PGR_TOPIC_EVENTS],
               *audit = topics[PGR_TOPIC_AUDIT];
    acl_allow(l, coord, T, jobs, RD_KAFKA_ACL_OPERATION_WRITE);
    acl_allow(l, coord, T, jobs, RD_KAFKA_ACL_OPERATION_DESCRIBE);
    acl_allow(l, coord, T, events, RD_KAFKA_ACL_OPERATION_READ);
    acl_allow(l, coord, T, events, RD_KAFKA_ACL_OPERATION_DESCRIBE);
    acl_allow(l, coord, T, audit, RD_KAFKA_ACL_OPERATION_READ);
    acl_allow(l, coord, T, audit, RD_KAFKA_ACL_OPERATION_DESCRIBE);
    acl_allow(l, coord, G, groups[0], RD_KAFKA_ACL_OPERATION_READ);
    acl_allow(l, coord, G, groups[1], RD_KAFKA_ACL_OPERATION_READ);
    acl_allow(l, agent, T, jobs, RD_KAFKA_ACL_OPERATION_READ);
    acl_allow(l, agent, T, jobs, RD_KAFKA_ACL_OPERATION_DESCRIBE);
    acl_allow(l, agent, T, events, RD_KAFKA_ACL_OPERATION_WRITE);
    acl_allow(l, agent, T, events, RD_KAFKA_ACL_OPERATION_DESCRIBE);
    acl_allow(l, agent, T, audit, RD_KAFKA_ACL_OPERATION_WRITE);
    acl_allow(l, agent, T, audit, RD_KAFKA_ACL_OPERATION_DESCRIBE);
    acl_allow(l, agent, G, groups[2], RD_KAFKA_ACL_OPERATION_READ);
    acl_allow(l, agent, G, groups[3], RD_KAFKA_ACL_OPERATION_READ);
}

static void create_acls(rd_kafka_t *rk)
{
    acl_list l = {.n = 0};
    documented_acls(&l, env_required("PGR_KAFKA_COORD_USER"), env_required("PGR_KAFKA_AGENT_USER"));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateAcls(rk, l.b, l.n, NULL, q);
    rd_kafka_event_t *ev = admin_wait(q);
    size_t n = 0;
    const rd_kafka_acl_result_t **res =
        rd_kafka_CreateAcls_result_acls(rd_kafka_event_CreateAcls_result(ev), &n);
    assert_int_equal(n, l.n);
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_error_t *e = rd_kafka_acl_result_error(res[i]);
        if (e != NULL)
            fail_msg("creating ACL %zu: %s", i, rd_kafka_error_string(e));
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    for (size_t i = 0; i < l.n; i++)
        rd_kafka_AclBinding_destroy(l.b[i]);
}

/* Removes every ACL of this run's topics and groups: the broker is shared with other tests. */
static void delete_acls(rd_kafka_t *rk)
{
    rd_kafka_AclBindingFilter_t *f[7];
    char errstr[256];
    for (int i = 0; i < 7; i++) {
        f[i] = rd_kafka_AclBindingFilter_new(
            i < 3 ? RD_KAFKA_RESOURCE_TOPIC : RD_KAFKA_RESOURCE_GROUP,
            i < 3 ? topics[i] : groups[i - 3], RD_KAFKA_RESOURCE_PATTERN_LITERAL, NULL, NULL,
            RD_KAFKA_ACL_OPERATION_ANY, RD_KAFKA_ACL_PERMISSION_TYPE_ANY, errstr, sizeof(errstr));
        if (f[i] == NULL)
            fail_msg("ACL filter: %s", errstr);
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteAcls(rk, f, 7, NULL, q);
    rd_kafka_event_destroy(admin_wait(q));
    rd_kafka_queue_destroy(q);
    for (int i = 0; i < 7; i++)
        rd_kafka_AclBinding_destroy(f[i]);
}

/* The error the broker gives user for the metadata of topic (0 when the topic is visible). */
static rd_kafka_resp_err_t topic_visibility(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, 10000);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1)
        e = md->topics[0].err;
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    return e;
}

/* Delivery report of a probe producer: the last error the broker gave, and how many were
 * acknowledged. */
typedef struct probe_result {
    int acked;
    int failed;
    rd_kafka_resp_err_t last;
} probe_result;

static void on_probe_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    PGR_UNUSED(rk);
    probe_result *r = opaque;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        r->acked++;
    } else {
        r->failed++;
        r->last = m->err;
    }
}

/* Produces PROBES messages "<marker> i" to topic as user, with the product's producer settings
 * (idempotent, acks=all), and waits for every delivery report. */
static probe_result produce_as(const char *user, const char *password, const char *topic,
                               const char *marker)
{
    probe_result r = {0, 0, RD_KAFKA_RESP_ERR_NO_ERROR};
    pgr_config *cfg = user_config(user, password);
    rd_kafka_conf_t *conf = NULL;
    char errstr[512];
    assert_int_equal(pgr_kafka_conf(cfg, &conf, NULL), PGR_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "acks", "all", errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "message.timeout.ms", "20000", errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    rd_kafka_conf_set_dr_msg_cb(conf, on_probe_delivery);
    rd_kafka_conf_set_opaque(conf, &r);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL)
        fail_msg("producer: %s", errstr);
    for (int i = 0; i < PROBES; i++) {
        char value[128], key[32];
        snprintf(value, sizeof(value), "%s %d", marker, i);
        snprintf(key, sizeof(key), "district-%03d", i + 1);
        assert_int_equal(pgr_kafka_send(rk, topic, key, value, strlen(value), NULL), PGR_OK);
    }
    rd_kafka_flush(rk, 30000);
    rd_kafka_destroy(rk);
    pgr_config_free(cfg);
    assert_int_equal(r.acked + r.failed, PROBES);
    return r;
}

/* Whether the len bytes at p hold the string s. */
static bool holds(const void *p, size_t len, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i + n <= len; i++) {
        if (memcmp((const char *)p + i, s, n) == 0)
            return true;
    }
    return false;
}

/* Every message of topic, read by the super user: how many, and how many hold marker. */
static long topic_messages(const char *topic, const char *marker, long *marked)
{
    pgr_config *cfg = fleet_kafka_config(&F);
    rd_kafka_t *rk = NULL;
    char group[64];
    snprintf(group, sizeof(group), "acl-check-%d", (int)getpid());
    assert_int_equal(pgr_kafka_consumer_new(cfg, group, &rk, NULL), PGR_OK);
    pgr_config_free(cfg);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(NPARTS);
    long total = 0;
    for (int p = 0; p < NPARTS; p++) {
        int64_t lo = 0, hi = 0;
        assert_int_equal(rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000), 0);
        total += (long)(hi - lo);
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    assert_int_equal(rd_kafka_assign(rk, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    long seen = 0;
    *marked = 0;
    double deadline = now_s() + WAIT_S;
    while (seen < total && now_s() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        if (m == NULL)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            seen++;
            if (holds(m->payload, m->len, marker))
                (*marked)++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    assert_int_equal(seen, total);
    return total;
}

/* The SCRAM user "pgrollout" has no ACLs: once it cannot see any of the three topics, the ACLs
 * are in force on the broker (they reach the authorizer through the metadata log). */
static void wait_acls_in_force(void)
{
    pgr_config *cfg =
        user_config(env_required("PGR_KAFKA_SASL_USER"), env_required("PGR_KAFKA_SASL_PASSWORD"));
    rd_kafka_t *rk = NULL;
    assert_int_equal(pgr_kafka_producer_new(cfg, &rk, NULL, NULL), PGR_OK);
    pgr_config_free(cfg);
    int hidden = 0;
    double deadline = now_s() + WAIT_S;
    while (hidden < 3 && now_s() < deadline) {
        hidden = 0;
        for (int i = 0; i < 3; i++)
            hidden +=
                topic_visibility(rk, topics[i]) == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED;
        if (hidden < 3)
            sleep_ms(200);
    }
    rd_kafka_destroy(rk);
    assert_int_equal(hidden, 3);
}

/* Rewrites a fleet config file: Kafka through the SASL_SSL listener as user (the databases stay
 * as they are: test_tls.c is about those links). */
static void sasl_config(const char *file, const char *user, const char *password)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "sed -i -e 's|^bootstrap.servers = .*|bootstrap.servers = %s\\nsecurity.protocol = "
             "SASL_SSL\\nsasl.mechanism = SCRAM-SHA-512\\nsasl.username = %s\\nsasl.password = "
             "%s\\nssl.ca.location = %s|' %s/%s",
             env_required("PGR_KAFKA_TLS_BOOTSTRAP"), user, password, env_required("PGR_TLS_CA"),
             F.dir, file);
    assert_int_equal(system(cmd), 0);
}

/* Unique agent and coordinator ids in the fleet's config files, and their group names. */
static void unique_ids(void)
{
    char cmd[1024];
    snprintf(ids[0], sizeof(ids[0]), "acl%d", (int)getpid());
    snprintf(ids[1], sizeof(ids[1]), "acl%d-agent-1", (int)getpid());
    snprintf(ids[2], sizeof(ids[2]), "acl%d-agent-2", (int)getpid());
    snprintf(groups[0], sizeof(groups[0]), "pgrollout-coordinator-%s", ids[0]);
    snprintf(groups[1], sizeof(groups[1]), "pgrollout-audit-collector-%s", ids[0]);
    snprintf(groups[2], sizeof(groups[2]), "pgrollout-agent-%s", ids[1]);
    snprintf(groups[3], sizeof(groups[3]), "pgrollout-agent-%s", ids[2]);
    snprintf(cmd, sizeof(cmd),
             "sed -i 's|^\\[coordinator\\]$|[coordinator]\\nid = %s|' %s/coord.ini && sed -i "
             "'s|^id = agent-1$|id = %s|' %s/agent1.ini && sed -i 's|^id = agent-2$|id = %s|' "
             "%s/agent2.ini && grep -q '^id = %s$' %s/coord.ini && grep -q '^id = %s$' "
             "%s/agent1.ini && grep -q '^id = %s$' %s/agent2.ini",
             ids[0], F.dir, ids[1], F.dir, ids[2], F.dir, ids[0], F.dir, ids[1], F.dir, ids[2],
             F.dir);
    assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
    (void)state;
    const char *agent = env_required("PGR_KAFKA_AGENT_USER");
    const char *agent_pw = env_required("PGR_KAFKA_AGENT_PASSWORD");
    fleet_setup(&F, 65536);
    unique_ids();
    pgr_config *cfg = fleet_kafka_config(&F);
    for (int i = 0; i < 3; i++)
        pgr_kafka_topic_name(cfg, (pgr_topic)i, topics[i], sizeof(topics[i]));
    pgr_config_free(cfg);
    rd_kafka_t *rk = admin_client();
    create_topics(rk);
    create_acls(rk);
    rd_kafka_destroy(rk);
    wait_acls_in_force();
    sasl_config("agent1.ini", agent, agent_pw);
    sasl_config("agent2.ini", agent, agent_pw);
    sasl_config("coord.ini", env_required("PGR_KAFKA_COORD_USER"),
                env_required("PGR_KAFKA_COORD_PASSWORD"));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fleet_stop_all(&F);
    rd_kafka_t *rk = admin_client();
    delete_acls(rk);
    rd_kafka_destroy(rk);
    return 0;
}

/* A principal that no ACL names gets nothing on topics that have ACLs, not even metadata. */
static void test_kafka_acl_unlisted_principal_sees_nothing(void **state)
{
    (void)state;
    probe_result r =
        produce_as(env_required("PGR_KAFKA_SASL_USER"), env_required("PGR_KAFKA_SASL_PASSWORD"),
                   topics[PGR_TOPIC_EVENTS], "acl-probe-unlisted");
    assert_int_equal(r.acked, 0);
    assert_int_equal(r.last, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    long marked = 0;
    topic_messages(topics[PGR_TOPIC_EVENTS], "acl-probe-unlisted", &marked);
    assert_int_equal(marked, 0);
}

/* A stolen agent credential cannot put a job on the jobs topic; the agent writes events and
 * audit records. */
static void test_kafka_acl_agent_cannot_write_jobs(void **state)
{
    (void)state;
    const char *user = env_required("PGR_KAFKA_AGENT_USER");
    const char *pw = env_required("PGR_KAFKA_AGENT_PASSWORD");
    long marked = 0, before = topic_messages(topics[PGR_TOPIC_JOBS], "acl-forged-job", &marked);
    probe_result r = produce_as(user, pw, topics[PGR_TOPIC_JOBS], "acl-forged-job");
    assert_int_equal(r.acked, 0);
    assert_int_equal(r.failed, PROBES);
    if (r.last != RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
        fail_msg("want TOPIC_AUTHORIZATION_FAILED, got %s", rd_kafka_err2name(r.last));
    assert_int_equal(topic_messages(topics[PGR_TOPIC_JOBS], "acl-forged-job", &marked), before);
    assert_int_equal(marked, 0);
    /* positive controls: what the table allows the agent */
    for (int t = PGR_TOPIC_EVENTS; t <= PGR_TOPIC_AUDIT; t++) {
        long n = topic_messages(topics[t], "acl-agent-ok", &marked);
        r = produce_as(user, pw, topics[t], "acl-agent-ok");
        assert_int_equal(r.acked, PROBES);
        assert_int_equal(topic_messages(topics[t], "acl-agent-ok", &marked), n + PROBES);
        assert_int_equal(marked, PROBES);
    }
}

/* The coordinator's credential cannot write audit records (nor events); it writes jobs. */
static void test_kafka_acl_coordinator_cannot_write_audit(void **state)
{
    (void)state;
    const char *user = env_required("PGR_KAFKA_COORD_USER");
    const char *pw = env_required("PGR_KAFKA_COORD_PASSWORD");
    long marked = 0;
    for (int t = PGR_TOPIC_EVENTS; t <= PGR_TOPIC_AUDIT; t++) {
        long before = topic_messages(topics[t], "acl-forged-by-coordinator", &marked);
        probe_result r = produce_as(user, pw, topics[t], "acl-forged-by-coordinator");
        assert_int_equal(r.acked, 0);
        assert_int_equal(r.failed, PROBES);
        if (r.last != RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
            fail_msg("%s: want TOPIC_AUTHORIZATION_FAILED, got %s", topics[t],
                     rd_kafka_err2name(r.last));
        assert_int_equal(topic_messages(topics[t], "acl-forged-by-coordinator", &marked), before);
        assert_int_equal(marked, 0);
    }
    long n = topic_messages(topics[PGR_TOPIC_JOBS], "acl-coord-ok", &marked);
    probe_result r = produce_as(user, pw, topics[PGR_TOPIC_JOBS], "acl-coord-ok");
    assert_int_equal(r.acked, PROBES);
    assert_int_equal(topic_messages(topics[PGR_TOPIC_JOBS], "acl-coord-ok", &marked), n + PROBES);
    assert_int_equal(marked, PROBES);
}

/* The documented ACLs are enough: the real coordinator and agents, each as its principal, run a
 * rollout to the end. */
static void test_kafka_acl_rollout_with_documented_acls(void **state)
{
    (void)state;
    fleet_start_all(&F);
    int rc = fleet_run(&F,
                       "{\"name\": \"acl-it\", \"migrations\": \"" MIGS "\", \"target\": "
                       "\"20251106000003\", \"options\": {\"orphans\": \"abort\", \"retries\": "
                       "3}, \"tenants\": [\"district-001\", \"district-002\", \"district-003\"]}",
                       out, sizeof(out));
    if (rc != 0)
        fail_msg("rollout under ACLs exited %d:\n%s", rc, out);
    assert_non_null(strstr(out, "rollout acl-it: succeeded (0 failed)"));
    for (int t = 0; t < F.n; t++) {
        PGconn *c = itest_connect(F.db[t]);
        fleet_assert_migrated(c);
        PQfinish(c);
    }
    /* and the agents' audit records reached the audit topic */
    fleet_wait_published(&F);
}

/* The real coordinator given an agent's credentials: no job reaches the jobs topic, and it says
 * so instead of reporting success. */
static void test_kafka_acl_coordinator_binary_with_agent_credentials(void **state)
{
    (void)state;
    char cmd[1024], path[256];
    long marked = 0, before = topic_messages(topics[PGR_TOPIC_JOBS], "acl-none", &marked);
    snprintf(cmd, sizeof(cmd),
             "sed -e 's|^sasl.username = .*|sasl.username = %s|' -e 's|^sasl.password = "
             ".*|sasl.password = %s|' %s/coord.ini > %s/coord-as-agent.ini",
             env_required("PGR_KAFKA_AGENT_USER"), env_required("PGR_KAFKA_AGENT_PASSWORD"), F.dir,
             F.dir);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof(path), "%s/plan-as-agent.json", F.dir);
    itest_write_file(path, "{\"name\": \"acl-as-agent\", \"migrations\": \"" MIGS "\", "
                           "\"target\": \"20251106000003\", \"tenants\": [\"district-001\"]}");
    snprintf(cmd, sizeof(cmd),
             COORD_BIN " run --config %s/coord-as-agent.ini --plan %s --timeout 40", F.dir, path);
    int rc = run_cmd(cmd, out, sizeof(out));
    if (rc == 0)
        fail_msg("the coordinator with an agent's credentials exited 0:\n%s", out);
    if (strstr(out, "not acknowledged") == NULL && strstr(out, "uthoriz") == NULL)
        fail_msg("no refusal in:\n%s", out);
    assert_int_equal(topic_messages(topics[PGR_TOPIC_JOBS], "acl-none", &marked), before);
    assert_null(strstr(out, env_required("PGR_KAFKA_AGENT_PASSWORD")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kafka_acl_unlisted_principal_sees_nothing),
        cmocka_unit_test(test_kafka_acl_agent_cannot_write_jobs),
        cmocka_unit_test(test_kafka_acl_coordinator_cannot_write_audit),
        cmocka_unit_test(test_kafka_acl_rollout_with_documented_acls),
        cmocka_unit_test(test_kafka_acl_coordinator_binary_with_agent_credentials),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
