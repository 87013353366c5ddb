/*
 * test_event_binding.c - a stolen agent key speaks for its own tenants only (real PostgreSQL,
 * real Kafka, the real coordinator and agents). While a rollout runs, events signed with the
 * agents' real keys are put on the events topic: one naming another tenant's job, one without a
 * tenant, one for a tenant the key may not speak for, versions the job does not carry, an
 * outcome outside its list, an old sequence number, and a rewrite of a finished run. None may
 * change a run; each is recorded in pgrollout_control.security_alerts naming the key. The
 * rollout then finishes normally, and a second rollout after both agents restarted succeeds
 * (their event numbers grow across restarts, so the coordinator takes their events).
 */
#include "rollout_env.h"

#include <time.h>

#define MIGS PGR_SOURCE_DIR "/migrations"

static fleet F;
static char out[1 << 20];
static rd_kafka_t *producer;

#define PLAN                                                                                       \
    "{\"name\": \"%s\", \"migrations\": \"" MIGS "\", \"target\": \"20251106000003\", "            \
    "\"tenants\": [\"district-001\", \"district-002\", \"district-003\"]}"

static long long now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (long long)t.tv_sec * 1000000LL + t.tv_nsec / 1000;
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static void load_key(const char *name, pgr_keypair *kp)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s.key", F.dir, name);
    assert_int_equal(pgr_keys_load_secret(path, kp, NULL), PGR_OK);
}

/* Signs payload with the named agent key and puts it on the events topic under key. */
static void forge(const char *signer, const char *key, json_t *payload)
{
    pgr_keypair kp;
    char topic[256];
    load_key(signer, &kp);
    char *text = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    char *env = pgr_envelope_seal(PGR_DOMAIN_EVENT, &kp, text, strlen(text));
    snprintf(topic, sizeof(topic), "%sevents", F.prefix);
    assert_int_equal(pgr_kafka_send(producer, topic, key, env, strlen(env), NULL), PGR_OK);
    assert_int_equal(rd_kafka_flush(producer, 10000), 0);
    free(text);
    free(env);
}

static json_t *event(const char *type, const char *agent, const char *tenant, const char *job,
                     long long seq)
{
    return json_pack("{s:s, s:s, s:s?, s:s?, s:I, s:s}", "type", type, "agent_id", agent,
                     "tenant_id", tenant, "job_id", job, "seq", (json_int_t)seq, "at",
                     "2026-01-01T00:00:00Z");
}

static json_t *result(json_t *ev, const char *outcome, const char *from_version)
{
    json_object_set_new(ev, "job_type", json_string("apply"));
    json_object_set_new(ev, "outcome", json_string(outcome));
    json_object_set_new(ev, "code", json_string("ok"));
    json_object_set_new(ev, "message", json_string("forged"));
    json_object_set_new(ev, "from_version", json_string(from_version));
    json_object_set_new(ev, "verified", json_true());
    return ev;
}

static json_t *step(json_t *ev, const char *version, const char *object)
{
    json_object_set_new(ev, "version", json_string(version));
    json_object_set_new(ev, "step", json_integer(1));
    json_object_set_new(ev, "steps", json_integer(3));
    json_object_set_new(ev, "kind", json_string("sql"));
    json_object_set_new(ev, "object", json_string(object));
    json_object_set_new(ev, "state", json_string("started"));
    json_object_set_new(ev, "phi", json_false());
    return ev;
}

/* One row of the run, as text: every column an event could change. */
static void run_row(PGconn *ctl, const char *tenant, char *buf, size_t len)
{
    const char *params[] = {tenant};
    PGresult *r = PQexecParams(ctl,
                               "SELECT concat_ws('|', state, version, from_version, error, "
                               "agent_id, object, step, verified_at IS NOT NULL, job_id) FROM "
                               "pgrollout_control.tenant_runs WHERE rollout_id = 'bind-1' AND "
                               "tenant_id = $1",
                               1, NULL, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    snprintf(buf, len, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

static char *job_of(PGconn *ctl, const char *tenant, char *buf, size_t len)
{
    const char *params[] = {tenant};
    PGresult *r = PQexecParams(ctl,
                               "SELECT job_id FROM pgrollout_control.tenant_runs WHERE rollout_id "
                               "= 'bind-1' AND tenant_id = $1",
                               1, NULL, params, NULL, NULL, 0);
    assert_int_equal(PQntuples(r), 1);
    snprintf(buf, len, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return buf;
}

static long alerts(PGconn *ctl, const char *kid_of, const char *reason)
{
    char path[256], sql[1024];
    snprintf(path, sizeof(path), "%s/%s.pub", F.dir, kid_of);
    pgr_pubkey pk;
    assert_int_equal(pgr_keys_load_public(path, &pk, NULL), PGR_OK);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pgrollout_control.security_alerts WHERE kid = '%s' AND "
             "reason = '%s'",
             pk.kid, reason);
    return itest_scalar(ctl, sql);
}

/* Waits until the running coordinator recorded n alerts of the key with this reason. */
static void wait_alerts(PGconn *ctl, const char *kid_of, const char *reason, long n)
{
    for (int i = 0; i < 150 && alerts(ctl, kid_of, reason) < n; i++)
        sleep_ms(200);
    assert_int_equal(alerts(ctl, kid_of, reason), n);
}

/* Waits until district-001 and -002 are done and district-003's job is out (agent 2 is down). */
static void wait_for_two_done(PGconn *ctl)
{
    for (int i = 0; i < 600; i++) {
        if (itest_scalar_or(ctl,
                            "SELECT count(*) FROM pgrollout_control.tenant_runs WHERE "
                            "rollout_id = 'bind-1' AND state = 'succeeded'",
                            0) == 2 &&
            itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.tenant_runs WHERE "
                              "rollout_id = 'bind-1' AND tenant_id = 'district-003' AND state = "
                              "'sent'") == 1)
            return;
        sleep_ms(200);
    }
    fail_msg("district-001 and -002 did not finish while district-003's job waited");
}

static void forge_cross_tenant(PGconn *ctl, const char *job3)
{
    char before[1024], after[1024];
    long long big = 4000000000000000LL; /* above any real agent's numbers */
    run_row(ctl, "district-003", before, sizeof(before));
    /* agent 1's key, its own tenant in the event, district-003's job: the run is not its */
    forge("agent1", "district-001",
          result(event("result", "agent-1", "district-001", job3, big), "succeeded", "0"));
    wait_alerts(ctl, "agent1", "tenant does not match the job", 1);
    /* no tenant at all */
    forge("agent1", "agent-1",
          result(event("result", "agent-1", NULL, job3, big + 1), "failed", "0"));
    wait_alerts(ctl, "agent1", "rule: tenant_id", 1);
    /* a tenant the key may not speak for */
    forge("agent1", "district-003",
          result(event("result", "agent-1", "district-003", job3, big + 2), "failed", "0"));
    wait_alerts(ctl, "agent1", "rule: tenant_id not allowed for the key", 1);
    run_row(ctl, "district-003", after, sizeof(after));
    assert_string_equal(before, after);
}

static void forge_own_tenant(PGconn *ctl, const char *job3)
{
    char before[1024], after[1024];
    run_row(ctl, "district-003", before, sizeof(before));
    /* agent 2's key and tenant, but a version the job does not carry, and a from_version below
     * every version it does but not "0" (a later rollback target) */
    forge("agent2", "district-003",
          step(event("step", "agent-2", "district-003", job3, 900), "29991231000000", "x"));
    wait_alerts(ctl, "agent2", "version does not match the job", 1);
    forge(
        "agent2", "district-003",
        result(event("result", "agent-2", "district-003", job3, 901), "failed", "19990101000000"));
    wait_alerts(ctl, "agent2", "from_version does not match the job", 1);
    /* an outcome outside its list */
    json_t *ev = result(event("result", "agent-2", "district-003", job3, 902), "failed", "0");
    json_object_set_new(ev, "outcome", json_string("succeeded\"><script>"));
    forge("agent2", "district-003", ev);
    wait_alerts(ctl, "agent2", "rule: outcome", 1);
    run_row(ctl, "district-003", after, sizeof(after));
    assert_string_equal(before, after);
    /* a valid event is folded; an older number after it is refused */
    forge("agent2", "district-003",
          step(event("step", "agent-2", "district-003", job3, 1000), "20251106000000", "first"));
    for (int i = 0; i < 100; i++) {
        run_row(ctl, "district-003", after, sizeof(after));
        if (strstr(after, "|first|") != NULL)
            break;
        sleep_ms(200);
    }
    assert_non_null(strstr(after, "|first|"));
    forge("agent2", "district-003",
          step(event("step", "agent-2", "district-003", job3, 999), "20251106000000", "second"));
    wait_alerts(ctl, "agent2", "stale seq", 1);
    run_row(ctl, "district-003", before, sizeof(before));
    assert_string_equal(before, after);
}

/* A finished run keeps every field, even under its own agent's valid key and tenant. */
static void forge_final_run(PGconn *ctl)
{
    char job1[64], before[1024], after[1024];
    job_of(ctl, "district-001", job1, sizeof(job1));
    run_row(ctl, "district-001", before, sizeof(before));
    long stored = itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.events");
    /* numbered as the agent would now (higher would refuse its own later events: a stolen key
     * can silence its tenants, never reach another) */
    json_t *ev = result(event("result", "agent-1", "district-001", job1, now_us()), "failed",
                        "20251106000001");
    json_object_set_new(ev, "code", json_string("db"));
    forge("agent1", "district-001", ev);
    for (int i = 0; i < 100 && itest_scalar(ctl, "SELECT count(*) FROM "
                                                 "pgrollout_control.events") == stored;
         i++)
        sleep_ms(200);
    run_row(ctl, "district-001", after, sizeof(after));
    assert_string_equal(before, after);
    assert_non_null(strstr(after, "succeeded|"));
}

static void test_event_binding_stolen_agent_key(void **state)
{
    (void)state;
    char plan[1024], job3[64];
    pgr_error err;
    int derr = 0;
    pgr_config *cfg = fleet_kafka_config(&F);
    assert_int_equal(pgr_kafka_producer_new(cfg, &producer, &derr, &err), PGR_OK);
    fleet_start_agent(&F, 0); /* agent 2 stays down: district-003's run waits for it */
    snprintf(plan, sizeof(plan), PLAN, "bind-1");
    FILE *run = fleet_run_start(&F, plan, 300);
    PGconn *ctl = itest_connect(F.ctl_db);
    wait_for_two_done(ctl);
    job_of(ctl, "district-003", job3, sizeof(job3));
    forge_cross_tenant(ctl, job3);
    forge_own_tenant(ctl, job3);
    forge_final_run(ctl);
    /* nothing crossed: the tenant database of district-003 has no job yet */
    PGconn *t3 = itest_connect(F.db[2]);
    assert_int_equal(itest_scalar(t3, "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid "
                                      "= i.indexrelid WHERE c.relname LIKE 'idx_%'"),
                     0);
    PQfinish(t3);
    /* the coordinator kept running; agent 2 comes and the rollout finishes */
    fleet_start_agent(&F, 1);
    int rc = fleet_run_finish(run, out, sizeof(out));
    if (rc != 0)
        fail_msg("rollout did not finish after the forged events:\n%s", out);
    for (int t = 0; t < F.n; t++) {
        PGconn *c = itest_connect(F.db[t]);
        fleet_assert_migrated(c);
        PQfinish(c);
    }
    /* restarted agents number their events above what they sent before: a second rollout */
    assert_int_equal(fleet_stop_agent(&F, 0, SIGTERM), 0);
    assert_int_equal(fleet_stop_agent(&F, 1, SIGTERM), 0);
    fleet_start_all(&F);
    snprintf(plan, sizeof(plan), PLAN, "bind-2");
    rc = fleet_run(&F, plan, out, sizeof(out));
    if (rc != 0)
        fail_msg("a rollout after restarting the agents failed:\n%s", out);
    assert_int_equal(itest_scalar(ctl, "SELECT count(*) FROM pgrollout_control.security_alerts "
                                       "WHERE reason = 'stale seq'"),
                     1);
    PQfinish(ctl);
    rd_kafka_destroy(producer);
    pgr_config_free(cfg);
    fleet_stop_all(&F);
}

int main(void)
{
    fleet_setup(&F, 4 * 1024 * 1024);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_binding_stolen_agent_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
