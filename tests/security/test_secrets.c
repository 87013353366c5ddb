/* test_secrets.c - secrets never appear in output. The agents log in to their tenants as the
 * least-privilege role of deploy/sql/agent-role.sql with a password in every connection string,
 * the coordinator to its control database as a role of its own with another password; a rollout
 * of the four migrations to three tenants runs with the audit collector, one configured tenant
 * is unreachable (a connection error naming its DSN), the command-line agent runs once with
 * PGPASSWORD, the coordinator fails on an unreachable and on an unparseable control DSN, and every
 * command answers --help. Then all of it is searched for the passwords and for the private keys
 * (raw bytes, hex, base64): stdout and stderr of every command, the agents' logs, every message
 * of the jobs, events and audit topics, the HTML report, the audit export, and the rows of the
 * control database and of the tenants' state schemas. */
#include "rollout_env.h"

#include "pgr/crypto.h"

#define MIGS    PGR_SOURCE_DIR "/migrations"
#define BLOB_SZ (8 << 20)

static fleet F;
static char out[1 << 20];
static char pw_agent[64], pw_coord[64], pw_env[64];
static char agent_role[64], coord_role[64];

/* Everything collected, one growing buffer with a label per source for the failure message. */
typedef struct source {
    char label[128];
    size_t off, len;
} source;
static char *blob;
static size_t blob_len;
static source sources[16384];
static int nsources;

/* memmem is a GNU extension: the build is POSIX. */
static const void *find_bytes(const void *hay, size_t hlen, const void *needle, size_t nlen)
{
    const char *h = hay;
    for (size_t i = 0; nlen > 0 && i + nlen <= hlen; i++) {
        if (h[i] == *(const char *)needle && memcmp(h + i, needle, nlen) == 0)
            return h + i;
    }
    return NULL;
}

static void collect(const char *label, const void *data, size_t len)
{
    assert_true(nsources < 16384);
    if (blob_len + len > BLOB_SZ)
        fail_msg("collected output exceeds %d bytes at %s", BLOB_SZ, label);
    source *s = &sources[nsources++];
    snprintf(s->label, sizeof(s->label), "%s", label);
    s->off = blob_len;
    s->len = len;
    memcpy(blob + blob_len, data, len);
    blob_len += len;
}

/* Runs a command line (stdout and stderr) and keeps its output; returns the exit code. */
static int cmd_collect(const char *label, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int cmd_collect(const char *label, const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    int rc = run_cmd(line, out, sizeof(out));
    collect(label, out, strlen(out));
    return rc;
}

static void collect_file(const char *label, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot read %s (%s)", path, label);
    static char buf[4 << 20];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    collect(label, buf, n);
}

static void read_file(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Replaces the first occurrence of `from` in a file by `to`. */
static void file_replace(const char *path, const char *from, const char *to)
{
    static char text[16384], res[16384];
    read_file(path, text, sizeof(text));
    char *at = strstr(text, from);
    if (at == NULL)
        fail_msg("%s lacks \"%s\"", path, from);
    snprintf(res, sizeof(res), "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    itest_write_file(path, res);
}

static void psql_admin(const char *dbname, const char *sql)
{
    PGconn *c = itest_connect(dbname);
    itest_exec(c, sql);
    PQfinish(c);
}

/* Roles with passwords; tenants set up with the least-privilege file; configurations whose
 * connection strings carry the passwords. */
static void secure_fleet(void)
{
    char sql[512], path[256], from[256], to[512];
    for (int t = 0; t < F.n; t++) {
        snprintf(sql, sizeof(sql),
                 "-v agent_role=%s -v owner_role=%s_owner -v app_role=", agent_role, agent_role);
        itest_psql_file(F.db[t], "deploy/sql/agent-role.sql", sql);
    }
    snprintf(sql, sizeof(sql), "ALTER ROLE %s PASSWORD '%s'", agent_role, pw_agent);
    psql_admin("postgres", sql);
    snprintf(sql, sizeof(sql), "CREATE ROLE %s LOGIN PASSWORD '%s'", coord_role, pw_coord);
    psql_admin("postgres", sql);
    snprintf(sql, sizeof(sql), "ALTER DATABASE %s OWNER TO %s", F.ctl_db, coord_role);
    psql_admin("postgres", sql);
    for (int t = 0; t < F.n; t++) {
        snprintf(path, sizeof(path), "%s/agent%d.ini", F.dir, fleet_agent1(&F, t) ? 1 : 2);
        snprintf(from, sizeof(from), "= dbname=%s\n", F.db[t]);
        snprintf(to, sizeof(to), "= host=%s port=%s dbname=%s user=%s password=%s\n",
                 getenv("PGHOST"), getenv("PGPORT"), F.db[t], agent_role, pw_agent);
        file_replace(path, from, to);
    }
    /* agent 2 also serves a tenant whose database cannot be reached */
    snprintf(path, sizeof(path), "%s/agent2.ini", F.dir);
    snprintf(to, sizeof(to),
             "[tenants]\ndistrict-999 = postgresql://%s:%s@127.0.0.1:1/unreachable\n", agent_role,
             pw_agent);
    file_replace(path, "[tenants]\n", to);
    snprintf(path, sizeof(path), "%s/agents.ring", F.dir);
    file_replace(path, "tenants=district-003", "tenants=district-003,district-999");
    snprintf(path, sizeof(path), "%s/coord.ini", F.dir);
    snprintf(from, sizeof(from), "control_dsn = dbname=%s\n", F.ctl_db);
    snprintf(to, sizeof(to), "control_dsn = host=%s port=%s dbname=%s user=%s password=%s\n",
             getenv("PGHOST"), getenv("PGPORT"), F.ctl_db, coord_role, pw_coord);
    file_replace(path, from, to);
}

static int setup(void **state)
{
    (void)state;
    int pid = (int)getpid();
    snprintf(pw_agent, sizeof(pw_agent), "S3cr3t-pw-%d-agent-Zq9", pid);
    snprintf(pw_coord, sizeof(pw_coord), "S3cr3t-pw-%d-coord-Xk7", pid);
    snprintf(pw_env, sizeof(pw_env), "S3cr3t-pw-%d-env-Wm4", pid);
    snprintf(agent_role, sizeof(agent_role), "sec_pw_agent_%d", pid);
    snprintf(coord_role, sizeof(coord_role), "sec_pw_coord_%d", pid);
    blob = malloc(BLOB_SZ);
    assert_non_null(blob);
    fleet_setup(&F, 4 * 1024 * 1024);
    secure_fleet();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char sql[256];
    for (int t = 0; t < F.n; t++)
        itest_drop_db(F.db[t]);
    itest_drop_db(F.ctl_db);
    PGconn *admin = itest_connect("postgres");
    snprintf(sql, sizeof(sql), "DROP ROLE IF EXISTS %s", agent_role);
    itest_exec(admin, sql);
    snprintf(sql, sizeof(sql), "DROP ROLE IF EXISTS %s_owner", agent_role);
    itest_exec(admin, sql);
    snprintf(sql, sizeof(sql), "DROP ROLE IF EXISTS %s", coord_role);
    itest_exec(admin, sql);
    PQfinish(admin);
    free(blob);
    return 0;
}

/* Every message of the three topics, payloads and keys. */
static void collect_topics(void)
{
    char group[128], topic[256];
    pgr_config *cfg = fleet_kafka_config(&F);
    snprintf(group, sizeof(group), "sec-secrets-%s", F.prefix);
    rd_kafka_t *c = NULL;
    assert_int_equal(pgr_kafka_consumer_new(cfg, group, &c, NULL), PGR_OK);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(3);
    for (pgr_topic t = PGR_TOPIC_JOBS; t <= PGR_TOPIC_AUDIT; t++) {
        pgr_kafka_topic_name(cfg, t, topic, sizeof(topic));
        rd_kafka_topic_partition_list_add(l, topic, RD_KAFKA_PARTITION_UA);
    }
    assert_int_equal(rd_kafka_subscribe(c, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    int count[3] = {0, 0, 0};
    for (int idle = 0, polls = 0; idle < 16 && polls < 600; polls++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 500);
        if (m == NULL || m->err != 0) {
            idle += m == NULL || count[0] + count[1] + count[2] > 0;
            if (m != NULL)
                rd_kafka_message_destroy(m);
            continue;
        }
        const char *name = rd_kafka_topic_name(m->rkt);
        int k = strstr(name, "jobs") != NULL ? 0 : strstr(name, "events") != NULL ? 1 : 2;
        count[k]++;
        collect(name, m->payload, m->len);
        if (m->key != NULL)
            collect(name, m->key, m->key_len);
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    pgr_config_free(cfg);
    /* a job, an event and an audit message for each tenant at the least */
    assert_true(count[0] >= F.n && count[1] >= F.n && count[2] >= F.n);
}

/* The rows of a schema, as pg_dump prints them. */
static void collect_rows(const char *dbname, const char *schema)
{
    char label[128];
    snprintf(label, sizeof(label), "rows of %s in %s", schema, dbname);
    assert_int_equal(cmd_collect(label, "pg_dump --data-only --schema=%s %s", schema, dbname), 0);
    assert_non_null(strstr(out, "COPY "));
}

static void help_of_every_command(void)
{
    static const char *const coord_cmds[] = {
        "",         "keygen",  "lint",          "plan",         "run",          "resume",
        "pause",    "approve", "abort",         "rollback",     "status",       "tenants",
        "report",   "audit",   "audit collect", "audit verify", "audit export", "audit anchor",
        "dev-kafka"};
    static const char *const agent_cmds[] = {"", "apply", "rollback", "status", "verify", "run"};
    char label[128];
    for (size_t i = 0; i < sizeof(coord_cmds) / sizeof(coord_cmds[0]); i++) {
        snprintf(label, sizeof(label), "pgrollout %s --help", coord_cmds[i]);
        assert_int_equal(
            cmd_collect(label, "PGPASSWORD=%s " COORD_BIN " %s --help", pw_env, coord_cmds[i]), 0);
        assert_non_null(strstr(out, "usage"));
    }
    for (size_t i = 0; i < sizeof(agent_cmds) / sizeof(agent_cmds[0]); i++) {
        snprintf(label, sizeof(label), "pgrollout-agent %s --help", agent_cmds[i]);
        assert_int_equal(
            cmd_collect(label, "PGPASSWORD=%s " AGENT_BIN " %s --help", pw_env, agent_cmds[i]), 0);
        assert_non_null(strstr(out, "usage"));
    }
    cmd_collect("pgrollout --version", COORD_BIN " --version");
    cmd_collect("pgrollout-agent --version", AGENT_BIN " --version");
}

/* Connection failures name the connection string, redacted. */
static void failures(void)
{
    char path[256], text[4096];
    /* the command-line agent with PGPASSWORD: a tenant it reaches, and one it cannot */
    assert_int_equal(cmd_collect("agent verify with PGPASSWORD",
                                 "PGPASSWORD=%s " AGENT_BIN " verify --dsn 'dbname=%s user=%s' "
                                 "--migrations " MIGS,
                                 pw_env, F.db[0], agent_role),
                     0);
    assert_int_equal(cmd_collect("agent status, unreachable, PGPASSWORD",
                                 "PGPASSWORD=%s " AGENT_BIN " status --dsn 'host=127.0.0.1 "
                                 "port=1 dbname=x user=%s' --migrations " MIGS,
                                 pw_env, agent_role),
                     1);
    assert_non_null(strstr(out, "could not connect to \"host=127.0.0.1 port=1"));
    assert_int_equal(cmd_collect("agent status, unreachable, password in DSN",
                                 AGENT_BIN " status --dsn 'host=127.0.0.1 port=1 dbname=x user=%s "
                                           "password=%s' --migrations " MIGS,
                                 agent_role, pw_agent),
                     1);
    assert_non_null(strstr(out, "password=***"));
    /* the coordinator: an unreachable control database, then an unparseable connection string
     * (libpq's parse error would quote the password) */
    snprintf(path, sizeof(path), "%s/coord.ini", F.dir);
    read_file(path, text, sizeof(text));
    snprintf(path, sizeof(path), "%s/coord-down.ini", F.dir);
    itest_write_file(path, text);
    char from[128], to[256];
    snprintf(from, sizeof(from), "control_dsn = host=");
    snprintf(to, sizeof(to), "control_dsn = host=127.0.0.1 port=1 dbname=x user=%s password=%s\n#",
             coord_role, pw_coord);
    file_replace(path, from, to);
    assert_int_equal(
        cmd_collect("coordinator, control database down", COORD_BIN " status x --config %s", path),
        1);
    assert_non_null(strstr(out, "password=***"));
    snprintf(path, sizeof(path), "%s/coord-bad.ini", F.dir);
    itest_write_file(path, text);
    snprintf(to, sizeof(to), "control_dsn = postgresql://%s:%s%%zz@127.0.0.1:1/x\n#", coord_role,
             pw_coord);
    file_replace(path, from, to);
    assert_int_equal(
        cmd_collect("coordinator, invalid control DSN", COORD_BIN " status x --config %s", path),
        1);
    assert_non_null(strstr(out, "invalid connection string"));
}

/* The label of the first source holding needle, or NULL. */
static const char *find_secret(const void *needle, size_t len)
{
    for (int i = 0; i < nsources; i++) {
        const source *s = &sources[i];
        if (find_bytes(blob + s->off, s->len, needle, len) != NULL)
            return s->label;
    }
    return NULL;
}

/* Fails naming the secret and the source (never printing the secret). */
static void scan(const char *name, const void *needle, size_t len)
{
    const char *where = find_secret(needle, len);
    if (where != NULL)
        fail_msg("%s appears in %s", name, where);
}

static void scan_text(const char *name, const char *text)
{
    scan(name, text, strlen(text));
}

/* A secret key file "ed25519-secret <base64> <kid>": its base64 (static) and its 64 bytes. */
static const char *load_key(const char *keyname, uint8_t sk[64])
{
    static char line[512];
    char path[256], *save = NULL;
    size_t n = 0;
    snprintf(path, sizeof(path), "%s/%s.key", F.dir, keyname);
    read_file(path, line, sizeof(line));
    strtok_r(line, " ", &save);
    const char *b64 = strtok_r(NULL, " ", &save);
    assert_int_equal(pgr_crypto_base64_decode(b64, strlen(b64), sk, 64, &n), PGR_OK);
    assert_int_equal(n, 64);
    return b64;
}

/* The key's bytes in every form: raw, hex and base64, of the whole secret key and of its seed. */
static void scan_key(const char *keyname)
{
    char name[160];
    uint8_t sk[64];
    const char *b64 = load_key(keyname, sk);
    char hex[129], seed_hex[65];
    pgr_crypto_hex_encode(sk, 64, hex);
    pgr_crypto_hex_encode(sk, 32, seed_hex);
    char *seed_b64 = pgr_crypto_base64_encode(sk, 32);
    seed_b64[strcspn(seed_b64, "=")] = '\0';
    snprintf(name, sizeof(name), "the secret key %s (raw)", keyname);
    scan(name, sk, 64);
    scan(name, sk, 32);
    snprintf(name, sizeof(name), "the secret key %s (hex)", keyname);
    scan_text(name, hex);
    scan_text(name, seed_hex);
    snprintf(name, sizeof(name), "the secret key %s (base64)", keyname);
    scan_text(name, b64);
    scan_text(name, seed_b64);
    free(seed_b64);
}

static void test_secrets_never_appear_in_output(void **state)
{
    (void)state;
    char plan[256];
    fleet_start_agent(&F, 0);
    fleet_start_agent(&F, 1);
    help_of_every_command();
    snprintf(plan, sizeof(plan), "%s/plan.json", F.dir);
    itest_write_file(plan, "{\"name\": \"secrets\", \"migrations\": \"" MIGS "\", \"target\": "
                           "\"20251106000003\", \"tenants\": [\"district-001\", \"district-002\", "
                           "\"district-003\"]}");
    int rc = cmd_collect("pgrollout run",
                         COORD_BIN " run --config %s/coord.ini --plan %s "
                                   "--timeout 240 --collect-audit",
                         F.dir, plan);
    if (rc != 0)
        fail_msg("pgrollout run exited %d:\n%s", rc, out);
    assert_non_null(strstr(out, "rollout secrets: succeeded (0 failed)"));
    failures();
    cmd_collect("status", COORD_BIN " status secrets --config %s/coord.ini --json", F.dir);
    cmd_collect("tenants", COORD_BIN " tenants list --config %s/coord.ini --json", F.dir);
    assert_int_equal(
        cmd_collect("audit verify", COORD_BIN " audit verify --config %s/coord.ini", F.dir), 0);
    cmd_collect("audit export",
                COORD_BIN " audit export --config %s/coord.ini --tenant "
                          "district-001",
                F.dir);
    cmd_collect("audit anchor", COORD_BIN " audit anchor --config %s/coord.ini", F.dir);
    assert_int_equal(cmd_collect("report",
                                 COORD_BIN " report secrets --config %s/coord.ini "
                                           "--html %s/report.html",
                                 F.dir, F.dir),
                     0);
    char path[256];
    snprintf(path, sizeof(path), "%s/report.html", F.dir);
    collect_file("report.html", path);
    assert_int_equal(fleet_stop_agent(&F, 0, SIGTERM), 0);
    assert_int_equal(fleet_stop_agent(&F, 1, SIGTERM), 0);
    snprintf(path, sizeof(path), "%s/agent1.log", F.dir);
    collect_file("agent1.log", path);
    snprintf(path, sizeof(path), "%s/agent2.log", F.dir);
    collect_file("agent2.log", path);
    /* the unreachable tenant was tried, and its DSN shown redacted */
    char redacted[128];
    snprintf(redacted, sizeof(redacted), "postgresql://%s:***@127.0.0.1:1/unreachable", agent_role);
    const source *log2 = &sources[nsources - 1];
    if (find_bytes(blob + log2->off, log2->len, redacted, strlen(redacted)) == NULL)
        fail_msg("agent2.log does not name the unreachable tenant's DSN %s", redacted);
    collect_topics();
    collect_rows(F.ctl_db, "pgrollout_control");
    for (int t = 0; t < F.n; t++)
        collect_rows(F.db[t], "pgrollout");

    print_message("searching %zu bytes from %d sources\n", blob_len, nsources);
    scan_text("the agent's password", pw_agent);
    scan_text("the coordinator's password", pw_coord);
    scan_text("PGPASSWORD", pw_env);
    scan_key("coord");
    scan_key("agent1");
    scan_key("agent2");
}

/* The scan finds what it looks for: planted in collected text, each form is found. */
static void test_secrets_scan_finds_planted_secrets(void **state)
{
    (void)state;
    char path[256];
    int before = nsources;
    size_t len = blob_len;
    snprintf(path, sizeof(path), "%s/agent2.ini", F.dir);
    collect_file("agent2.ini", path);
    snprintf(path, sizeof(path), "%s/agent1.key", F.dir);
    collect_file("agent1.key", path);
    uint8_t sk[64];
    const char *b64 = load_key("agent1", sk);
    collect("raw seed", sk, 32);
    assert_string_equal(find_secret(pw_agent, strlen(pw_agent)), "agent2.ini");
    assert_string_equal(find_secret(b64, strlen(b64)), "agent1.key");
    assert_string_equal(find_secret(sk, 32), "raw seed");
    assert_null(find_secret(pw_coord, strlen(pw_coord)));
    nsources = before; /* leave the collected output as it was */
    blob_len = len;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secrets_never_appear_in_output),
        cmocka_unit_test(test_secrets_scan_finds_planted_secrets),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
