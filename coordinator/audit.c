/*
 * audit.c - the central audit record. `audit collect` consumes the audit topic, verifies each
 * record (signature by an agent key trusted for that tenant, hash = SHA-256(prev_hash bytes ||
 * record bytes), chain fields inside the record) and stores it once in the append-only
 * pgrollout_control.audit_log, committing Kafka offsets only after the insert. Gaps, forks,
 * bad signatures and broken hashes become rows of audit_alerts and are printed loudly.
 * `audit verify` re-checks the whole store; `audit export` and `audit anchor` serve auditors.
 */
#include "coord.h"
#include "coord_cli.h"
#include "audit_ingest.h"
#include "ctldb.h"

#include "pgr/crypto.h"
#include "pgr/log.h"
#include "pgr/job.h"
#include "pgr/parse.h"
#include "pgr/pg.h"
#include "pgr/term.h"

#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t audit_stop = 0;

static void on_signal(int sig)
{
    PGR_UNUSED(sig);
    audit_stop = 1;
}

rd_kafka_t *coord_audit_consumer(coord *c)
{
    char group[256], topic[256];
    rd_kafka_t *rk = NULL;
    pgr_error err;
    snprintf(group, sizeof(group), "pgrollout-audit-collector-%s", c->cfg->coordinator_id);
    if (pgr_kafka_consumer_new(c->cfg, group, &rk, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout: audit collector: %s\n", err.msg);
        return NULL;
    }
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    pgr_kafka_topic_name(c->cfg, PGR_TOPIC_AUDIT, topic, sizeof(topic));
    rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "pgrollout: audit collector: subscribe: %s\n", rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
}

#define COLLECT_BATCH 1000

/* Reads a batch, verifies and stores it in one transaction, then commits its offsets: a crash
 * re-reads, never skips (each (tenant, seq) is stored once); a lost control database holds the
 * batch until it is back. Offsets are committed asynchronously (a broker round trip per record
 * capped ingest at about 2,000 a second). */
static int collect(coord *c, int idle_exit_s)
{
    const char *fp = getenv("PGR_FAILPOINT");
    bool failpoint = fp != NULL && strcmp(fp, "collector_after_store") == 0;
    long stored = 0;
    coord_ctldb g;
    time_t last = time(NULL);
    coord_audit_batch *b = coord_audit_batch_new(COLLECT_BATCH);
    if (b == NULL) {
        fprintf(stderr, "pgrollout: audit collector: out of memory\n");
        return COORD_EXIT_FAIL;
    }
    coord_ctldb_init(&g, NULL);
    while (!audit_stop && (idle_exit_s <= 0 || time(NULL) - last < idle_exit_s)) {
        if (coord_audit_batch_count(b) == 0) /* SIGHUP: no message held */
            PGR_IGNORE(coord_reload_keyring(c));
        if (coord_audit_batch_count(b) == 0 && coord_audit_batch_fill(b, c->consumer, 200) == 0)
            continue;
        last = time(NULL);
        if (!coord_ctldb_ready(c, &g) || !coord_audit_batch_store(c, b)) {
            struct timespec ts = {0, 100000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        stored += coord_audit_batch_count(b);
        /* crash test: past the 20th message, stored but its offset not committed (a restart
         * must absorb the replay) */
        if (failpoint && stored > 20)
            raise(SIGKILL);
        coord_audit_batch_commit(b, c->consumer);
    }
    coord_audit_batch_free(b); /* what is still held is not committed: read again later */
    fprintf(stderr, "audit collect: %ld message(s) processed\n", stored);
    return COORD_EXIT_OK;
}

/* Re-verifies one stored row: envelope signature with the agent keyring (key trusted for the
 * tenant), the envelope's content equal to the stored columns, and the hash link. */
static const char *verify_row(coord *c, PGresult *r, int i, const char *expect_prev,
                              long long expect_seq)
{
    const char *tenant = PQgetvalue(r, i, 0), *env = PQgetvalue(r, i, 6);
    long long seq = strtoll(PQgetvalue(r, i, 1), NULL, 10);
    char *payload = NULL, kid[PGR_KID_LEN];
    size_t plen = 0;
    pgr_envelope_reject why;
    const pgr_keyring_entry *e = NULL;
    if (seq != expect_seq)
        return seq > expect_seq ? "gap: records are missing before this one"
                                : "records out of order";
    if (strcmp(PQgetvalue(r, i, 2), expect_prev) != 0)
        return "prev_hash differs from the previous record's hash";
    if (pgr_envelope_open(env, strlen(env), 1 << 20, PGR_DOMAIN_AUDIT, c->agents, &payload, &plen,
                          &e, kid, &why, NULL) != PGR_OK)
        return "signature does not verify with a trusted agent key";
    json_t *o = json_loads(payload, 0, NULL);
    free(payload);
    const char *rec = json_string_value(json_object_get(o, "record"));
    const char *hash = json_string_value(json_object_get(o, "hash"));
    bool same = rec != NULL && hash != NULL && strcmp(rec, PQgetvalue(r, i, 4)) == 0 &&
                strcmp(hash, PQgetvalue(r, i, 3)) == 0 &&
                json_integer_value(json_object_get(o, "seq")) == seq &&
                pgr_keyring_allows_tenant(e, tenant);
    json_decref(o);
    if (!same)
        return "stored record differs from what its agent signed";
    return coord_audit_check_link(tenant, seq, PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
                                  PQgetvalue(r, i, 4));
}

/* One broken chain: a JSON object by jansson, or a text line escaped for the terminal (the
 * tenant id is what an agent's message said). */
static void print_broken(const char *tenant, const char *seq, const char *problem, bool json)
{
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "tenant_id", pgr_term_json_string(tenant));
        json_object_set_new(o, "seq", json_integer(strtoll(seq, NULL, 10)));
        json_object_set_new(o, "problem", pgr_term_json_string(problem));
        char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("%s\n", line != NULL ? line : "{}");
        free(line);
        json_decref(o);
        return;
    }
    pgr_term_printf(stdout, "BROKEN tenant %s at seq %s: %s", tenant, seq, problem);
}

/* The chain alerts the collector raised: a record that reached it but was not stored (a second
 * record claiming a stored seq: the tenant's chain head was moved back) or one that did not
 * link (a gap, a changed prev_hash) leaves nothing in audit_log that the walk above could find.
 * Each is reported like a broken record; returns how many there are (-1: not readable). */
static int verify_alerts(coord *c, const char *only_tenant, bool json)
{
    PGresult *r = NULL;
    pgr_error err;
    const char *params[] = {only_tenant};
    if (pgr_pg_execp(c->db,
                     "SELECT tenant_id, coalesce(seq, 0), kind, detail, to_char(at AT TIME ZONE "
                     "'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM pgrollout_control.audit_alerts "
                     "WHERE kind IN ('fork', 'gap', 'chain_break') AND ($1::text IS NULL OR "
                     "tenant_id = $1) ORDER BY tenant_id, seq, id",
                     1, params, &r, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout audit verify: %s\n", err.msg);
        return -1;
    }
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        char problem[512];
        snprintf(problem, sizeof(problem), "%s (collector alert of %s): %s", PQgetvalue(r, i, 2),
                 PQgetvalue(r, i, 4), PQgetvalue(r, i, 3));
        print_broken(PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), problem, json);
    }
    PQclear(r);
    return n;
}

static int verify_all(coord *c, const char *only_tenant, bool json)
{
    PGresult *r = NULL;
    pgr_error err;
    const char *params[] = {only_tenant};
    if (pgr_pg_execp(c->db,
                     "SELECT tenant_id, seq, prev_hash, hash, record, kid, envelope FROM "
                     "pgrollout_control.audit_log WHERE $1::text IS NULL OR tenant_id = $1 "
                     "ORDER BY tenant_id, seq",
                     1, params, &r, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout audit verify: %s\n", err.msg);
        return COORD_EXIT_FAIL;
    }
    int broken = 0, tenants = 0;
    char cur[129] = "", prev[65] = "";
    long long next = 1;
    bool tenant_broken = false;
    for (int i = 0; i < PQntuples(r); i++) {
        if (strcmp(cur, PQgetvalue(r, i, 0)) != 0) {
            snprintf(cur, sizeof(cur), "%s", PQgetvalue(r, i, 0));
            snprintf(prev, sizeof(prev), "%064d", 0);
            next = 1;
            tenant_broken = false;
            tenants++;
        }
        const char *bad = tenant_broken ? NULL : verify_row(c, r, i, prev, next);
        if (bad != NULL) {
            broken++;
            tenant_broken = true;
            print_broken(cur, PQgetvalue(r, i, 1), bad, json);
        }
        snprintf(prev, sizeof(prev), "%s", PQgetvalue(r, i, 3));
        next = strtoll(PQgetvalue(r, i, 1), NULL, 10) + 1;
    }
    int alerts = verify_alerts(c, only_tenant, json);
    if (!json)
        printf("audit verify: %d record(s) of %d tenant(s), %d broken chain(s), %d chain "
               "alert(s)\n",
               PQntuples(r), tenants, broken, alerts < 0 ? 0 : alerts);
    PQclear(r);
    return broken == 0 && alerts == 0 ? COORD_EXIT_OK : COORD_EXIT_FAIL;
}

static void csv_field(const char *s)
{
    putchar('"');
    for (; s != NULL && *s != '\0'; s++) {
        if (*s == '"')
            putchar('"');
        putchar(*s);
    }
    putchar('"');
}

static int export_records(coord *c, const char *tenant, const char *since, const char *until,
                          bool csv)
{
    PGresult *r = NULL;
    pgr_error err;
    const char *params[] = {tenant, since, until};
    if (pgr_pg_execp(c->db,
                     "SELECT record, kid, hash FROM pgrollout_control.audit_log WHERE tenant_id "
                     "= $1 AND ($2::text IS NULL OR record::jsonb->>'at' >= $2) AND ($3::text IS "
                     "NULL OR record::jsonb->>'at' < $3) ORDER BY seq",
                     3, params, &r, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout audit export: %s\n", err.msg);
        return COORD_EXIT_FAIL;
    }
    static const char *const cols[] = {"seq",     "at",   "action", "operator", "job_id",
                                       "version", "step", "object", "outcome",  "phi"};
    if (csv) {
        printf("seq,at,action,operator,job_id,version,step,object,outcome,phi,kid,hash\n");
    }
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *o = json_loads(PQgetvalue(r, i, 0), 0, NULL);
        json_object_set_new(o, "kid", json_string(PQgetvalue(r, i, 1)));
        json_object_set_new(o, "hash", json_string(PQgetvalue(r, i, 2)));
        if (!csv) {
            char *line = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
            printf("%s\n", line != NULL ? line : "{}");
            free(line);
        } else {
            for (size_t k = 0; k < sizeof(cols) / sizeof(cols[0]); k++) {
                json_t *v = json_object_get(o, cols[k]);
                char num[32];
                const char *s = json_string_value(v);
                if (json_is_integer(v) || json_is_boolean(v)) {
                    snprintf(num, sizeof(num), "%s",
                             json_is_boolean(v) ? (json_is_true(v) ? "true" : "false") : "");
                    if (json_is_integer(v))
                        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
                    s = num;
                }
                csv_field(s);
                putchar(',');
            }
            csv_field(PQgetvalue(r, i, 1));
            putchar(',');
            csv_field(PQgetvalue(r, i, 2));
            putchar('\n');
        }
        json_decref(o);
    }
    PQclear(r);
    return COORD_EXIT_OK;
}

static int anchor(coord *c)
{
    PGresult *r = NULL;
    pgr_error err;
    if (pgr_pg_exec(c->db,
                    "SELECT DISTINCT ON (tenant_id) tenant_id, seq, hash FROM "
                    "pgrollout_control.audit_log ORDER BY tenant_id, seq DESC",
                    &r, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout audit anchor: %s\n", err.msg);
        return COORD_EXIT_FAIL;
    }
    char at[32];
    pgr_time_format(time(NULL), at);
    printf("# pgrollout audit anchor %s: keep this somewhere the control DB admin cannot edit\n",
           at);
    for (int i = 0; i < PQntuples(r); i++) {
        /* the tenant id came from an agent's message: escaped, it cannot break the line */
        pgr_term_printf(stdout, "%s %s %s", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                        PQgetvalue(r, i, 2));
    }
    PQclear(r);
    return COORD_EXIT_OK;
}

static const char *const audit_usage =
    "usage: pgrollout audit collect --config FILE [--idle-exit SEC]\n"
    "       pgrollout audit verify  --config FILE [--tenant T] [--json]\n"
    "       pgrollout audit export  --config FILE --tenant T [--since TIME] [--until TIME]\n"
    "                               [--format jsonl|csv]\n"
    "       pgrollout audit anchor  --config FILE\n\n"
    "collect: store the agents' signed audit records (verified, once each) in the control DB\n"
    "verify:  re-check signatures and hash chains; exit 0 intact, 1 broken (first record named)\n"
    "export:  the records of a tenant for an auditor (TIME: RFC 3339, e.g. 2025-11-06T00:00:00Z)\n"
    "anchor:  the latest hash of every tenant chain, to be kept outside the control DB\n";

int coord_audit_main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"tenant", required_argument, NULL, 't'},
                                         {"since", required_argument, NULL, 's'},
                                         {"until", required_argument, NULL, 'u'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"idle-exit", required_argument, NULL, 'i'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *tenant = NULL, *since = NULL, *until = NULL, *format = "jsonl";
    int64_t idle = 0;
    bool json = false;
    int ch;
    const char *sub = argc >= 2 ? argv[1] : "";
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        printf("%s", audit_usage);
        return COORD_EXIT_OK;
    }
    opterr = 0;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == 'c')
            config = optarg;
        else if (ch == 't')
            tenant = optarg;
        else if (ch == 's')
            since = optarg;
        else if (ch == 'u')
            until = optarg;
        else if (ch == 'f')
            format = optarg;
        else if (ch == 'j')
            json = true;
        else if (ch == 'i' && pgr_parse_int64(optarg, 1, 86400, &idle, NULL) == PGR_OK)
            continue;
        else if (ch == 'h') {
            printf("%s", audit_usage);
            return COORD_EXIT_OK;
        } else {
            fprintf(stderr, "pgrollout audit: invalid or unknown option \"%s\"\n%s",
                    argv[optind - 1], audit_usage);
            return COORD_EXIT_USAGE;
        }
    }
    time_t tt;
    bool known = strcmp(sub, "collect") == 0 || strcmp(sub, "verify") == 0 ||
                 strcmp(sub, "export") == 0 || strcmp(sub, "anchor") == 0;
    if (!known || config == NULL || optind != argc ||
        (strcmp(sub, "export") == 0 && tenant == NULL) ||
        (strcmp(format, "jsonl") != 0 && strcmp(format, "csv") != 0) ||
        (since != NULL && pgr_time_parse(since, &tt) != PGR_OK) ||
        (until != NULL && pgr_time_parse(until, &tt) != PGR_OK)) {
        fprintf(stderr, "pgrollout audit: %s\n%s",
                known ? "missing or invalid arguments" : "unknown subcommand", audit_usage);
        return COORD_EXIT_USAGE;
    }
    coord c;
    int rc = coord_open(&c, config, "audit", false);
    pgr_error err;
    if (rc == 0 && c.cfg->agent_keyring != NULL &&
        pgr_keyring_load(c.cfg->agent_keyring, &c.agents, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout audit: agent keyring: %s\n", err.msg);
        rc = COORD_EXIT_USAGE;
    }
    if (rc == 0 && c.agents == NULL && strcmp(sub, "export") != 0 && strcmp(sub, "anchor") != 0) {
        fprintf(stderr, "pgrollout audit: coordinator.agent_keyring is required\n");
        rc = COORD_EXIT_USAGE;
    }
    if (rc == 0 && strcmp(sub, "collect") == 0) {
        c.consumer = coord_audit_consumer(&c);
        if (c.consumer == NULL) {
            rc = COORD_EXIT_FAIL;
        } else {
            coord_reload_on_sighup();
            signal(SIGTERM, on_signal);
            signal(SIGINT, on_signal);
            rc = collect(&c, (int)idle);
        }
    } else if (rc == 0 && strcmp(sub, "verify") == 0) {
        rc = verify_all(&c, tenant, json);
    } else if (rc == 0 && strcmp(sub, "export") == 0) {
        rc = export_records(&c, tenant, since, until, strcmp(format, "csv") == 0);
    } else if (rc == 0) {
        rc = anchor(&c);
    }
    coord_close(&c);
    return rc;
}
