/*
 * rollout_env.h - a small fleet for integration tests: keys made with `pgrollout keygen`,
 * keyrings, tenant databases, a control database, agent and coordinator configuration files,
 * agents started as real processes, and a test-side Kafka producer/consumer to put hostile
 * messages on the jobs topic and read the events topic.
 */
#ifndef PGR_ROLLOUT_ENV_H
#define PGR_ROLLOUT_ENV_H

#include "agent_run.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <jansson.h>

#include "pgr/envelope.h"
#include "pgr/job.h"
#include "pgr/kafka.h"

#define COORD_BIN  PGR_BIN_DIR "/pgrollout"
#define NTENANTS   3 /* the default fleet */
#define MAXTENANTS 256
#define MAXAGENTS  4

typedef struct fleet {
    char dir[64];
    char prefix[64];
    char ctl_db[64];
    char db[MAXTENANTS][64];
    const char *tenant[MAXTENANTS];
    char names[MAXTENANTS][32];
    int n;      /* tenants; with 2 agents, agent 1 serves the first two thirds, agent 2 the rest */
    int agents; /* 2 (fleet_setup_agents for more): tenant t then goes to agent t % agents */
    int timeout_s; /* of fleet_run; 0 means 240 (set after setup) */
    pid_t agent_pid[MAXAGENTS];
} fleet;

/* Agent 1 serves tenant t when this is true, agent 2 otherwise. */
static inline bool fleet_agent1(const fleet *f, int t)
{
    return t < (2 * f->n) / 3;
}

static inline int fleet_agents(const fleet *f)
{
    return f->agents;
}

/* The agent (0-based) that serves tenant t. */
static inline int fleet_agent_of(const fleet *f, int t)
{
    return fleet_agents(f) == 2 ? (fleet_agent1(f, t) ? 0 : 1) : t % fleet_agents(f);
}

static inline void fleet_keygen(fleet *f, const char *name)
{
    char cmd[512], out[1024];
    snprintf(cmd, sizeof(cmd), COORD_BIN " keygen --out %s --name %s", f->dir, name);
    assert_int_equal(run_cmd(cmd, out, sizeof(out)), 0);
}

static inline char *fleet_read_line(const char *path)
{
    static char line[512];
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    assert_non_null(fgets(line, sizeof(line), fp));
    fclose(fp);
    line[strcspn(line, "\n")] = '\0';
    return line;
}

/* Extra lines of every agent's [kafka] section (set before the fleet's setup), or NULL. */
static const char *fleet_agent_kafka_extra;
/* A pool name (set before the fleet's setup), or NULL: with one, every agent is configured with
 * every tenant and `pool`, and every agent key may speak for every tenant. */
static const char *fleet_pool;

/* Whether agent a is configured with tenant t. */
static inline bool fleet_configured(const fleet *f, int a, int t)
{
    return fleet_pool != NULL || fleet_agent_of(f, t) == a;
}

/* Agent 1 serves tenants 0 and 1, agent 2 serves tenant 2. */
static inline void fleet_agent_config(fleet *f, int a, int max_job_bytes)
{
    char path[256], text[16384];
    int n = snprintf(text, sizeof(text),
                     "[agent]\nid = agent-%d\nsecret_key = %s/agent%d.key\nkeyring = "
                     "%s/coordinators.ring\nstate_dir = %s\nmax_job_bytes = %d\nheartbeat_ms = "
                     "1000\n%s%s%s[topics]\nprefix = %s\n[kafka]\nbootstrap.servers = %s\n%s"
                     "[tenants]\n",
                     a + 1, f->dir, a + 1, f->dir, f->dir, max_job_bytes,
                     fleet_pool != NULL ? "pool = " : "", fleet_pool != NULL ? fleet_pool : "",
                     fleet_pool != NULL ? "\n" : "", f->prefix, itest_kafka_bootstrap(),
                     fleet_agent_kafka_extra != NULL ? fleet_agent_kafka_extra : "");
    for (int t = 0; t < f->n; t++) {
        if (fleet_configured(f, a, t))
            n += snprintf(text + n, sizeof(text) - (size_t)n, "%s = dbname=%s\n", f->tenant[t],
                          f->db[t]);
    }
    snprintf(path, sizeof(path), "%s/agent%d.ini", f->dir, a + 1);
    itest_write_file(path, text);
}

/* Creates the control database: on the tenants' server (ctl_server NULL), or on another server
 * whose connection parameters ctl_server gives ("host=127.0.0.1 port=N"); f->ctl_db then carries
 * them too, so that itest_connect(f->ctl_db) and the coordinator's control_dsn reach it. */
static inline void fleet_create_ctl_db(fleet *f, const char *ctl_server)
{
    char name[32], admin[160], sql[96];
    if (ctl_server == NULL) {
        itest_create_db("itest_ctl", f->ctl_db, sizeof(f->ctl_db));
        return;
    }
    snprintf(name, sizeof(name), "itest_ctl_%d", (int)getpid());
    snprintf(admin, sizeof(admin), "postgres %s", ctl_server);
    PGconn *c = itest_connect(admin);
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", name);
    itest_exec(c, sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    itest_exec(c, sql);
    PQfinish(c);
    snprintf(f->ctl_db, sizeof(f->ctl_db), "%s %s", name, ctl_server);
}

/* Fleet directories (keys, configs, agent logs) are removed when the test program ends, unless
 * PGR_KEEP_TMP=1 keeps them for a post-mortem. */
static char fleet_dirs[16][64];
static int fleet_dir_count;

static void fleet_remove_dirs(void)
{
    const char *keep = getenv("PGR_KEEP_TMP");
    for (int i = 0; i < fleet_dir_count && (keep == NULL || strcmp(keep, "1") != 0); i++) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fleet_dirs[i]); /* a mkdtemp name */
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", fleet_dirs[i]);
    }
}

/* Writes the keyring file name of the fleet's directory (mode 0644: keyrings writable by group
 * or others are refused). */
static inline void fleet_write_ring(const fleet *f, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    itest_write_file(path, text);
    assert_int_equal(chmod(path, 0644), 0);
}

/* A fleet of n tenants served by `agents` agents (2 to MAXAGENTS), its control database on
 * ctl_server (NULL: the tenants' server). Tests may declare the fleet on the stack: every field
 * is set here. */
static inline void fleet_setup_full(fleet *f, int n, int agents, int max_job_bytes,
                                    const char *ctl_server)
{
    char path[256], text[16384], tpl[64] = "";
    assert_true(n >= 1 && n <= MAXTENANTS && agents >= 2 && agents <= MAXAGENTS);
    memset(f, 0, sizeof(*f));
    f->n = n;
    f->agents = agents;
    for (int t = 0; t < n; t++)
        snprintf(f->names[t], sizeof(f->names[t]), "district-%03d", t + 1);
    snprintf(f->dir, sizeof(f->dir), "/tmp/pgrfleet.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    if (fleet_dir_count == 0)
        atexit(fleet_remove_dirs);
    if (fleet_dir_count < 16)
        snprintf(fleet_dirs[fleet_dir_count++], sizeof(fleet_dirs[0]), "%s", f->dir);
    snprintf(f->prefix, sizeof(f->prefix), "it%d%ld.", (int)getpid(), (long)time(NULL) % 100000);
    fleet_keygen(f, "coord");
    fleet_keygen(f, "coord-old");
    fleet_keygen(f, "intruder");
    char coord_pub[512], old_pub[512];
    snprintf(path, sizeof(path), "%s/coord.pub", f->dir);
    snprintf(coord_pub, sizeof(coord_pub), "%s", fleet_read_line(path));
    snprintf(path, sizeof(path), "%s/coord-old.pub", f->dir);
    snprintf(old_pub, sizeof(old_pub), "%s", fleet_read_line(path));
    snprintf(text, sizeof(text), "# trusted coordinators\n%s name=current\n%s revoked\n", coord_pub,
             old_pub);
    fleet_write_ring(f, "coordinators.ring", text);
    /* each agent key may speak only for the tenants its agent serves */
    text[0] = '\0';
    for (int a = 0; a < fleet_agents(f); a++) {
        char name[32], list[4096] = "";
        snprintf(name, sizeof(name), "agent%d", a + 1);
        fleet_keygen(f, name);
        for (int t = 0; t < f->n; t++) {
            if (fleet_configured(f, a, t))
                snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
                         list[0] != '\0' ? "," : "", f->names[t]);
        }
        snprintf(path, sizeof(path), "%s/%s.pub", f->dir, name);
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "%s tenants=%s\n",
                 fleet_read_line(path), list);
    }
    fleet_write_ring(f, "agents.ring", text);
    fleet_create_ctl_db(f, ctl_server);
    /* large fleets copy one loaded template (CREATE DATABASE ... TEMPLATE): seconds, not minutes */
    if (f->n > MAXTENANTS / 8) {
        itest_create_db("itest_tpl", tpl, sizeof(tpl));
        itest_load_white_cross(tpl, 1, 0);
    }
    for (int t = 0; t < f->n; t++) {
        f->tenant[t] = f->names[t];
        if (tpl[0] != '\0') {
            char sql[256];
            snprintf(f->db[t], sizeof(f->db[t]), "itest_fleet_%d_t%d", (int)getpid(), t);
            PGconn *admin = itest_connect("postgres");
            snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", f->db[t]);
            itest_exec(admin, sql);
            snprintf(sql, sizeof(sql), "CREATE DATABASE %s TEMPLATE %s", f->db[t], tpl);
            itest_exec(admin, sql);
            PQfinish(admin);
        } else {
            itest_create_db("itest_fleet", f->db[t], sizeof(f->db[t]));
            itest_load_white_cross(f->db[t], 1, 0);
        }
    }
    if (tpl[0] != '\0')
        itest_drop_db(tpl);
    snprintf(text, sizeof(text),
             "[coordinator]\ncontrol_dsn = dbname=%s\nsecret_key = %s/coord.key\nagent_keyring = "
             "%s/agents.ring\n[topics]\nprefix = %s\n[kafka]\nbootstrap.servers = %s\n",
             f->ctl_db, f->dir, f->dir, f->prefix, itest_kafka_bootstrap());
    snprintf(path, sizeof(path), "%s/coord.ini", f->dir);
    itest_write_file(path, text);
    for (int a = 0; a < fleet_agents(f); a++)
        fleet_agent_config(f, a, max_job_bytes);
}

static inline void fleet_setup_ctl(fleet *f, int n, int max_job_bytes, const char *ctl_server)
{
    fleet_setup_full(f, n, 2, max_job_bytes, ctl_server);
}

static inline void fleet_setup_n(fleet *f, int n, int max_job_bytes)
{
    fleet_setup_full(f, n, 2, max_job_bytes, NULL);
}

static inline void fleet_setup(fleet *f, int max_job_bytes)
{
    fleet_setup_n(f, NTENANTS, max_job_bytes);
}

/* Agents still running when the test program ends (a failed test skips its own cleanup) are
 * stopped, so that no agent outlives its test run. */
static pid_t fleet_all_agents[64];
static int fleet_agent_count;

static void fleet_kill_leftovers(void)
{
    for (int i = 0; i < fleet_agent_count; i++) {
        if (fleet_all_agents[i] > 0 && kill(fleet_all_agents[i], 0) == 0) {
            kill(fleet_all_agents[i], SIGKILL);
            waitpid(fleet_all_agents[i], NULL, 0);
        }
    }
}

/* Starts argv[0] with argv in the background, its stdout and stderr in log (appended to, or
 * replacing it). */
static inline pid_t fleet_spawn(const char *log, bool append, char *const argv[])
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0600);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static inline pid_t fleet_start_agent(fleet *f, int a)
{
    if (fleet_agent_count == 0)
        atexit(fleet_kill_leftovers);
    char cfg[256], log[256];
    snprintf(cfg, sizeof(cfg), "%s/agent%d.ini", f->dir, a + 1);
    snprintf(log, sizeof(log), "%s/agent%d.log", f->dir, a + 1);
    char *const argv[] = {(char *)(uintptr_t)AGENT_BIN, "run", "--config", cfg, NULL};
    pid_t pid = fleet_spawn(log, true, argv);
    f->agent_pid[a] = pid;
    if (fleet_agent_count < 64)
        fleet_all_agents[fleet_agent_count++] = pid;
    return pid;
}

/* Stops an agent with SIGTERM (clean) or SIGKILL; returns its exit status (or -signal). */
static inline int fleet_stop_agent(fleet *f, int a, int sig)
{
    int st = 0;
    kill(f->agent_pid[a], sig);
    waitpid(f->agent_pid[a], &st, 0);
    for (int i = 0; i < fleet_agent_count; i++) {
        if (fleet_all_agents[i] == f->agent_pid[a])
            fleet_all_agents[i] = 0; /* reaped: its pid may be reused */
    }
    f->agent_pid[a] = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

static inline void fleet_start_all(fleet *f)
{
    for (int a = 0; a < fleet_agents(f); a++)
        fleet_start_agent(f, a);
}

/* Stops every running agent with SIGTERM; each must exit 0 (a clean stop). */
static inline void fleet_stop_all(fleet *f)
{
    for (int a = 0; a < fleet_agents(f); a++) {
        if (f->agent_pid[a] > 0)
            assert_int_equal(fleet_stop_agent(f, a, SIGTERM), 0);
    }
}

static inline int fleet_run(fleet *f, const char *plan_json, char *out, size_t outlen)
{
    char path[256], cmd[1024];
    snprintf(path, sizeof(path), "%s/plan.json", f->dir);
    itest_write_file(path, plan_json);
    snprintf(cmd, sizeof(cmd), COORD_BIN " run --config %s/coord.ini --plan %s --timeout %d",
             f->dir, path, f->timeout_s > 0 ? f->timeout_s : 240);
    return run_cmd(cmd, out, outlen);
}

/* `pgrollout run` of plan_json in the background, its stdout and stderr through the returned
 * pipe, for a test that acts while the rollout runs; fleet_run_finish collects it. */
static inline FILE *fleet_run_start(fleet *f, const char *plan_json, int timeout_s)
{
    char path[256], cmd[1024];
    snprintf(path, sizeof(path), "%s/plan.json", f->dir);
    itest_write_file(path, plan_json);
    snprintf(cmd, sizeof(cmd), COORD_BIN " run --config %s/coord.ini --plan %s --timeout %d 2>&1",
             f->dir, path, timeout_s);
    FILE *run = popen(cmd, "r");
    assert_non_null(run);
    return run;
}

/* Reads the rest of a background run's output into out; returns its exit code (128 + the
 * signal when it was killed). */
static inline int fleet_run_finish(FILE *run, char *out, size_t outlen)
{
    size_t n = fread(out, 1, outlen - 1, run);
    out[n] = '\0';
    int st = pclose(run);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Rows of tenant t's audit outbox (only those published to Kafka when published_only). */
static inline long fleet_outbox(const fleet *f, int t, bool published_only)
{
    PGconn *c = itest_connect(f->db[t]);
    long n = itest_scalar(c, published_only ? "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                              "published_at IS NOT NULL"
                                            : "SELECT count(*) FROM pgrollout.audit_outbox");
    PQfinish(c);
    return n;
}

/* Waits until every tenant's audit outbox is published (the agents do so within seconds). */
static inline void fleet_wait_published(const fleet *f)
{
    for (int t = 0; t < f->n; t++) {
        for (int i = 0; i < 100 && fleet_outbox(f, t, true) < fleet_outbox(f, t, false); i++) {
            struct timespec ts = {0, 200000000L};
            nanosleep(&ts, NULL);
        }
        assert_int_equal(fleet_outbox(f, t, true), fleet_outbox(f, t, false));
    }
}

/* The payload of a message of the events topic, which must verify with an agent key of kr
 * (caller decrefs). */
static inline json_t *fleet_message_open(const pgr_keyring *kr, const rd_kafka_message_t *m,
                                         pgr_domain domain)
{
    char *payload = NULL, kid[PGR_KID_LEN];
    size_t plen = 0;
    pgr_envelope_reject why;
    const pgr_keyring_entry *e = NULL;
    assert_int_equal(pgr_envelope_open(m->payload, m->len, 1 << 20, domain, kr, &payload, &plen, &e,
                                       kid, &why, NULL),
                     PGR_OK);
    json_t *ev = json_loads(payload, 0, NULL);
    free(payload);
    assert_non_null(ev);
    return ev;
}

static inline json_t *fleet_event_open(const pgr_keyring *kr, const rd_kafka_message_t *m)
{
    return fleet_message_open(kr, m, PGR_DOMAIN_EVENT);
}

/* The coordinator's keyring of agent keys (agents.ring). */
static inline pgr_keyring *fleet_agents_ring(const fleet *f)
{
    char path[256];
    pgr_keyring *kr = NULL;
    snprintf(path, sizeof(path), "%s/agents.ring", f->dir);
    assert_int_equal(pgr_keyring_load(path, &kr, NULL), PGR_OK);
    return kr;
}

/* A client configuration for the test's own Kafka clients: the fleet's broker and prefix. */
static inline pgr_config *fleet_kafka_config(const fleet *f)
{
    pgr_config *cfg = pgr_config_new();
    assert_non_null(cfg);
    cfg->kafka = calloc(1, sizeof(pgr_kv));
    assert_non_null(cfg->kafka);
    cfg->kafka[0].key = strdup("bootstrap.servers");
    cfg->kafka[0].value = strdup(itest_kafka_bootstrap());
    cfg->kafka_count = 1;
    free(cfg->topic_prefix);
    cfg->topic_prefix = strdup(f->prefix);
    return cfg;
}

/* Signs an audit message (PROTOCOL 10.4) of tenant with kp, holding the record text rec, seq and
 * the first chain's prev_hash, and puts it on the fleet's audit topic keyed by tenant: a record the
 * collector must judge. */
static inline void fleet_send_audit(const fleet *f, const pgr_keypair *kp, const char *tenant,
                                    int seq, const char *rec)
{
    json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "type", "audit", "tenant_id", tenant,
                          "seq", seq, "prev_hash",
                          "0000000000000000000000000000000000000000000000000000000000000000",
                          "hash", "00", "record", rec);
    char *payload = json_dumps(o, JSON_COMPACT);
    char *env = pgr_envelope_seal(PGR_DOMAIN_AUDIT, kp, payload, strlen(payload));
    pgr_config *cfg = fleet_kafka_config(f);
    rd_kafka_t *p = NULL;
    char topic[256];
    assert_int_equal(pgr_kafka_producer_new(cfg, &p, NULL, NULL), PGR_OK);
    pgr_kafka_topic_name(cfg, PGR_TOPIC_AUDIT, topic, sizeof(topic));
    assert_int_equal(pgr_kafka_send(p, topic, tenant, env, strlen(env), NULL), PGR_OK);
    assert_int_equal(rd_kafka_flush(p, 10000), 0);
    rd_kafka_destroy(p);
    pgr_config_free(cfg);
    free(env);
    free(payload);
    json_decref(o);
}

/* The White Cross migrations are all in place: 34 valid indexes, the foreign key validated. */
static inline void fleet_assert_migrated(PGconn *c)
{
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = "
                                     "i.indexrelid WHERE c.relname LIKE 'idx_%' AND i.indisvalid"),
                     34);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pg_constraint WHERE conname = "
                                     "'fk_medication_logs_medication_id' AND convalidated"),
                     1);
}

/* The four White Cross migrations applied once each: `jobs` apply jobs succeeded, four rows
 * applied, four migration_applied records, and the catalog right. */
static inline void fleet_assert_applied_once(PGconn *c, long jobs)
{
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.jobs WHERE type = "
                                     "'apply' AND state = 'succeeded'"),
                     jobs);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.schema_migrations "
                                     "WHERE status = 'applied'"),
                     4);
    assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                     "record::jsonb->>'action' = 'migration_applied'"),
                     4);
    fleet_assert_migrated(c);
}

/* One number from the fleet's control database. */
static inline long fleet_ctl_scalar(const fleet *f, const char *sql)
{
    PGconn *c = itest_connect(f->ctl_db);
    long v = itest_scalar(c, sql);
    PQfinish(c);
    return v;
}

/* With the agents stopped: every audit record of every tenant published, `audit collect` stores
 * each once in the central log, no alert, `audit verify` passes. Returns the records' count. */
static inline long fleet_assert_audit_collected(const fleet *f, char *out, size_t outlen)
{
    long total = 0;
    for (int t = 0; t < f->n; t++) {
        PGconn *c = itest_connect(f->db[t]);
        total += itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox");
        assert_int_equal(itest_scalar(c, "SELECT count(*) FROM pgrollout.audit_outbox WHERE "
                                         "published_at IS NULL"),
                         0);
        PQfinish(c);
    }
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), COORD_BIN " audit collect --idle-exit 10 --config %s/coord.ini",
             f->dir);
    int rc = run_cmd(cmd, out, outlen);
    if (rc != 0)
        fail_msg("audit collect exited %d:\n%s", rc, out);
    assert_int_equal(fleet_ctl_scalar(f, "SELECT count(*) FROM pgrollout_control.audit_log"),
                     total);
    assert_int_equal(fleet_ctl_scalar(f, "SELECT count(*) FROM pgrollout_control.audit_alerts"), 0);
    snprintf(cmd, sizeof(cmd), COORD_BIN " audit verify --config %s/coord.ini", f->dir);
    rc = run_cmd(cmd, out, outlen);
    if (rc != 0)
        fail_msg("audit verify exited %d:\n%s", rc, out);
    return total;
}

#endif
