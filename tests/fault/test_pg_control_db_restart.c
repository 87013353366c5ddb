/* test_pg_control_db_restart.c - the control database restarted mid-rollout (issue 9).
 *
 * The control database lives on a private PostgreSQL instance (never the shared server); six
 * tenants on the shared server, two agents, `pgrollout run --collect-audit` in two waves of one
 * job at a time. When the first tenant has succeeded the test stops the control database for
 * three seconds (the agents go on and their events wait in Kafka) and starts it again. The
 * coordinator must reconnect, store every event and audit record it read - committing no Kafka
 * offset for a message it could not store - and finish the rollout: every tenant succeeded,
 * each event the agents sent stored exactly once, each job's result once, every tenant's
 * audit chain complete and verified.
 */
#include "rollout_env.h"
#include "pg_private.h"

#include <jansson.h>

#include "pgr/crypto.h"
#include "pgr/keyring.h"

#define MIGS     PGR_SOURCE_DIR "/migrations"
#define TENANTS  6
#define OUTAGE_S 3

static fleet F;
static pg_private P;
static char out[1 << 20];

/* Polls a control-database count until it reaches want (the coordinator works meanwhile and
 * may not have installed its schema yet: an error counts as 0). */
static void wait_ctl(const char *sql, long want, const char *what)
{
    for (int i = 0; i < 1200; i++) {
        PGconn *c = itest_connect(F.ctl_db);
        long v = itest_scalar_or(c, sql, 0);
        PQfinish(c);
        if (v >= want)
            return;
        struct timespec t = {0, 100000000L};
        nanosleep(&t, NULL);
    }
    fail_msg("timed out waiting for %s", what);
}

/* Coordinator processes started in the background; any still running when the test program
 * ends (a failed test) are stopped. */
static pid_t bg_pids[2];

static void kill_background(void)
{
    for (int i = 0; i < 2; i++) {
        if (bg_pids[i] > 0 && kill(bg_pids[i], SIGKILL) == 0)
            waitpid(bg_pids[i], NULL, 0);
    }
}

/* Runs `pgrollout ARGS...` (NULL-terminated, at most 10) in the background with its output in
 * dir/<name>.out; slot 0 or 1. */
static pid_t spawn(int slot, const char *name, const char *const *args)
{
    char log[256], *argv[12];
    int n = 0;
    snprintf(log, sizeof(log), "%s/%s.out", F.dir, name);
    argv[n++] = (char *)(uintptr_t)COORD_BIN;
    for (; args[n - 1] != NULL && n < 11; n++)
        argv[n] = (char *)(uintptr_t)args[n - 1];
    argv[n] = NULL;
    pid_t pid = fleet_spawn(log, false, argv);
    if (bg_pids[0] == 0 && bg_pids[1] == 0)
        atexit(kill_background);
    bg_pids[slot] = pid;
    return pid;
}

/* Waits for a spawned process; its output goes into out. Returns its exit status. */
static int wait_spawned(int slot, const char *name)
{
    int st = 0;
    char path[256];
    assert_int_equal(waitpid(bg_pids[slot], &st, 0), bg_pids[slot]);
    bg_pids[slot] = 0;
    snprintf(path, sizeof(path), "%s/%s.out", F.dir, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

/* `pgrollout run --collect-audit` of plan, and a standalone `audit collect` in a consumer group
 * of its own (coordinator id "second-..."), which reads every audit record from the start. */
static void start_coordinators(const char *plan)
{
    char plan_path[256], cfg[256], cfg2[256], cmd[1024];
    snprintf(plan_path, sizeof(plan_path), "%s/plan.json", F.dir);
    itest_write_file(plan_path, plan);
    snprintf(cfg, sizeof(cfg), "%s/coord.ini", F.dir);
    snprintf(cfg2, sizeof(cfg2), "%s/coord2.ini", F.dir);
    snprintf(cmd, sizeof(cmd), "sed 's/^\\[coordinator\\]/[coordinator]\\nid = second-%s/' %s > %s",
             F.prefix, cfg, cfg2);
    assert_int_equal(system(cmd), 0);
    spawn(0, "coord",
          (const char *const[]){"run", "--config", cfg, "--plan", plan_path, "--timeout", "150",
                                "--collect-audit", NULL});
    /* after the coordinator installed the control schema (two installing at once could clash) */
    wait_ctl("SELECT count(*) FROM pgrollout_control.rollouts", 1, "the rollout to be created");
    spawn(1, "collect",
          (const char *const[]){"audit", "collect", "--config", cfg2, "--idle-exit", "30", NULL});
}

/* --- the events topic, read whole --------------------------------------------------------- */

typedef struct topic_count {
    int job_events;  /* non-heartbeat messages */
    int stored_once; /* of those, stored exactly once (by digest) */
    int heartbeats;
} topic_count;

static rd_kafka_t *reader_new(void)
{
    char errstr[256], group[128];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    snprintf(group, sizeof(group), "pgr-fault-reader-%s", F.prefix);
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", itest_kafka_bootstrap(), errstr,
                                       sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* Assigns every partition of topic from its start; hi[p] receives each high watermark. */
static int assign_all(rd_kafka_t *rk, const char *topic, int64_t hi[64])
{
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    assert_int_equal(rd_kafka_metadata(rk, 0, t, &md, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(md->topic_cnt, 1);
    int parts = md->topics[0].partition_cnt;
    assert_true(parts > 0 && parts <= 64);
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
    for (int p = 0; p < parts; p++) {
        int64_t lo = 0;
        assert_int_equal(rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi[p], 10000),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    assert_int_equal(rd_kafka_assign(rk, l), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(l);
    return parts;
}

/* How often the message with this digest is stored in pgrollout_control.events. */
static long stored_count(PGconn *ctl, const char *digest)
{
    const char *params[] = {digest};
    PGresult *r =
        PQexecParams(ctl, "SELECT count(*) FROM pgrollout_control.events WHERE digest = $1", 1,
                     NULL, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    long n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

/* Reads the events topic up to its current end: each job event (signed by an agent key) must be
 * stored exactly once, keyed by the digest of the signed message. */
static topic_count check_events_topic(void)
{
    char topic[256], path[256];
    int64_t hi[64], next[64];
    topic_count n = {0, 0, 0};
    pgr_keyring *kr = NULL;
    snprintf(path, sizeof(path), "%s/agents.ring", F.dir);
    assert_int_equal(pgr_keyring_load(path, &kr, NULL), PGR_OK);
    snprintf(topic, sizeof(topic), "%sevents", F.prefix);
    rd_kafka_t *rk = reader_new();
    int parts = assign_all(rk, topic, hi);
    PGconn *ctl = itest_connect(F.ctl_db);
    int done = 0;
    for (int p = 0; p < parts; p++) {
        next[p] = 0;
        done += hi[p] == 0;
    }
    for (int idle = 0; done < parts && idle < 60;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        if (m == NULL || m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            idle += m == NULL;
            if (m != NULL)
                rd_kafka_message_destroy(m);
            continue;
        }
        int p = (int)m->partition;
        if (m->offset < hi[p]) {
            char digest[PGR_SHA256_HEX_LEN];
            json_t *ev = fleet_event_open(kr, m);
            const char *type = json_string_value(json_object_get(ev, "type"));
            assert_non_null(type);
            pgr_crypto_sha256_hex(m->payload, m->len, digest);
            if (strcmp(type, "heartbeat") == 0) {
                n.heartbeats++;
            } else {
                n.job_events++;
                n.stored_once += stored_count(ctl, digest) == 1;
            }
            json_decref(ev);
            next[p] = m->offset + 1;
            done += next[p] == hi[p];
        }
        rd_kafka_message_destroy(m);
    }
    assert_int_equal(done, parts);
    PQfinish(ctl);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    pgr_keyring_free(kr);
    return n;
}

/* --- the test ----------------------------------------------------------------------------- */

static int audit_cmd(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), COORD_BIN " audit %s --config %s/coord.ini", args, F.dir);
    return run_cmd(cmd, out, sizeof(out));
}

static void test_pg_control_db_restart_mid_rollout(void **state)
{
    char server[64], plan[1024];
    (void)state;
    pgp_start(&P);
    snprintf(server, sizeof(server), "host=127.0.0.1 port=%d", P.port);
    fleet_setup_ctl(&F, TENANTS, 4 * 1024 * 1024, server);
    fleet_start_agent(&F, 0);
    fleet_start_agent(&F, 1);
    snprintf(plan, sizeof(plan),
             "{\"name\": \"ctl-restart\", \"migrations\": \"" MIGS "\", \"waves\": ["
             "{\"name\": \"first\", \"tenants\": [\"%s\", \"%s\"], \"max_parallel\": 1}, "
             "{\"name\": \"rest\", \"tenants\": [\"%s\", \"%s\", \"%s\", \"%s\"], "
             "\"max_parallel\": 1}], \"tenants\": [\"%s\", \"%s\", \"%s\", \"%s\", \"%s\", "
             "\"%s\"]}",
             F.tenant[0], F.tenant[1], F.tenant[2], F.tenant[3], F.tenant[4], F.tenant[5],
             F.tenant[0], F.tenant[1], F.tenant[2], F.tenant[3], F.tenant[4], F.tenant[5]);
    start_coordinators(plan);
    wait_ctl("SELECT count(*) FROM pgrollout_control.tenant_runs WHERE state = 'succeeded'", 1,
             "the first tenant to succeed");
    long before =
        fleet_ctl_scalar(&F, "SELECT count(*) FROM pgrollout_control.tenant_runs WHERE state = "
                             "'succeeded'");
    print_message("stopping the control database for %d s with %ld of %d tenants done\n", OUTAGE_S,
                  before, TENANTS);
    assert_true(before < TENANTS);
    pgp_outage(&P, OUTAGE_S);
    int rc = wait_spawned(0, "coord");
    if (rc != 0)
        fail_msg("pgrollout run exited %d:\n%s", rc, out);
    assert_non_null(strstr(out, "control database connection lost"));
    assert_non_null(strstr(out, "control database reconnected"));
    assert_non_null(strstr(out, "rollout ctl-restart: succeeded (0 failed)"));
    assert_int_equal(
        fleet_ctl_scalar(&F, "SELECT count(*) FROM pgrollout_control.tenant_runs WHERE state "
                             "= 'succeeded'"),
        TENANTS);
    /* every job's result stored once: one per job (the apply jobs check their objects
     * themselves: no verify jobs) */
    long jobs = fleet_ctl_scalar(&F, "SELECT count(*) FROM pgrollout_control.job_outbox");
    assert_int_equal(jobs, TENANTS);
    assert_int_equal(fleet_ctl_scalar(&F,
                                      "SELECT count(DISTINCT job_id) FROM pgrollout_control.events "
                                      "WHERE type = 'result'"),
                     jobs);
    assert_int_equal(fleet_ctl_scalar(&F,
                                      "SELECT count(*) FROM pgrollout_control.events WHERE type = "
                                      "'result'"),
                     jobs);
    /* each event the agents sent is stored exactly once, and nothing else is */
    topic_count n = check_events_topic();
    print_message("events topic: %d job event(s), %d stored once; %d heartbeat(s)\n", n.job_events,
                  n.stored_once, n.heartbeats);
    assert_true(n.job_events > 2 * TENANTS);
    assert_int_equal(n.stored_once, n.job_events);
    assert_int_equal(fleet_ctl_scalar(&F,
                                      "SELECT count(*) FROM pgrollout_control.events WHERE type <> "
                                      "'heartbeat'"),
                     n.job_events);
    /* the audit records: what the collector inside the run did not get yet, a collector run
     * gets; then every tenant's chain is complete and verifies */
    fleet_wait_published(&F);
    long records = 0;
    for (int t = 0; t < TENANTS; t++)
        records += fleet_outbox(&F, t, false);
    /* the standalone collector, through the same outage, read every record */
    rc = wait_spawned(1, "collect");
    const char *p = strstr(out, "audit collect: ");
    if (rc != 0 || p == NULL)
        fail_msg("audit collect exited %d:\n%s", rc, out);
    print_message("standalone collector: %ld message(s) for %ld record(s)%s\n",
                  strtol(p + strlen("audit collect: "), NULL, 10), records,
                  strstr(out, "control database reconnected") != NULL ? ", reconnected" : "");
    assert_true(strtol(p + strlen("audit collect: "), NULL, 10) >= records);
    assert_int_equal(audit_cmd("collect --idle-exit 5"), 0);
    for (int t = 0; t < TENANTS; t++) {
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM pgrollout_control.audit_log WHERE tenant_id = '%s'",
                 F.tenant[t]);
        assert_int_equal(fleet_ctl_scalar(&F, sql), fleet_outbox(&F, t, false));
    }
    assert_int_equal(
        fleet_ctl_scalar(&F, "SELECT count(*) FROM pgrollout_control.audit_alerts WHERE kind "
                             "IN ('gap', 'fork', 'chain_break', 'broken_hash')"),
        0);
    assert_int_equal(audit_cmd("verify"), 0);
    assert_non_null(strstr(out, "0 broken chain(s)"));
    fleet_stop_agent(&F, 0, SIGTERM);
    fleet_stop_agent(&F, 1, SIGTERM);
    for (int t = 0; t < TENANTS; t++)
        itest_drop_db(F.db[t]);
    pgp_stop(&P);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg_control_db_restart_mid_rollout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
