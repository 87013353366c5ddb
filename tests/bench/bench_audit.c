/* bench_audit.c - audit ingest: signed audit records (hash chains of PROTOCOL.md section 10,
 * byte for byte as agent/audit.c and agent/daemon_audit.c make them) are put on the audit topic,
 * then `pgrollout audit collect` verifies and stores them; the baseline INSERTs the same rows
 * into a table of the same shape without any check (prepared INSERT, 500 rows a transaction).
 *
 *   bench_audit --config coord.ini --key agent.key --collector BIN --records N [--tenants T]
 *               [--order 0|1]
 *
 * Prints "collector RATE TOTAL_MS" and "insert RATE TOTAL_MS" (records/s; the collector's rate
 * counts from its first stored record, its total from its start), and "collector_cpu US_PER
 * _RECORD BUSY_PCT": the collector process's CPU per record over its whole run, and how busy
 * the machine's cores were (every process) while it stored. Fails when the collector raised
 * any alert or stored a different number of records. */
#include "bench_util.h"

#include "pgr/keys.h"

#include <getopt.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct audit_row {
    char tenant[32], seq[24], prev[65], hash[65];
    char *record, *env;
} audit_row;

typedef struct bench {
    const char *config, *key, *collector;
    int records, tenants, order;
    pgr_config *cfg;
    pgr_keypair kp;
    audit_row *rows;
} bench;

static void parse_args(int argc, char **argv, bench *b)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"key", required_argument, NULL, 'k'},
                                         {"collector", required_argument, NULL, 'x'},
                                         {"records", required_argument, NULL, 'n'},
                                         {"tenants", required_argument, NULL, 't'},
                                         {"order", required_argument, NULL, 'o'},
                                         {NULL, 0, NULL, 0}};
    int c;
    b->records = 100000;
    b->tenants = 100;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'c')
            b->config = optarg;
        else if (c == 'k')
            b->key = optarg;
        else if (c == 'x')
            b->collector = optarg;
        else if (c == 'n')
            b->records = (int)strtol(optarg, NULL, 10);
        else if (c == 't')
            b->tenants = (int)strtol(optarg, NULL, 10);
        else if (c == 'o')
            b->order = (int)strtol(optarg, NULL, 10);
        else
            bench_die("usage", "see the comment at the top of bench_audit.c");
    }
    if (b->config == NULL || b->key == NULL || b->collector == NULL || b->records < b->tenants ||
        b->tenants < 1)
        bench_die("usage", "--config, --key, --collector are required; records >= tenants");
}

/* One record of tenant t's chain: canonical bytes, hash, and its signed audit message. */
static void make_row(bench *b, audit_row *r, int t, long long seq, const char *prev)
{
    char job[37], at[40];
    uint8_t p[32], d[32];
    snprintf(r->tenant, sizeof(r->tenant), "au-%04d", t);
    snprintf(r->seq, sizeof(r->seq), "%lld", seq);
    snprintf(r->prev, sizeof(r->prev), "%s", prev);
    bench_uuid4(job);
    snprintf(at, sizeof(at), "2026-11-25T18:00:%02lld.%03lldZ", seq % 60, seq % 1000);
    json_t *rec = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:i}", "action",
                            "step_done", "agent_id", "a1", "at", at, "job_id", job, "operator",
                            "bench", "tenant_id", r->tenant, "seq", (json_int_t)seq, "prev_hash",
                            prev, "version", "20251106000001", "duration_ms", 12);
    r->record = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    json_decref(rec);
    if (pgr_crypto_hex_decode(prev, p, 32) != PGR_OK)
        bench_die("chain", "bad prev hash");
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, p, 32);
    crypto_hash_sha256_update(&st, (const unsigned char *)r->record, strlen(r->record));
    crypto_hash_sha256_final(&st, d);
    pgr_crypto_hex_encode(d, 32, r->hash);
    json_t *msg =
        json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "type", "audit", "tenant_id", r->tenant, "seq",
                  (json_int_t)seq, "prev_hash", prev, "hash", r->hash, "record", r->record);
    char *payload = json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(msg);
    r->env = pgr_envelope_seal(PGR_DOMAIN_AUDIT, &b->kp, payload, strlen(payload));
    free(payload);
}

static void make_rows(bench *b)
{
    int per = b->records / b->tenants;
    b->records = per * b->tenants;
    b->rows = calloc((size_t)b->records, sizeof(audit_row));
    for (int t = 0; t < b->tenants; t++) {
        char prev[65];
        memset(prev, '0', 64);
        prev[64] = '\0';
        for (int s = 0; s < per; s++) {
            audit_row *r = &b->rows[t * per + s];
            make_row(b, r, t + 1, s + 1, prev);
            snprintf(prev, sizeof(prev), "%s", r->hash);
        }
    }
}

/* Every message on the audit topic, interleaving tenants as many agents would. */
static void publish(bench *b)
{
    rd_kafka_t *p = NULL;
    pgr_error err;
    char topic[256];
    int per = b->records / b->tenants;
    if (pgr_kafka_producer_new(b->cfg, &p, NULL, &err) != PGR_OK)
        bench_die("producer", err.msg);
    pgr_kafka_topic_name(b->cfg, PGR_TOPIC_AUDIT, topic, sizeof(topic));
    for (int s = 0; s < per; s++) {
        for (int t = 0; t < b->tenants; t++) {
            audit_row *r = &b->rows[t * per + s];
            if (pgr_kafka_send(p, topic, r->tenant, r->env, strlen(r->env), &err) != PGR_OK)
                bench_die("send", err.msg);
        }
    }
    if (rd_kafka_flush(p, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        bench_die("flush", "audit messages not acknowledged");
    rd_kafka_destroy(p);
}

static PGconn *db(bench *b)
{
    PGconn *c = PQconnectdb(b->cfg->control_dsn);
    if (PQstatus(c) != CONNECTION_OK)
        bench_die("control db", PQerrorMessage(c));
    return c;
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        bench_die(sql, PQerrorMessage(c));
    PQclear(r);
}

static long long scalar(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        bench_die(sql, PQerrorMessage(c));
    long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

static void baseline(bench *b)
{
    PGconn *c = db(b);
    exec_ok(c, "CREATE TABLE bench_audit_plain (tenant_id text NOT NULL, seq bigint NOT NULL, "
               "prev_hash text NOT NULL, hash text NOT NULL, record text NOT NULL, kid text NOT "
               "NULL, envelope text NOT NULL, received_at timestamptz NOT NULL DEFAULT now(), "
               "PRIMARY KEY (tenant_id, seq))");
    PGresult *pr = PQprepare(c, "ins",
                             "INSERT INTO bench_audit_plain (tenant_id, seq, prev_hash, hash, "
                             "record, kid, envelope) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                             7, NULL);
    PQclear(pr);
    double t0 = bench_now_ms();
    for (int i = 0; i < b->records; i++) {
        if (i % 500 == 0)
            exec_ok(c, i == 0 ? "BEGIN" : "COMMIT; BEGIN");
        audit_row *r = &b->rows[i];
        const char *v[] = {r->tenant, r->seq, r->prev, r->hash, r->record, b->kp.kid, r->env};
        PGresult *res = PQexecPrepared(c, "ins", 7, v, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            bench_die("insert", PQerrorMessage(c));
        PQclear(res);
    }
    exec_ok(c, "COMMIT");
    double ms = bench_now_ms() - t0;
    printf("insert %.0f %.0f\n", b->records * 1000.0 / ms, ms);
    PQfinish(c);
}

/* Tenants whose last record is stored. Cheap (an index probe per tenant), so the probe does
 * not steal the collector's CPU: a count(*) of the growing table every 20 ms did. A tenant's
 * records share a partition and the collector stores a partition in order, so its last record
 * stored means all of them are. */
static long long tenants_done(PGconn *c, bench *b)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM generate_series(1, %d) t WHERE EXISTS (SELECT 1 FROM "
             "pgrollout_control.audit_log WHERE tenant_id = 'au-' || lpad(t::text, 4, '0') AND "
             "seq = %d)",
             b->tenants, b->records / b->tenants);
    return scalar(c, sql);
}

/* user+system CPU ticks of a process (fields 14 and 15 of /proc/PID/stat), or of the whole
 * machine (pid 0: /proc/stat's user nice system irq softirq steal) */
static long long cpu_ticks(pid_t pid)
{
    char path[64];
    long long v[8] = {0};
    if (pid == 0)
        snprintf(path, sizeof(path), "/proc/stat");
    else
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    char line[1024];
    FILE *f = fopen(path, "r");
    bool got = f != NULL && fgets(line, sizeof(line), f) != NULL;
    if (f != NULL)
        fclose(f);
    /* the command name may hold spaces and ')': the fields start after its last ')' */
    const char *rest = got && pid != 0 ? strrchr(line, ')') : line;
    if (!got || rest == NULL)
        bench_die("cpu", "could not read the CPU ticks");
    int n = pid == 0 ? sscanf(rest, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", &v[0], &v[1],
                              &v[2], &v[3], &v[4], &v[5], &v[6], &v[7])
                     : sscanf(rest, ") %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld",
                              &v[0], &v[1]);
    if (pid == 0)
        return n == 8 ? v[0] + v[1] + v[2] + v[5] + v[6] + v[7] : 0;
    return n == 2 ? v[0] + v[1] : 0;
}

static void collector(bench *b)
{
    double t0 = bench_now_ms(), first = 0;
    long long busy0 = 0, own = 0;
    pid_t pid = fork();
    if (pid == 0) {
        execl(b->collector, b->collector, "audit", "collect", "--config", b->config, (char *)NULL);
        _exit(127);
    }
    PGconn *c = NULL;
    long long done_tenants = 0;
    while (done_tenants < b->tenants && bench_now_ms() - t0 < 600000) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
        if (c == NULL) { /* the collector creates the control schema at start */
            c = db(b);
            if (scalar(c, "SELECT count(*) FROM pg_tables WHERE schemaname = "
                          "'pgrollout_control' AND tablename = 'audit_log'") == 0) {
                PQfinish(c);
                c = NULL;
                continue;
            }
        }
        if (first == 0 &&
            scalar(c, "SELECT count(*) FROM (SELECT 1 FROM pgrollout_control.audit_log LIMIT "
                      "1) x") > 0) {
            first = bench_now_ms();
            busy0 = cpu_ticks(0);
        }
        if (first != 0)
            done_tenants = tenants_done(c, b);
    }
    double done = bench_now_ms();
    long long busy = cpu_ticks(0) - busy0;
    own = cpu_ticks(pid);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    if (c == NULL || scalar(c, "SELECT count(*) FROM pgrollout_control.audit_log") != b->records)
        bench_die("collector", "did not store every record in 600 s");
    if (scalar(c, "SELECT count(*) FROM pgrollout_control.audit_alerts") != 0)
        bench_die("collector", "raised alerts on valid records");
    printf("collector %.0f %.0f\n", b->records * 1000.0 / (done - first), done - t0);
    double hz = (double)sysconf(_SC_CLK_TCK), cores = (double)sysconf(_SC_NPROCESSORS_ONLN);
    printf("collector_cpu %.1f %.0f\n", own / hz * 1e6 / b->records,
           100.0 * busy / hz / cores / ((done - first) / 1000.0));
    PQfinish(c);
}

int main(int argc, char **argv)
{
    bench b;
    pgr_error err;
    memset(&b, 0, sizeof(b));
    parse_args(argc, argv, &b);
    if (pgr_crypto_init(&err) != PGR_OK || pgr_keys_load_secret(b.key, &b.kp, &err) != PGR_OK ||
        pgr_config_load(b.config, &b.cfg, &err) != PGR_OK)
        bench_die("setup", err.msg);
    make_rows(&b);
    publish(&b);
    if (b.order == 0) {
        baseline(&b);
        collector(&b);
    } else {
        collector(&b);
        baseline(&b);
    }
    for (int i = 0; i < b.records; i++) {
        free(b.rows[i].record);
        free(b.rows[i].env);
    }
    free(b.rows);
    pgr_config_free(b.cfg);
    return 0;
}
