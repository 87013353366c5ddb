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
#include "ctldb.h"

#include "pgr/crypto.h"
#include "pgr/log.h"
#include "pgr/job.h"
#include "pgr/parse.h"
#include "pgr/pg.h"

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

static void alert(coord *c, const char *tenant, long long seq, const char *kind, const char *detail)
{
    char seqbuf[32];
    snprintf(seqbuf, sizeof(seqbuf), "%lld", seq);
    const char *params[] = {tenant, seq > 0 ? seqbuf : NULL, kind, detail};
    PGR_IGNORE(pgr_pg_execp(c->db,
                            "INSERT INTO pgrollout_control.audit_alerts (tenant_id, seq, kind, "
                            "detail) VALUES ($1, $2, $3, $4)",
                            4, params, NULL, NULL));
    fprintf(stderr, "AUDIT ALERT %s: tenant %s seq %lld: %s\n", kind, tenant != NULL ? tenant : "?",
            seq, detail);
}

/* hash == SHA-256(prev_hash bytes || record bytes), and the record names the same chain
 * position. Returns NULL when consistent, else what is wrong. */
static const char *check_link(const char *tenant, long long seq, const char *prev, const char *hash,
                              const char *record)
{
    uint8_t p[32], d[32];
    char hex[65];
    if (pgr_hex_decode(prev, p, 32) != PGR_OK)
        return "prev_hash is not 64 hex digits";
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, p, 32);
    crypto_hash_sha256_update(&st, (const unsigned char *)record, strlen(record));
    crypto_hash_sha256_final(&st, d);
    pgr_hex_encode(d, 32, hex);
    if (strcmp(hex, hash) != 0)
        return "hash does not match SHA-256(prev_hash || record)";
    json_t *r = json_loads(record, 0, NULL);
    const char *rt = json_string_value(json_object_get(r, "tenant_id"));
    const char *rp = json_string_value(json_object_get(r, "prev_hash"));
    bool ok = r != NULL && json_integer_value(json_object_get(r, "seq")) == seq && rt != NULL &&
              strcmp(rt, tenant) == 0 && rp != NULL && strcmp(rp, prev) == 0;
    json_decref(r);
    return ok ? NULL : "record's tenant_id/seq/prev_hash differ from its chain position";
}

static void store(coord *c, const char *tenant, long long seq, const char *prev, const char *hash,
                  const char *record, const char *kid, const char *envelope)
{
    char seqbuf[32], prevseq[32];
    PGresult *r = NULL;
    snprintf(seqbuf, sizeof(seqbuf), "%lld", seq);
    snprintf(prevseq, sizeof(prevseq), "%lld", seq - 1);
    const char *params[] = {tenant, seqbuf, prev, hash, record, kid, envelope, prevseq};
    /* one round trip: the insert, then the hash stored at this seq (another record's, when
     * the insert found one: the statement does not see its own row) and at seq - 1 */
    if (pgr_pg_execp(c->db,
                     "WITH ins AS (INSERT INTO pgrollout_control.audit_log (tenant_id, seq, "
                     "prev_hash, hash, record, kid, envelope) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                     "ON CONFLICT (tenant_id, seq) DO NOTHING RETURNING 1) SELECT (SELECT count(*) "
                     "FROM ins), (SELECT hash FROM pgrollout_control.audit_log WHERE tenant_id = "
                     "$1 AND seq = $2::bigint), (SELECT hash FROM pgrollout_control.audit_log "
                     "WHERE tenant_id = $1 AND seq = $8::bigint)",
                     8, params, &r, NULL) != PGR_OK) {
        if (pgr_pg_conn_lost(c->db))
            return; /* stored again once the connection is back (ctldb.c) */
        alert(c, tenant, seq, "store_failed", "the record could not be stored");
        return;
    }
    bool inserted = strcmp(PQgetvalue(r, 0, 0), "1") == 0;
    bool prev_found = !PQgetisnull(r, 0, 2);
    if (!inserted && !PQgetisnull(r, 0, 1) && strcmp(PQgetvalue(r, 0, 1), hash) != 0)
        alert(c, tenant, seq, "fork", "two different records claim this seq");
    else if (inserted && !prev_found && seq > 1)
        alert(c, tenant, seq, "gap", "the previous record has not been received");
    else if (inserted && prev_found && strcmp(PQgetvalue(r, 0, 2), prev) != 0)
        alert(c, tenant, seq, "chain_break", "prev_hash differs from the previous record's hash");
    PQclear(r);
}

const char *coord_audit_check(const char *payload, size_t len, const char *tenant,
                              const pgr_keyring_entry *e, coord_audit_msg *msg, const char **detail)
{
    memset(msg, 0, sizeof(*msg));
    json_t *o = json_loadb(payload, len, 0, NULL);
    msg->doc = o;
    msg->tenant_id = json_string_value(json_object_get(o, "tenant_id"));
    msg->prev_hash = json_string_value(json_object_get(o, "prev_hash"));
    msg->hash = json_string_value(json_object_get(o, "hash"));
    msg->record = json_string_value(json_object_get(o, "record"));
    msg->seq = json_integer_value(json_object_get(o, "seq"));
    const char *t = msg->tenant_id;
    if (t == NULL || msg->prev_hash == NULL || msg->hash == NULL || msg->record == NULL ||
        msg->seq < 1 || strcmp(t, tenant) != 0) {
        *detail = "not an audit record of this tenant";
        return "malformed";
    }
    if (!pgr_keyring_allows_tenant(e, t)) {
        *detail = "the signing agent key is not trusted for this tenant";
        return "untrusted_key";
    }
    *detail = check_link(t, msg->seq, msg->prev_hash, msg->hash, msg->record);
    return *detail != NULL ? "broken_hash" : NULL;
}

/* One message of the audit topic. */
void coord_audit_ingest(coord *c, const rd_kafka_message_t *m)
{
    char *payload = NULL, kid[PGR_KID_LEN], tenant[129];
    size_t plen = 0;
    pgr_envelope_reject why;
    const pgr_keyring_entry *e = NULL;
    pgr_error err;

    snprintf(tenant, sizeof(tenant), "%.*s", m->key_len < 128 ? (int)m->key_len : 128,
             m->key != NULL ? (const char *)m->key : "");
    if (pgr_envelope_open(m->payload, m->len, 1 << 20, PGR_DOMAIN_AUDIT, c->agents, &payload, &plen,
                          &e, kid, &why, &err) != PGR_OK) {
        alert(c, tenant, 0, pgr_envelope_reject_name(why), err.msg);
        return;
    }
    coord_audit_msg a;
    const char *detail = NULL, *kind = coord_audit_check(payload, plen, tenant, e, &a, &detail);
    if (kind != NULL) {
        alert(c, tenant, a.seq, kind, detail);
    } else {
        char *env = strndup(m->payload, m->len);
        store(c, a.tenant_id, a.seq, a.prev_hash, a.hash, a.record, kid, env);
        free(env);
    }
    json_decref(a.doc);
    free(payload);
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

typedef struct collect_state {
    long stored;
    bool failpoint; /* crash test: killed after storing the 21st message, before its offset */
} collect_state;

static void collect_store(coord *c, const rd_kafka_message_t *m, void *user)
{
    collect_state *s = user;
    coord_audit_ingest(c, m);
    /* crash test: stored, offset not committed (a restart must absorb the replay) */
    if (s->stored == 20 && s->failpoint)
        raise(SIGKILL);
}

static int collect(coord *c, int idle_exit_s)
{
    const char *fp = getenv("PGR_FAILPOINT");
    collect_state s = {0, fp != NULL && strcmp(fp, "collector_after_store") == 0};
    coord_ctldb g;
    rd_kafka_message_t *held = NULL;
    time_t last = time(NULL);
    coord_ctldb_init(&g, NULL);
    while (!audit_stop && (idle_exit_s <= 0 || time(NULL) - last < idle_exit_s)) {
        /* stored (or alerted) first, then the offset: a crash re-reads, never skips; a lost
         * control database holds the message until it is back. The commit is asynchronous (a
         * broker round trip per record capped ingest at about 2,000 a second): one lost in a
         * crash only re-reads records, and each (tenant, seq) is stored once */
        coord_consumed r =
            coord_ctldb_consume(c, &g, c->consumer, &held, 200, true, collect_store, &s);
        if (r != COORD_CONSUMED_NONE)
            last = time(NULL);
        if (r == COORD_CONSUMED_STORED)
            s.stored++;
        if (r == COORD_CONSUMED_HELD) {
            struct timespec ts = {0, 100000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (held != NULL)
        rd_kafka_message_destroy(held); /* not committed: read again by the next collector */
    fprintf(stderr, "audit collect: %ld message(s) processed\n", s.stored);
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
    return check_link(tenant, seq, PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4));
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
            if (json)
                printf("{\"tenant_id\":\"%s\",\"seq\":%s,\"problem\":\"%s\"}\n", cur,
                       PQgetvalue(r, i, 1), bad);
            else
                printf("BROKEN tenant %s at seq %s: %s\n", cur, PQgetvalue(r, i, 1), bad);
        }
        snprintf(prev, sizeof(prev), "%s", PQgetvalue(r, i, 3));
        next = strtoll(PQgetvalue(r, i, 1), NULL, 10) + 1;
    }
    if (!json)
        printf("audit verify: %d record(s) of %d tenant(s), %d broken chain(s)\n", PQntuples(r),
               tenants, broken);
    PQclear(r);
    return broken == 0 ? COORD_EXIT_OK : COORD_EXIT_FAIL;
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
    for (int i = 0; i < PQntuples(r); i++)
        printf("%s %s %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
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
