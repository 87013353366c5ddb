/*
 * cmd_common.c - what the commands of `pgrollout` share (cmd_common.h).
 */
#include "cmd_common.h"

#include "pgr/exitcode.h"
#include "pgr/parse.h"
#include "pgr/pg.h"
#include "pgr/term.h"

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int coord_cmd_common_open(coord *c, const char *config, const char *cmd, bool signing)
{
    pgr_error err;
    pgr_code rc = coord_open(c, config, signing, &err);
    if (rc == PGR_OK)
        return PGR_EXIT_OK;
    fprintf(stderr, "pgrollout %s: %s\n", cmd, err.msg);
    return rc == PGR_ERR_CONFIG ? PGR_EXIT_USAGE : (int)pgr_exitcode_from(rc);
}

int coord_cmd_common_kafka(coord *c, const char *cmd)
{
    pgr_error err;
    pgr_code rc = coord_kafka(c, &err);
    if (rc == PGR_OK)
        return PGR_EXIT_OK;
    fprintf(stderr, "pgrollout %s: %s\n", cmd, err.msg);
    return (int)pgr_exitcode_from(rc);
}

void coord_cmd_common_usage(FILE *out, const char *usage, bool exit_table)
{
    fputs(usage, out);
    if (exit_table)
        pgr_exitcode_print_table(out);
}

int coord_cmd_common_parse(int argc, char **argv, const char *cmd, const char *usage,
                           bool exit_table, bool want_rollout, coord_cmd_common_args *a)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},   {"plan", required_argument, NULL, 'p'},
        {"operator", required_argument, NULL, 'o'}, {"timeout", required_argument, NULL, 't'},
        {"wave", required_argument, NULL, 'w'},     {"json", no_argument, NULL, 'j'},
        {"collect-audit", no_argument, NULL, 'A'},  {"release", required_argument, NULL, 'R'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    int c;
    int64_t t = 0;
    memset(a, 0, sizeof(*a));
    a->op = getenv("USER") != NULL ? getenv("USER") : "unknown";
    a->timeout_s = 3600;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'c')
            a->config = optarg;
        else if (c == 'p')
            a->plan = optarg;
        else if (c == 'o')
            a->op = optarg;
        else if (c == 'w')
            a->wave = optarg;
        else if (c == 'j')
            a->json = true;
        else if (c == 'A')
            a->collect_audit = true;
        else if (c == 'R' && a->release_count < 16)
            a->releases[a->release_count++] = optarg;
        else if (c == 't' && pgr_parse_int64(optarg, 1, 7 * 86400, &t, NULL) == PGR_OK)
            a->timeout_s = (int)t;
        else if (c == 'h') {
            coord_cmd_common_usage(stdout, usage, exit_table);
            return -1;
        } else {
            fprintf(stderr, "pgrollout %s: invalid or unknown option \"%s\"\n", cmd,
                    argv[optind - 1]);
            coord_cmd_common_usage(stderr, usage, exit_table);
            return PGR_EXIT_USAGE;
        }
    }
    if (a->release_count > 0 && strcmp(cmd, "run") != 0) {
        fprintf(stderr, "pgrollout %s: --release is for run (a new rollout's manifests)\n", cmd);
        return PGR_EXIT_USAGE;
    }
    if (want_rollout && optind == argc - 1)
        a->rollout = argv[optind++];
    if (a->config == NULL || optind != argc || (want_rollout && a->rollout == NULL)) {
        fprintf(stderr, "pgrollout %s: missing or unexpected arguments\n", cmd);
        coord_cmd_common_usage(stderr, usage, exit_table);
        return PGR_EXIT_USAGE;
    }
    return 0;
}

/* Parses --config FILE [--json]; returns -1 after help, else 0 or an exit code. */
static int common_opts(int argc, char **argv, const char *usage, const char **config, bool *json)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'c') {
            *config = optarg;
        } else if (c == 'j') {
            *json = true;
        } else if (c == 'h') {
            printf("%s", usage);
            return -1;
        } else {
            fprintf(stderr, "pgrollout: unknown or incomplete option \"%s\"\n%s", argv[optind - 1],
                    usage);
            return PGR_EXIT_USAGE;
        }
    }
    if (*config == NULL) {
        fprintf(stderr, "pgrollout: --config FILE is required\n%s", usage);
        return PGR_EXIT_USAGE;
    }
    return 0;
}

/* One row for the terminal: the values, two spaces apart, each escaped (tenant ids, agent ids
 * and errors come from agents' messages). */
static void print_row(const PGresult *r, int i)
{
    for (int f = 0; f < PQnfields(r); f++) {
        char *v = PQgetisnull(r, i, f) ? NULL : pgr_term_escape_dup(PQgetvalue(r, i, f));
        printf("%s%s", f > 0 ? "  " : "", v != NULL ? v : "-");
        free(v);
    }
    printf("\n");
}

/* Prints a result as a table or as a JSON array of objects (column names as keys), the JSON
 * encoded by jansson only. */
static void print_result(PGresult *r, bool json)
{
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(r); i++) {
        if (!json) {
            print_row(r, i);
            continue;
        }
        json_t *o = json_object();
        for (int f = 0; f < PQnfields(r); f++)
            json_object_set_new(o, PQfname(r, f),
                                PQgetisnull(r, i, f) ? json_null()
                                                     : pgr_term_json_string(PQgetvalue(r, i, f)));
        json_array_append_new(arr, o);
    }
    if (json) {
        char *s = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s != NULL ? s : "[]");
        free(s);
    }
    json_decref(arr);
}

int coord_cmd_common_query_main(int argc, char **argv, const char *usage, const char *sql,
                                bool rollout)
{
    const char *config = NULL;
    bool json = false;
    int rc = common_opts(argc, argv, usage, &config, &json);
    if (rc != 0)
        return rc < 0 ? PGR_EXIT_OK : rc;
    if (rollout != (optind == argc - 1) || (!rollout && optind != argc)) {
        fprintf(stderr, "pgrollout: wrong arguments\n%s", usage);
        return PGR_EXIT_USAGE;
    }
    coord c;
    rc = coord_cmd_common_open(&c, config, rollout ? "status" : "tenants", false);
    PGresult *r = NULL;
    pgr_error err;
    const char *params[] = {rollout ? argv[optind] : NULL};
    if (rc == 0 && pgr_pg_execp(c.db, sql, rollout ? 1 : 0, params, &r, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout: %s\n", err.msg);
        rc = PGR_EXIT_FAIL;
    }
    if (rc == 0 && rollout && PQntuples(r) == 0) {
        pgr_term_printf(stderr, "pgrollout status: no rollout \"%s\"", argv[optind]);
        rc = PGR_EXIT_FAIL;
    } else if (rc == 0) {
        print_result(r, json);
    }
    PQclear(r);
    coord_close(&c);
    return rc;
}
