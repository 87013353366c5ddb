/*
 * cmd_audit.c - `pgrollout audit collect|verify|export|anchor`: the central audit record.
 * `audit collect` consumes the audit topic, verifies each record (signature by an agent key
 * trusted for that tenant, hash = SHA-256(prev_hash bytes || record bytes), chain fields inside
 * the record) and stores it once in the append-only pgrollout_control.audit_log, committing
 * Kafka offsets only after the insert (audit_ingest.c). Gaps, forks, bad signatures and broken
 * hashes become rows of audit_alerts and are printed loudly. `audit verify` re-checks the whole
 * store; `audit export` and `audit anchor` serve auditors (audit_read.c).
 */
#include "cmd_audit.h"
#include "audit_ingest.h"
#include "audit_read.h"
#include "cmd_common.h"

#include "pgr/clock.h"
#include "pgr/exitcode.h"
#include "pgr/parse.h"
#include "pgr/term.h"

#include <getopt.h>
#include <signal.h>
#include <stdint.h>
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

static int collect(coord *c, int idle_exit_s)
{
    pgr_error err;
    long stored = 0;
    coord_reload_on_sighup();
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    if (coord_metrics_start(c, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout audit collect: %s\n", err.msg);
        return PGR_EXIT_USAGE;
    }
    if (coord_audit_ingest_collect(c, idle_exit_s, &audit_stop, &stored, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout: audit collector: %s\n", err.msg);
        return PGR_EXIT_FAIL;
    }
    fprintf(stderr, "audit collect: %ld message(s) processed\n", stored);
    return PGR_EXIT_OK;
}

/* One broken chain: a JSON object by jansson, or a text line escaped for the terminal (the
 * tenant id is what an agent's message said). */
static void print_broken(const char *tenant, const char *seq, const char *problem, void *user)
{
    if (*(const bool *)user) {
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

static int verify(coord *c, const char *only_tenant, bool json)
{
    coord_audit_read_counts n;
    pgr_error err;
    int alerts = 0;
    if (coord_audit_read_chains(c, only_tenant, print_broken, &json, &n, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout audit verify: %s\n", err.msg);
        return PGR_EXIT_FAIL;
    }
    if (coord_audit_read_alerts(c, only_tenant, print_broken, &json, &alerts, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout audit verify: %s\n", err.msg);
        alerts = -1;
    }
    if (!json)
        printf("audit verify: %d record(s) of %d tenant(s), %d broken chain(s), %d chain "
               "alert(s)\n",
               n.records, n.tenants, n.broken, alerts < 0 ? 0 : alerts);
    return n.broken == 0 && alerts == 0 ? PGR_EXIT_OK : PGR_EXIT_FAIL;
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
    if (coord_audit_read_export(c, tenant, since, until, &r, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout audit export: %s\n", err.msg);
        return PGR_EXIT_FAIL;
    }
    static const char *const cols[] = {"seq",     "at",   "action", "operator", "job_id",
                                       "version", "step", "object", "outcome",  "phi"};
    if (csv) {
        printf("seq,at,action,operator,job_id,version,step,object,outcome,phi,kid,hash,"
               "release_digests,release_kids\n");
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
            /* who approved the change: the releases of the job (release records only) */
            putchar(',');
            csv_field(json_string_value(json_object_get(o, "release_digests")));
            putchar(',');
            csv_field(json_string_value(json_object_get(o, "release_kids")));
            putchar('\n');
        }
        json_decref(o);
    }
    PQclear(r);
    return PGR_EXIT_OK;
}

static int anchor(coord *c)
{
    PGresult *r = NULL;
    pgr_error err;
    if (coord_audit_read_anchors(c, &r, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout audit anchor: %s\n", err.msg);
        return PGR_EXIT_FAIL;
    }
    char at[32];
    pgr_clock_format_utc(time(NULL), at);
    printf("# pgrollout audit anchor %s: keep this somewhere the control DB admin cannot edit\n",
           at);
    for (int i = 0; i < PQntuples(r); i++) {
        /* the tenant id came from an agent's message: escaped, it cannot break the line */
        pgr_term_printf(stdout, "%s %s %s", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                        PQgetvalue(r, i, 2));
    }
    PQclear(r);
    return PGR_EXIT_OK;
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

int coord_cmd_audit_main(int argc, char **argv)
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
        return PGR_EXIT_OK;
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
            return PGR_EXIT_OK;
        } else {
            fprintf(stderr, "pgrollout audit: invalid or unknown option \"%s\"\n%s",
                    argv[optind - 1], audit_usage);
            return PGR_EXIT_USAGE;
        }
    }
    time_t tt;
    bool known = strcmp(sub, "collect") == 0 || strcmp(sub, "verify") == 0 ||
                 strcmp(sub, "export") == 0 || strcmp(sub, "anchor") == 0;
    if (!known || config == NULL || optind != argc ||
        (strcmp(sub, "export") == 0 && tenant == NULL) ||
        (strcmp(format, "jsonl") != 0 && strcmp(format, "csv") != 0) ||
        (since != NULL && pgr_clock_parse_utc(since, &tt) != PGR_OK) ||
        (until != NULL && pgr_clock_parse_utc(until, &tt) != PGR_OK)) {
        fprintf(stderr, "pgrollout audit: %s\n%s",
                known ? "missing or invalid arguments" : "unknown subcommand", audit_usage);
        return PGR_EXIT_USAGE;
    }
    coord c;
    int rc = coord_cmd_common_open(&c, config, "audit", false);
    pgr_error err;
    if (rc == 0 && c.cfg->agent_keyring != NULL &&
        pgr_keyring_load(c.cfg->agent_keyring, &c.agents, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout audit: agent keyring: %s\n", err.msg);
        rc = PGR_EXIT_USAGE;
    }
    if (rc == 0 && c.agents == NULL && strcmp(sub, "export") != 0 && strcmp(sub, "anchor") != 0) {
        fprintf(stderr, "pgrollout audit: coordinator.agent_keyring is required\n");
        rc = PGR_EXIT_USAGE;
    }
    if (rc == 0 && strcmp(sub, "collect") == 0) {
        if (coord_audit_consumer(&c, &c.consumer, &err) != PGR_OK) {
            fprintf(stderr, "pgrollout: audit collector: %s\n", err.msg);
            rc = PGR_EXIT_FAIL;
        } else {
            rc = collect(&c, (int)idle);
        }
    } else if (rc == 0 && strcmp(sub, "verify") == 0) {
        rc = verify(&c, tenant, json);
    } else if (rc == 0 && strcmp(sub, "export") == 0) {
        rc = export_records(&c, tenant, since, until, strcmp(format, "csv") == 0);
    } else if (rc == 0) {
        rc = anchor(&c);
    }
    coord_close(&c);
    return rc;
}
