/* test_audit_barrier.c - a hostile migration author (docs/SECURITY.md, "Hostile migration
 * author"), against the real broker, PostgreSQL and `pgrollout-agent run` agents driven by
 * `pgrollout run`:
 *   (a) a `sql` step that deletes the audit outbox and pgrollout.jobs and moves the chain head
 *       back, run by an agent that is a superuser: the job's job_accepted and the step's
 *       step_start were acknowledged by Kafka before the step ran (read back from the audit
 *       topic), and the collector then raises fork alerts that `pgrollout audit verify` reports
 *       (exit 1, tenant and seqs named);
 *   (b) the same step under the least-privilege roles of deploy/sql/agent-role.sql (the author's
 *       SQL runs as the owner role): permission denied on schema pgrollout, nothing there
 *       changed;
 *   (c) the older job re-sent after (a) deleted pgrollout.jobs: refused as stale_seq from the
 *       seq kept in agent.state_dir, with a signed security event naming both numbers, the
 *       tenant's catalog unchanged.
 * After each, the agents still run and a normal job succeeds. */
#include "rollout_env.h"

#include <jansson.h>
#include <sys/stat.h>

#define MIGS     PGR_SOURCE_DIR "/migrations"
#define WC_LAST  "20251106000003"
#define HOSTILE  "20260301000000"
#define BENIGN   "20260302000000"
#define T_SUPER  0 /* district-001: agent 1, a superuser */
#define T_LEAST  2 /* district-003: agent 2, the least-privilege role */
#define WAIT_MS  30000
#define MAX_MSGS 4096

static fleet F;
static char out[1 << 20];
static char agent_role[64], owner_role[64];
static char dir_hostile[256], dir_benign[256];

/* Does what an author with the agent's privileges could do to hide the job (delete the outbox and
 * the jobs, reset the chain head), then records the time it ran (a table). */
static const char hostile_sql[] =
    "-- " HOSTILE " hostile-cleanup\n"
    "--\n"
    "-- A migration that erases the audit evidence of its own job (test only).\n"
    "\n"
    "-- pgrollout:up\n"
    "\n"
    "-- pgrollout:step sql lock=ACCESS_EXCLUSIVE\n"
    "DELETE FROM pgrollout.audit_outbox;\n"
    "UPDATE pgrollout.audit_head SET seq = 0, hash = repeat('0', 64);\n"
    "DELETE FROM pgrollout.jobs;\n"
    "CREATE TABLE public.hostile_ran AS SELECT clock_timestamp() AS at;\n"
    "\n"
    "-- pgrollout:down\n"
    "\n"
    "-- pgrollout:step sql lock=ACCESS_EXCLUSIVE\n"
    "DROP TABLE IF EXISTS public.hostile_ran;\n";

static const char benign_sql[] = "-- " BENIGN " benign-table\n"
                                 "--\n"
                                 "-- A harmless migration after the hostile one (test only).\n"
                                 "\n"
                                 "-- pgrollout:up\n"
                                 "\n"
                                 "-- pgrollout:step sql lock=ACCESS_EXCLUSIVE\n"
                                 "CREATE TABLE IF NOT EXISTS public.benign_after (id int);\n"
                                 "\n"
                                 "-- pgrollout:down\n"
                                 "\n"
                                 "-- pgrollout:step sql lock=ACCESS_EXCLUSIVE\n"
                                 "DROP TABLE IF EXISTS public.benign_after;\n";

/* A migrations directory: the White Cross files, plus the hostile one, plus the benign one. */
static void make_dir(char *dir, size_t len, const char *name, bool benign)
{
    char cmd[1024], path[512];
    snprintf(dir, len, "%s/%s", F.dir, name);
    snprintf(cmd, sizeof(cmd), "mkdir -p %s && cp " MIGS "/*.sql %s/", dir, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof(path), "%s/" HOSTILE "-hostile-cleanup.sql", dir);
    itest_write_file(path, hostile_sql);
    if (benign) {
        snprintf(path, sizeof(path), "%s/" BENIGN "-benign-table.sql", dir);
        itest_write_file(path, benign_sql);
    }
}

/* Agent 2 (district-003) logs in as the least-privilege role and runs author SQL as the owner
 * role (agent.owner_role), as docs/OPERATIONS.md describes. */
static void least_privilege_agent2(void)
{
    char path[256], vars[256], from[128], to[192];
    int pid = (int)getpid();
    snprintf(agent_role, sizeof(agent_role), "sec_bar_agent_%d", pid);
    snprintf(owner_role, sizeof(owner_role), "sec_bar_owner_%d", pid);
    snprintf(vars, sizeof(vars), "-v agent_role=%s -v owner_role=%s -v app_role=", agent_role,
             owner_role);
    itest_psql_file(F.db[T_LEAST], "deploy/sql/agent-role.sql", vars);
    snprintf(path, sizeof(path), "%s/agent2.ini", F.dir);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    static char text[16384], edited[17000];
    size_t n = fread(text, 1, sizeof(text) - 1, fp);
    fclose(fp);
    text[n] = '\0';
    snprintf(from, sizeof(from), "dbname=%s\n", F.db[T_LEAST]);
    snprintf(to, sizeof(to), "dbname=%s user=%s\n", F.db[T_LEAST], agent_role);
    char *at = strstr(text, from);
    assert_non_null(at);
    *at = '\0';
    snprintf(edited, sizeof(edited), "%s%s%s", text, to, at + strlen(from));
    /* owner_role goes in [agent], the first section */
    char *agent = strstr(edited, "[agent]\n");
    assert_non_null(agent);
    snprintf(text, sizeof(text), "[agent]\nowner_role = %s\n%s", owner_role,
             agent + strlen("[agent]\n"));
    itest_write_file(path, text);
}

static int setup(void **state)
{
    (void)state;
    fleet_setup(&F, 4 * 1024 * 1024);
    least_privilege_agent2();
    make_dir(dir_hostile, sizeof(dir_hostile), "mig-hostile", false);
    make_dir(dir_benign, sizeof(dir_benign), "mig-benign", true);
    fleet_start_all(&F);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fleet_stop_all(&F);
    PGconn *admin = itest_connect("postgres");
    char sql[256];
    for (int t = 0; t < F.n; t++)
        itest_drop_db(F.db[t]);
    snprintf(sql, sizeof(sql), "DROP ROLE IF EXISTS %s", agent_role);
    itest_exec(admin, sql);
    snprintf(sql, sizeof(sql), "DROP ROLE IF EXISTS %s", owner_role);
    itest_exec(admin, sql);
    PQfinish(admin);
    return 0;
}

/* An apply of every file of dir on tenant t, or a rollback down to target when it is set. */
static int rollout(const char *name, const char *dir, const char *rollback_to, int t)
{
    char plan[1024], extra[128] = "";
    if (rollback_to != NULL)
        snprintf(extra, sizeof(extra), ", \"type\": \"rollback\", \"target\": \"%s\"", rollback_to);
    snprintf(plan, sizeof(plan),
             "{\"name\": \"%s\", \"migrations\": \"%s\"%s, \"tenants\": [\"%s\"]}", name, dir,
             extra, F.tenant[t]);
    return fleet_run(&F, plan, out, sizeof(out));
}

/* ---- reading a topic back --------------------------------------------------------------- */

typedef struct topic_msg {
    long long offset, ts_ms;
    json_t *payload; /* the verified payload; records: "record" parsed into "rec" */
} topic_msg;

typedef struct topic_log {
    topic_msg m[MAX_MSGS];
    int n;
} topic_log;

static topic_log audit_log, events_log;

static void topic_log_clear(topic_log *l)
{
    for (int i = 0; i < l->n; i++)
        json_decref(l->m[i].payload);
    l->n = 0;
}

/* Every message of tenant t's partition of the topic, from the beginning up to the high
 * watermark now, each verified with an agent key. */
static void topic_read(pgr_topic which, int t, topic_log *l)
{
    char topic[256], group[128];
    pgr_config *cfg = fleet_kafka_config(&F);
    pgr_kafka_topic_name(cfg, which, topic, sizeof(topic));
    snprintf(group, sizeof(group), "barrier-%s-%d", F.prefix, (int)which);
    rd_kafka_t *c = NULL;
    assert_int_equal(pgr_kafka_consumer_new(cfg, group, &c, NULL), PGR_OK);
    int parts = 0;
    assert_int_equal(pgr_kafka_partitions(c, topic, 10000, &parts, NULL), PGR_OK);
    int p = pgr_kafka_partition_for(F.tenant[t], parts);
    int64_t lo = 0, hi = 0;
    assert_int_equal(rd_kafka_query_watermark_offsets(c, topic, p, &lo, &hi, 10000), 0);
    rd_kafka_topic_partition_list_t *pl = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(pl, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(c, pl), 0);
    rd_kafka_topic_partition_list_destroy(pl);
    pgr_keyring *kr = fleet_agents_ring(&F);
    topic_log_clear(l);
    long long last = lo - 1;
    for (long long deadline = (long long)(now_s() * 1000) + WAIT_MS;
         last < hi - 1 && now_s() * 1000 < deadline;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 500);
        if (m == NULL)
            continue;
        char key[129];
        pgr_kafka_message_key(m, key, sizeof(key));
        if (m->err == 0 && strcmp(key, F.tenant[t]) == 0 && l->n < MAX_MSGS) {
            topic_msg *tm = &l->m[l->n++];
            rd_kafka_timestamp_type_t tt;
            tm->offset = m->offset;
            tm->ts_ms = rd_kafka_message_timestamp(m, &tt);
            tm->payload = fleet_message_open(
                kr, m, which == PGR_TOPIC_AUDIT ? PGR_DOMAIN_AUDIT : PGR_DOMAIN_EVENT);
            const char *rec = json_string_value(json_object_get(tm->payload, "record"));
            if (rec != NULL)
                json_object_set_new(tm->payload, "rec", json_loads(rec, 0, NULL));
        }
        if (m->err == 0)
            last = m->offset;
        rd_kafka_message_destroy(m);
    }
    assert_true(last >= hi - 1);
    pgr_keyring_free(kr);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    pgr_config_free(cfg);
}

static const char *rec_str(const topic_msg *m, const char *key)
{
    return json_string_value(json_object_get(json_object_get(m->payload, "rec"), key));
}

/* The first audit message whose record has action (and, when not NULL, job_id and version). */
static const topic_msg *find_record(const topic_log *l, const char *action, const char *job,
                                    const char *version)
{
    for (int i = 0; i < l->n; i++) {
        const topic_msg *m = &l->m[i];
        const char *a = rec_str(m, "action"), *j = rec_str(m, "job_id"), *v = rec_str(m, "version");
        if (a != NULL && strcmp(a, action) == 0 && (job == NULL || (j && strcmp(j, job) == 0)) &&
            (version == NULL || (v != NULL && strcmp(v, version) == 0)))
            return m;
    }
    return NULL;
}

/* ---- checks shared by the cases -------------------------------------------------------- */

static void assert_agents_alive(void)
{
    for (int a = 0; a < fleet_agents(&F); a++)
        assert_int_equal(kill(F.agent_pid[a], 0), 0);
}

/* When the step's SQL ran, in epoch milliseconds (the table it created). */
static long long hostile_ran_ms(int t)
{
    PGconn *c = itest_connect(F.db[t]);
    long long v = itest_scalar(c, "SELECT (extract(epoch FROM at) * 1000)::bigint FROM "
                                  "public.hostile_ran");
    PQfinish(c);
    return v;
}

static void collect_and_verify(int expect_rc)
{
    char cmd[1024];
    fleet_wait_published(&F);
    snprintf(cmd, sizeof(cmd), COORD_BIN " audit collect --idle-exit 5 --config %s/coord.ini",
             F.dir);
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
    snprintf(cmd, sizeof(cmd), COORD_BIN " audit verify --config %s/coord.ini", F.dir);
    int rc = run_cmd(cmd, out, sizeof(out));
    if (rc != expect_rc)
        fail_msg("audit verify exited %d, expected %d:\n%s", rc, expect_rc, out);
}

/* ---- (a) and (c): the agent is a superuser ---------------------------------------------- */

static char j1_envelope[1 << 16], j1_id[40];
static long long j1_seq;

static void normal_rollout_first(void)
{
    int rc = rollout("barrier-normal", MIGS, NULL, T_SUPER);
    if (rc != 0)
        fail_msg("normal rollout failed:\n%s", out);
    PGconn *c = itest_connect(F.db[T_SUPER]);
    PGresult *r = PQexec(c, "SELECT job_id, seq, envelope FROM pgrollout.jobs WHERE type = "
                            "'apply' ORDER BY seq DESC LIMIT 1");
    assert_int_equal(PQntuples(r), 1);
    snprintf(j1_id, sizeof(j1_id), "%s", PQgetvalue(r, 0, 0));
    j1_seq = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    snprintf(j1_envelope, sizeof(j1_envelope), "%s", PQgetvalue(r, 0, 2));
    PQclear(r);
    /* the barrier's cost shows in the job's duration (docs/BENCHMARKS.md) */
    print_message("White Cross apply job: %ld ms for %ld steps\n",
                  itest_scalar(c, "SELECT max((record::jsonb->>'duration_ms')::bigint) FROM "
                                  "pgrollout.audit_outbox WHERE record::jsonb->>'action' = "
                                  "'job_end'"),
                  itest_scalar(c, "SELECT count(*) FROM pgrollout.steps"));
    PQfinish(c);
}

static void test_audit_barrier_records_leave_before_hostile_sql(void **state)
{
    (void)state;
    normal_rollout_first();
    int rc = rollout("barrier-hostile", dir_hostile, NULL, T_SUPER);
    if (rc != 0)
        fail_msg("hostile rollout failed:\n%s", out);
    long long ran_ms = hostile_ran_ms(T_SUPER);
    PGconn *c = itest_connect(F.db[T_SUPER]);
    /* the step did what it meant to: the outbox and the jobs it knew are gone from the tenant */
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                     "record::jsonb->>'action' IN ('job_accepted', 'step_start')"),
                     0);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs WHERE seq IS NOT NULL"),
                     0);
    PQfinish(c);

    /* ... but the audit topic has the hostile job's acceptance and its step's start, produced
     * (and acknowledged: the step waited) before the SQL ran */
    topic_read(PGR_TOPIC_AUDIT, T_SUPER, &audit_log);
    const topic_msg *start = find_record(&audit_log, "step_start", NULL, HOSTILE);
    assert_non_null(start);
    char job[40];
    assert_non_null(rec_str(start, "job_id"));
    snprintf(job, sizeof(job), "%s", rec_str(start, "job_id"));
    const topic_msg *accepted = find_record(&audit_log, "job_accepted", job, NULL);
    const topic_msg *job_start = find_record(&audit_log, "job_start", job, NULL);
    assert_non_null(accepted);
    assert_non_null(job_start);
    print_message("job_accepted at offset %lld (%lld ms), step_start at offset %lld (%lld ms), "
                  "the step's SQL ran at %lld ms\n",
                  accepted->offset, accepted->ts_ms, start->offset, start->ts_ms, ran_ms);
    assert_true(accepted->offset < start->offset);
    assert_true(job_start->offset < start->offset);
    assert_true(accepted->ts_ms <= ran_ms);
    assert_true(start->ts_ms <= ran_ms);
    /* detected centrally: fork alerts, and verify names the tenant and the seqs */
    collect_and_verify(1);
    /* the step's own step_done came later, on the moved-back chain: seq 1 a second time */
    topic_read(PGR_TOPIC_AUDIT, T_SUPER, &audit_log);
    const topic_msg *done = find_record(&audit_log, "step_done", job, HOSTILE);
    assert_non_null(done);
    start = find_record(&audit_log, "step_start", job, HOSTILE);
    assert_true(done->offset > start->offset);
    assert_int_equal(json_integer_value(json_object_get(done->payload, "seq")), 1);
    assert_non_null(strstr(out, "BROKEN tenant district-001 at seq 1: fork"));
    c = itest_connect(F.ctl_db);
    assert_true(itest_scalar(c, "SELECT count(*) FROM pgrollout_control.audit_alerts WHERE "
                                "tenant_id = 'district-001' AND kind = 'fork' AND seq = 1") >= 1);
    PQfinish(c);
    assert_agents_alive();
}

static void test_audit_barrier_replay_refused_from_state_dir(void **state)
{
    char path[512];
    struct stat st;
    (void)state;
    /* (a) ran: pgrollout.jobs of district-001 lost every seq, the state directory kept it */
    snprintf(path, sizeof(path), "%s/jobseq/district-001.seq", F.dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    long long kept = strtoll(fleet_read_line(path), NULL, 10);
    assert_true(kept > j1_seq);
    PGconn *c = itest_connect(F.db[T_SUPER]);
    char *before = catalog_snapshot(c);

    /* a restarted agent (it forgets the digests of the messages it handled last) keeps the seq:
     * the older job, byte for byte, put on the jobs topic again */
    assert_int_equal(fleet_stop_agent(&F, 0, SIGTERM), 0);
    fleet_start_agent(&F, 0);
    pgr_config *cfg = fleet_kafka_config(&F);
    rd_kafka_t *p = NULL;
    char topic[256];
    assert_int_equal(pgr_kafka_producer_new(cfg, &p, NULL, NULL), PGR_OK);
    pgr_kafka_topic_name(cfg, PGR_TOPIC_JOBS, topic, sizeof(topic));
    assert_int_equal(
        pgr_kafka_send(p, topic, "district-001", j1_envelope, strlen(j1_envelope), NULL), PGR_OK);
    assert_int_equal(rd_kafka_flush(p, 10000), 0);
    rd_kafka_destroy(p);
    pgr_config_free(cfg);

    /* refused: a signed security event naming the tenant and both numbers */
    const topic_msg *ev = NULL;
    char want[160];
    snprintf(want, sizeof(want),
             "agent state directory: %lld; rows of pgrollout.jobs were deleted or the database "
             "was restored: reconcile before any job runs)",
             kept);
    for (int i = 0; i < 60 && ev == NULL; i++) {
        topic_read(PGR_TOPIC_EVENTS, T_SUPER, &events_log);
        for (int k = 0; k < events_log.n && ev == NULL; k++) {
            json_t *pl = events_log.m[k].payload;
            const char *type = json_string_value(json_object_get(pl, "type"));
            const char *jid = json_string_value(json_object_get(pl, "job_id"));
            if (strcmp(type, "security") == 0 && jid != NULL && strcmp(jid, j1_id) == 0)
                ev = &events_log.m[k];
        }
        if (ev == NULL)
            sleep(1);
    }
    assert_non_null(ev);
    const char *detail = json_string_value(json_object_get(ev->payload, "detail"));
    print_message("security event: %s\n", detail);
    assert_string_equal(json_string_value(json_object_get(ev->payload, "reason")), "stale_seq");
    assert_non_null(strstr(detail, "tenant \"district-001\""));
    assert_non_null(strstr(detail, want));
    /* nothing accepted, nothing ran */
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM pgrollout.jobs WHERE job_id = '%s'", j1_id);
    assert_int_equal(itest_scalar(c, sql), 0);
    assert_true(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                "record::jsonb->>'action' = 'job_rejected' AND "
                                "record::jsonb->>'reason' = 'stale_seq'") >= 1);
    char *after = catalog_snapshot(c);
    assert_string_equal(after, before);
    free(after);
    free(before);
    assert_agents_alive();

    /* while the two disagree even a new job (a seq above both) is refused ... */
    int rc = rollout("barrier-refused", dir_benign, NULL, T_SUPER);
    assert_int_not_equal(rc, 0);
    assert_int_equal(itest_scalar(c, "SELECT (to_regclass('public.benign_after') IS NOT NULL)"
                                     "::int"),
                     0);
    /* ... until an operator reconciles (docs/OPERATIONS.md): a row holding the kept seq */
    char fix[256];
    snprintf(fix, sizeof(fix),
             "INSERT INTO pgrollout.jobs (job_id, seq, type, state, operator) VALUES "
             "(gen_random_uuid()::text, %lld, 'reconcile', 'succeeded', 'operator')",
             kept);
    itest_exec(c, fix);
    rc = rollout("barrier-after", dir_benign, NULL, T_SUPER);
    if (rc != 0)
        fail_msg("rollout after the reconciliation failed:\n%s", out);
    assert_int_equal(itest_scalar(c, "SELECT (to_regclass('public.benign_after') IS NOT NULL)"
                                     "::int"),
                     1);
    fleet_assert_migrated(c);
    PQfinish(c);
    assert_agents_alive();
}

/* ---- (b): least privilege ---------------------------------------------------------------- */

static void test_audit_barrier_owner_role_cannot_touch_pgrollout(void **state)
{
    (void)state;
    int rc = rollout("barrier-least", dir_hostile, NULL, T_LEAST);
    assert_int_not_equal(rc, 0);
    PGconn *c = itest_connect(F.db[T_LEAST]);
    /* the step failed on the schema's permissions, and everything before it stands */
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                     "record::jsonb->>'action' = 'step_failed' AND "
                                     "record::jsonb->>'version' = '" HOSTILE "' AND "
                                     "record::jsonb->>'error' LIKE "
                                     "'%permission denied for schema pgrollout%'"),
                     1);
    assert_int_equal(itest_scalar(c, "SELECT (to_regclass('public.hostile_ran') IS NULL)::int"), 1);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs WHERE seq IS NOT NULL"),
                     1);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                     "record::jsonb->>'action' IN ('job_accepted', 'job_start')"),
                     2);
    /* the chain is whole: seq 1..head, each prev_hash the hash before it */
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM (SELECT seq, prev_hash, lag(hash, 1, "
                                     "repeat('0', 64)) OVER (ORDER BY seq) AS want, row_number() "
                                     "OVER (ORDER BY seq) AS n FROM pgrollout.audit_outbox) o "
                                     "WHERE seq <> n OR prev_hash <> want"),
                     0);
    assert_int_equal(itest_scalar(c, "SELECT (SELECT seq FROM pgrollout.audit_head) - (SELECT "
                                     "count(*) FROM pgrollout.audit_outbox)"),
                     0);
    /* the White Cross steps before it ran as usual */
    fleet_assert_migrated(c);
    assert_agents_alive();
    /* a normal job afterwards: the failed migration rolled back (its down step runs as the
     * owner role too) */
    rc = rollout("barrier-least-after", dir_hostile, WC_LAST, T_LEAST);
    if (rc != 0)
        fail_msg("rollback after the refused step failed:\n%s", out);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.schema_migrations WHERE "
                                     "version = '" HOSTILE "' AND status = 'rolled_back'"),
                     1);
    PQfinish(c);
    assert_agents_alive();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_audit_barrier_records_leave_before_hostile_sql),
        cmocka_unit_test(test_audit_barrier_replay_refused_from_state_dir),
        cmocka_unit_test(test_audit_barrier_owner_role_cannot_touch_pgrollout),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
