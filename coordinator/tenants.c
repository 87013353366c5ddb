/* tenants.c - `pgrollout tenants list` and `pgrollout status ROLLOUT` from the control DB. */
#include "coord.h"
#include "coord_cli.h"

#include "pgr/pg.h"
#include "pgr/term.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
            return COORD_EXIT_USAGE;
        }
    }
    if (*config == NULL) {
        fprintf(stderr, "pgrollout: --config FILE is required\n%s", usage);
        return COORD_EXIT_USAGE;
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

static int query_main(int argc, char **argv, const char *usage, const char *sql, bool rollout)
{
    const char *config = NULL;
    bool json = false;
    int rc = common_opts(argc, argv, usage, &config, &json);
    if (rc != 0)
        return rc < 0 ? COORD_EXIT_OK : rc;
    if (rollout != (optind == argc - 1) || (!rollout && optind != argc)) {
        fprintf(stderr, "pgrollout: wrong arguments\n%s", usage);
        return COORD_EXIT_USAGE;
    }
    coord c;
    rc = coord_open(&c, config, rollout ? "status" : "tenants", false);
    PGresult *r = NULL;
    pgr_error err;
    const char *params[] = {rollout ? argv[optind] : NULL};
    if (rc == 0 && pgr_pg_execp(c.db, sql, rollout ? 1 : 0, params, &r, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout: %s\n", err.msg);
        rc = COORD_EXIT_FAIL;
    }
    if (rc == 0 && rollout && PQntuples(r) == 0) {
        pgr_term_printf(stderr, "pgrollout status: no rollout \"%s\"", argv[optind]);
        rc = COORD_EXIT_FAIL;
    } else if (rc == 0) {
        print_result(r, json);
    }
    PQclear(r);
    coord_close(&c);
    return rc;
}

int coord_tenants_main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "list") == 0) {
        argc--;
        argv++;
    }
    return query_main(argc, argv,
                      "usage: pgrollout tenants [list] --config FILE [--json]\n"
                      "Tenants known from signed agent heartbeats, with last-seen time.\n",
                      "SELECT tenant_id, agent_id, agent_kid, to_char(last_seen AT TIME ZONE "
                      "'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS last_seen, next_seq AS "
                      "last_seq FROM pgrollout_control.tenants ORDER BY tenant_id",
                      false);
}

int coord_status_main(int argc, char **argv)
{
    return query_main(argc, argv,
                      "usage: pgrollout status ROLLOUT --config FILE [--json]\n"
                      "Each tenant of a rollout: state, current migration and step, error.\n",
                      "SELECT t.tenant_id, t.state, t.version, t.step, t.steps, t.percent, "
                      "t.error, t.job_id, r.state AS rollout_state FROM "
                      "pgrollout_control.tenant_runs t JOIN pgrollout_control.rollouts r USING "
                      "(rollout_id) WHERE t.rollout_id = $1 ORDER BY t.tenant_id",
                      true);
}
