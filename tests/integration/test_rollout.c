/* test_rollout.c - signed jobs over the real Kafka broker: three tenant databases behind two
 * agents, `pgrollout run` brings all to the target with the catalog of a direct apply, and the
 * events topic holds signed events of both agents; then every kind of hostile job message is
 * put on the jobs topic and must be refused with a signed security event, changing nothing. */
#include "rollout_env.h"

#include <jansson.h>
#include <sodium.h>

#define MIGS PGR_SOURCE_DIR "/migrations"

static fleet F;
static char out[1 << 20];

static const char *const plan_all =
    "{\"name\": \"wc-it\", \"migrations\": \"" MIGS "\", \"target\": \"20251106000003\", "
    "\"options\": {\"orphans\": \"abort\", \"lock_timeout_ms\": 5000, \"retries\": 5}, "
    "\"tenants\": [\"district-001\", \"district-002\", \"district-003\"]}";

static int setup(void **state)
{
    (void)state;
    fleet_setup(&F, 65536);
    fleet_start_all(&F);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fleet_stop_all(&F);
    return 0;
}

/* A consumer of the events topic from its beginning (test's own group). */
static rd_kafka_t *events_consumer(const char *name)
{
    /* a fresh group per run: a member left behind by a crashed run would delay the join */
    char group[128];
    snprintf(group, sizeof(group), "%s-%s", name, F.prefix);
    pgr_config *cfg = fleet_kafka_config(&F);
    rd_kafka_t *c = NULL;
    assert_int_equal(pgr_kafka_consumer_new(cfg, group, &c, NULL), PGR_OK);
    char topic[256];
    pgr_kafka_topic_name(cfg, PGR_TOPIC_EVENTS, topic, sizeof(topic));
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, RD_KAFKA_PARTITION_UA);
    assert_int_equal(rd_kafka_subscribe(c, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    pgr_config_free(cfg);
    return c;
}

/* What the step events of the apply jobs said (docs/PROTOCOL.md 9.3). */
typedef struct step_log {
    char job[NTENANTS][40]; /* apply jobs seen, in order of their first step event */
    int jobs;
    int done, started, index_started, first_not_started;
    int done_out_of_order, also_done_not_index, started_after_done;
    char last_done[NTENANTS][32]; /* per job: version|step of the last `done`, zero-padded */
} step_log;

static void step_at(json_t *item, char at[32])
{
    snprintf(at, 32, "%s|%04lld", json_string_value(json_object_get(item, "version")),
             (long long)json_integer_value(json_object_get(item, "step")));
}

/* A `done` of job j (also one carried in `also_done`): they arrive in step order. */
static void step_log_done(step_log *l, int j, json_t *item)
{
    char at[32];
    step_at(item, at);
    l->done_out_of_order += strcmp(at, l->last_done[j]) <= 0;
    snprintf(l->last_done[j], sizeof(l->last_done[j]), "%s", at);
    l->done++;
}

static void step_log_add(step_log *l, json_t *ev)
{
    const char *job = json_string_value(json_object_get(ev, "job_id"));
    const char *st = json_string_value(json_object_get(ev, "state"));
    const char *kind = json_string_value(json_object_get(ev, "kind"));
    const char *type = json_string_value(json_object_get(ev, "type"));
    if (strcmp(type, "progress") == 0)
        return;
    int j = 0;
    while (j < l->jobs && strcmp(l->job[j], job) != 0)
        j++;
    if (j == l->jobs && j < NTENANTS) { /* the job's first step (a foreign key here) */
        snprintf(l->job[l->jobs++], sizeof(l->job[0]), "%s", job);
        l->first_not_started += strcmp(st, "started") != 0;
    }
    if (strcmp(st, "done") == 0 && j < NTENANTS) {
        /* quick builds' `done`s come together: the earlier ones in `also_done`, in order */
        size_t i;
        json_t *item;
        json_array_foreach(json_object_get(ev, "also_done"), i, item)
        {
            l->also_done_not_index +=
                strcmp(json_string_value(json_object_get(item, "kind")), "index") != 0;
            step_log_done(l, j, item);
        }
        step_log_done(l, j, ev);
    }
    if (strcmp(st, "started") == 0) {
        char at[32];
        step_at(ev, at);
        l->started++;
        l->index_started += strcmp(kind, "index") == 0;
        /* a held-back `started` still comes before the step's `done` */
        l->started_after_done += j < NTENANTS && strcmp(at, l->last_done[j]) <= 0;
    }
}

static void test_rollout_three_tenants_two_agents(void **state)
{
    char ref[64];
    (void)state;
    int rc = fleet_run(&F, plan_all, out, sizeof(out));
    if (rc != 0)
        fail_msg("pgrollout run exited %d:\n%s", rc, out);
    assert_non_null(strstr(out, "rollout wc-it: succeeded (0 failed)"));
    /* the catalog of each tenant is the one a direct apply gives */
    itest_create_db("itest_ref", ref, sizeof(ref));
    itest_load_white_cross(ref, 1, 0);
    assert_int_equal(agent("apply", ref, MIGS, "", out, sizeof(out)), 0);
    PGconn *rc_ = itest_connect(ref);
    char *want = catalog_snapshot(rc_);
    PQfinish(rc_);
    for (int t = 0; t < NTENANTS; t++) {
        PGconn *c = itest_connect(F.db[t]);
        char *got = catalog_snapshot(c);
        assert_string_equal(got, want);
        free(got);
        assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs WHERE state = "
                                         "'succeeded' AND seq = 1 AND type = 'apply'"),
                         1);
        /* the apply job checked its objects itself (options.verify_in_job, the default): the
         * wave sent no verify job */
        assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs WHERE type = "
                                         "'verify'"),
                         0);
        assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                         "record::jsonb->>'action' = 'job_end' AND "
                                         "record::jsonb->>'verified' = 'true'"),
                         1);
        PQfinish(c);
    }
    free(want);
    itest_drop_db(ref);
    /* the events topic: every message signed by a registered agent key; results from both */
    rd_kafka_t *ec = events_consumer("itest-events-all");
    /* the coordinator created the three topics with 12 partitions (PROTOCOL 7.1), although the
     * agents, started first, waited for the jobs topic and the broker's default is 6 */
    pgr_config *tcfg = fleet_kafka_config(&F);
    for (int i = 0; i < 3; i++) {
        char topic[256];
        int parts = 0;
        pgr_kafka_topic_name(tcfg, (pgr_topic)i, topic, sizeof(topic));
        assert_int_equal(pgr_kafka_partitions(ec, topic, 10000, &parts, NULL), PGR_OK);
        assert_int_equal(parts, 12);
    }
    pgr_config_free(tcfg);
    pgr_keyring *kr = fleet_agents_ring(&F);
    int results = 0, from[2] = {0, 0};
    step_log sl;
    memset(&sl, 0, sizeof(sl));
    for (int idle = 0; idle < 20 && results < NTENANTS;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(ec, 500);
        if (m == NULL || m->err != 0) {
            idle++;
            if (m != NULL)
                rd_kafka_message_destroy(m);
            continue;
        }
        json_t *ev = fleet_event_open(kr, m);
        const char *type = json_string_value(json_object_get(ev, "type"));
        const char *agent_id = json_string_value(json_object_get(ev, "agent_id"));
        const char *jt = json_string_value(json_object_get(ev, "job_type"));
        if (strcmp(type, "result") == 0 && jt != NULL && strcmp(jt, "apply") == 0) {
            results++;
            assert_string_equal(json_string_value(json_object_get(ev, "outcome")), "succeeded");
            assert_true(json_is_true(json_object_get(ev, "verified")));
            from[strcmp(agent_id, "agent-1") == 0 ? 0 : 1]++;
        }
        if ((strcmp(type, "step") == 0 || strcmp(type, "progress") == 0) &&
            json_object_get(ev, "step") != NULL && jt == NULL && results < NTENANTS)
            step_log_add(&sl, ev);
        json_decref(ev);
        rd_kafka_message_destroy(m);
    }
    assert_int_equal(results, NTENANTS);
    assert_int_equal(from[0], 2);
    assert_int_equal(from[1], 1);
    /* 37 steps per apply job, each `done` (quick builds' together: `also_done`, in step order);
     * `started` for the first step of each job and for
     * the three steps that are not index builds (the first is one of them); a build's `started`
     * only once it ran 250 ms (a quicker one sends `done` alone), and never after its `done` */
    assert_int_equal(sl.jobs, NTENANTS);
    assert_int_equal(sl.first_not_started, 0);
    assert_int_equal(sl.done, NTENANTS * 37);
    assert_int_equal(sl.done_out_of_order, 0);
    assert_int_equal(sl.also_done_not_index, 0);
    assert_int_equal(sl.started - sl.index_started, NTENANTS * 3);
    assert_int_equal(sl.started_after_done, 0);
    pgr_keyring_free(kr);
    rd_kafka_consumer_close(ec);
    rd_kafka_destroy(ec);
    /* status and tenants from the control database */
    char cmd[512];
    snprintf(cmd, sizeof(cmd), COORD_BIN " status wc-it --config %s/coord.ini --json", F.dir);
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "\"state\": \"succeeded\""));
    PGconn *ctl = itest_connect(F.ctl_db);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.tenant_runs WHERE "
                                       "rollout_id = 'wc-it' AND state = 'succeeded' AND job_type "
                                       "= 'apply' AND verified_at IS NOT NULL"),
                     NTENANTS);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.job_outbox"),
                     NTENANTS);
    PQfinish(ctl);
    snprintf(cmd, sizeof(cmd), COORD_BIN " tenants list --config %s/coord.ini", F.dir);
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "district-003  agent-2"));
}

static void load_key(const char *name, pgr_keypair *kp)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s.key", F.dir, name);
    assert_int_equal(pgr_keys_load_secret(path, kp, NULL), PGR_OK);
}

/* A job payload for district-001 (fresh job id), signed by key `signer`. */
/* job_id NULL: a fresh random id. */
static char *make_job(const char *signer, const char *tenant, long long seq, long ttl,
                      bool corrupt_text, const char *job_id)
{
    pgr_migration_set *set = NULL;
    pgr_keypair kp;
    pgr_job job;
    memset(&job, 0, sizeof(job));
    assert_int_equal(pgr_migration_dir_load(MIGS, &set, NULL), PGR_OK);
    snprintf(job.type, sizeof(job.type), "apply");
    uint8_t b[16];
    randombytes_buf(b, 16);
    snprintf(job.job_id, sizeof(job.job_id),
             "%02x%02x%02x%02x-%02x%02x-4%x%02x-8%x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
             b[3], b[4], b[5], b[6] & 0xf, b[7], b[8] & 0xf, b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    if (job_id != NULL)
        snprintf(job.job_id, sizeof(job.job_id), "%s", job_id);
    job.tenant_id = (char *)(uintptr_t)tenant;
    job.seq = seq;
    job.issued_at = time(NULL) - 10;
    job.expires_at = time(NULL) + ttl;
    job.operator_name = (char *)(uintptr_t) "mallory";
    job.options.lock_timeout_ms = 5000;
    job.options.retries = 1;
    char *payload = pgr_job_build(&job, set);
    if (corrupt_text) {
        char *sel = strstr(payload, "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_failed");
        assert_non_null(sel);
        memcpy(sel, "create", 6); /* same length, different bytes: checksum no longer matches */
    }
    load_key(signer, &kp);
    char *env = pgr_envelope_seal(PGR_DOMAIN_JOB, &kp, payload, strlen(payload));
    free(payload);
    pgr_migration_set_free(set);
    return env;
}

static void send_job(rd_kafka_t *p, const char *key, const char *bytes, size_t len)
{
    char topic[256];
    snprintf(topic, sizeof(topic), "%sjobs", F.prefix);
    assert_int_equal(pgr_kafka_send(p, topic, key, bytes, len, NULL), PGR_OK);
    assert_int_equal(rd_kafka_flush(p, 10000), 0);
}

/* Waits for a signed security event with this reason from the agent serving district-001. */
static void expect_security(rd_kafka_t *ec, pgr_keyring *kr, const char *reason)
{
    int seen = 0, verified = 0;
    for (double end = now_s() + 30; now_s() < end;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(ec, 250);
        if (m == NULL)
            continue;
        seen++;
        char *payload = NULL, kid[PGR_KID_LEN];
        size_t plen = 0;
        pgr_envelope_reject why;
        bool found = false;
        if (m->err == 0 && pgr_envelope_open(m->payload, m->len, 1 << 20, PGR_DOMAIN_EVENT, kr,
                                             &payload, &plen, NULL, kid, &why, NULL) == PGR_OK) {
            json_t *ev = json_loads(payload, 0, NULL);
            verified++;
            found = strcmp(json_string_value(json_object_get(ev, "type")), "security") == 0 &&
                    strcmp(json_string_value(json_object_get(ev, "reason")), reason) == 0;
            json_decref(ev);
        }
        free(payload);
        rd_kafka_message_destroy(m);
        if (found)
            return;
    }
    fail_msg("no security event with reason %s (%d messages, %d verified)", reason, seen, verified);
}

static void test_rollout_hostile_jobs_are_refused(void **state)
{
    (void)state;
    pgr_config *cfg = fleet_kafka_config(&F);
    rd_kafka_t *p = NULL;
    assert_int_equal(pgr_kafka_producer_new(cfg, &p, NULL, NULL), PGR_OK);
    rd_kafka_t *ec = events_consumer("itest-events-security");
    pgr_keyring *kr = fleet_agents_ring(&F);
    PGconn *c = itest_connect(F.db[0]);
    char *before = catalog_snapshot(c);
    long jobs_before = itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs");
    const char *t1 = "district-001";

    char *env = make_job("coord", t1, 100, 3600, false, NULL);
    char *tampered = strdup(env);
    char *p64 = strstr(tampered, "\"payload\":\"") + 20;
    *p64 = *p64 == 'A' ? 'B' : 'A';
    send_job(p, t1, tampered, strlen(tampered));
    expect_security(ec, kr, "bad_signature");
    free(tampered);
    free(env);

    env = make_job("intruder", t1, 101, 3600, false, NULL);
    send_job(p, t1, env, strlen(env));
    expect_security(ec, kr, "unknown_key");
    free(env);

    env = make_job("coord-old", t1, 102, 3600, false, NULL);
    send_job(p, t1, env, strlen(env));
    expect_security(ec, kr, "revoked_key");
    free(env);

    env = make_job("coord", t1, 103, -60, false, NULL);
    send_job(p, t1, env, strlen(env));
    expect_security(ec, kr, "expired");
    free(env);

    env = make_job("coord", "district-002", 104, 3600, false, NULL);
    send_job(p, t1, env, strlen(env));
    expect_security(ec, kr, "wrong_tenant");
    free(env);

    env = make_job("coord", t1, 1, 3600, false, NULL); /* seq 1 was used by the rollout */
    send_job(p, t1, env, strlen(env));
    expect_security(ec, kr, "stale_seq");
    free(env);

    env = make_job("coord", t1, 105, 3600, true, NULL);
    send_job(p, t1, env, strlen(env));
    expect_security(ec, kr, "checksum_mismatch");
    free(env);

    send_job(p, t1, "\x00\x01garbage{", 10);
    expect_security(ec, kr, "malformed");

    char *big = malloc(70000);
    memset(big, 'x', 70000);
    send_job(p, t1, big, 70000);
    expect_security(ec, kr, "oversized");
    free(big);

    /* the rollout's own finished job delivered again byte for byte (a failed offset commit
     * looks like this): absorbed silently, nothing runs again (no job_rejected record below) */
    PGconn *ctl = itest_connect(F.ctl_db);
    PGresult *r = PQexec(ctl, "SELECT envelope, job_id FROM pgrollout_control.job_outbox WHERE "
                              "tenant_id = 'district-001' ORDER BY created_at LIMIT 1");
    assert_int_equal(PQntuples(r), 1);
    send_job(p, t1, PQgetvalue(r, 0, 0), strlen(PQgetvalue(r, 0, 0)));
    /* a validly signed new envelope reusing that job id: a replay */
    env = make_job("coord", t1, 106, 3600, false, PQgetvalue(r, 0, 1));
    send_job(p, t1, env, strlen(env));
    expect_security(ec, kr, "replay");
    free(env);
    PQclear(r);
    PQfinish(ctl);

    /* nothing changed in the tenant database; every refusal is in its audit trail */
    char *after = catalog_snapshot(c);
    assert_string_equal(before, after);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs"), jobs_before);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                     "record::jsonb->>'action' = 'job_rejected'"),
                     10);
    free(before);
    free(after);
    PQfinish(c);
    pgr_keyring_free(kr);
    rd_kafka_consumer_close(ec);
    rd_kafka_destroy(ec);
    rd_kafka_destroy(p);
    pgr_config_free(cfg);
}

/* Reads events until a `step` event `started` of object_part arrives (true) or 20 s pass; notes
 * whether a `done` of done_part came first (its own event or in `also_done`). */
static bool wait_started(rd_kafka_t *ec, pgr_keyring *kr, const char *object_part,
                         const char *done_part, bool *done_first)
{
    for (double until = now_s() + 20; now_s() < until;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(ec, 200);
        if (m == NULL)
            continue;
        json_t *ev = m->err == 0 ? fleet_event_open(kr, m) : NULL;
        rd_kafka_message_destroy(m);
        const char *st = json_string_value(json_object_get(ev, "state"));
        const char *obj = json_string_value(json_object_get(ev, "object"));
        bool started = st != NULL && obj != NULL && strcmp(st, "started") == 0 &&
                       strstr(obj, object_part) != NULL;
        if (st != NULL && strcmp(st, "done") == 0) {
            size_t i;
            json_t *item;
            *done_first = *done_first || strstr(obj, done_part) != NULL;
            json_array_foreach(json_object_get(ev, "also_done"), i, item) *done_first =
                *done_first ||
                strstr(json_string_value(json_object_get(item, "object")), done_part) != NULL;
        }
        json_decref(ev);
        if (started)
            return true;
    }
    return false;
}

/* An index build that waits for its table lock shows no progress (PostgreSQL reports none
 * before the lock is granted): it still reports `started` once it has run 250 ms, and the
 * previous build's held `done` goes out first, while the lock is held. */
static void test_rollout_build_waiting_for_its_lock_is_reported(void **state)
{
    char dir[160], path[256], cmd[512], plan[512], log[256];
    (void)state;
    snprintf(dir, sizeof(dir), "%s/migs-lock", F.dir);
    snprintf(cmd, sizeof(cmd), "mkdir -p %s && cp " MIGS "/*.sql %s/", dir, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof(path), "%s/20251203000000-lock-wait.sql", dir);
    itest_write_file(
        path, "-- 20251203000000 lock-wait\n-- pgrollout:up\n\n"
              "-- pgrollout:step index name=idx_pgr_lock_a table=allergies\n"
              "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_pgr_lock_a ON allergies (severity, "
              "active);\n\n-- pgrollout:step index name=idx_pgr_lock_b table=students\n"
              "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_pgr_lock_b ON students "
              "(\"studentNumber\");\n\n-- pgrollout:down\n\n"
              "-- pgrollout:step drop_index name=idx_pgr_lock_b table=students\n"
              "DROP INDEX CONCURRENTLY IF EXISTS idx_pgr_lock_b;\n\n"
              "-- pgrollout:step drop_index name=idx_pgr_lock_a table=allergies\n"
              "DROP INDEX CONCURRENTLY IF EXISTS idx_pgr_lock_a;\n");
    snprintf(path, sizeof(path), "%s/plan-lock.json", F.dir);
    snprintf(plan, sizeof(plan),
             "{\"name\": \"wc-lock\", \"migrations\": \"%s\", \"options\": "
             "{\"lock_timeout_ms\": 30000}, \"tenants\": [\"district-001\"]}",
             dir);
    itest_write_file(path, plan);
    rd_kafka_t *ec = events_consumer("itest-events-lock");
    pgr_keyring *kr = fleet_agents_ring(&F);
    PGconn *blocker = itest_connect(F.db[0]);
    itest_exec(blocker, "BEGIN; LOCK TABLE students IN ACCESS EXCLUSIVE MODE");
    char ini[256];
    snprintf(ini, sizeof(ini), "%s/coord.ini", F.dir);
    snprintf(log, sizeof(log), "%s/run-lock.log", F.dir);
    pid_t pid = fleet_spawn(log, false,
                            (char *const[]){COORD_BIN, "run", "--config", ini, "--plan", path,
                                            "--timeout", "120", NULL});
    bool done_a = false;
    bool started_b = wait_started(ec, kr, "idx_pgr_lock_b", "idx_pgr_lock_a", &done_a);
    /* the records of the running job (job_accepted, idx_pgr_lock_a's step_done,
     * idx_pgr_lock_b's step_start) do not wait for the publisher's visit of a busy tenant (5 s,
     * AUDIT_BUSY_MS): the barrier before each step sent them, the lock still held */
    PGconn *tc = itest_connect(F.db[0]);
    const char *unpublished = "SELECT count(*) FROM pgrollout.audit_outbox WHERE published_at "
                              "IS NULL";
    long left = itest_scalar(tc, unpublished);
    for (int i = 0; i < 100 && left > 0; i++) {
        nanosleep(&(struct timespec){0, 100000000L}, NULL);
        left = itest_scalar(tc, unpublished);
    }
    /* the first of them went out well before the publisher's 5 s, by the server's clock */
    long waited_ms = itest_scalar(
        tc, "SELECT coalesce(min(extract(epoch FROM o.published_at - j.received_at) * 1000), -1)"
            "::bigint FROM pgrollout.audit_outbox o JOIN pgrollout.jobs j ON j.rollout_id = "
            "'wc-lock' WHERE o.created_at >= j.received_at");
    PQfinish(tc);
    print_message("audit records of the running job: first published %ld ms after the job was "
                  "recorded; %ld unpublished with the lock still held\n",
                  waited_ms, left);
    assert_true(waited_ms >= 0 && waited_ms < 4900);
    assert_int_equal(left, 0);
    /* the build is still waiting: the lock is ours until now */
    assert_int_equal(itest_scalar(blocker, "SELECT count(*) FROM pg_class WHERE relname = "
                                           "'idx_pgr_lock_b'"),
                     0);
    itest_exec(blocker, "COMMIT");
    PQfinish(blocker);
    int st = 0;
    waitpid(pid, &st, 0);
    assert_true(started_b);
    assert_true(done_a);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    PGconn *c = itest_connect(F.db[0]);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_index i JOIN pg_class x ON x.oid = "
                                     "i.indexrelid WHERE x.relname IN ('idx_pgr_lock_a', "
                                     "'idx_pgr_lock_b') AND i.indisvalid"),
                     2);
    PQfinish(c);
    pgr_keyring_free(kr);
    rd_kafka_consumer_close(ec);
    rd_kafka_destroy(ec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rollout_three_tenants_two_agents),
        cmocka_unit_test(test_rollout_hostile_jobs_are_refused),
        cmocka_unit_test(test_rollout_build_waiting_for_its_lock_is_reported),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
