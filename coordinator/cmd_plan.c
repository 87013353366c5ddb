/* cmd_plan.c - `pgrollout plan --migrations DIR`: the steps that would run, with locks and PHI. */
#include "cmd_plan.h"

#include "planfile.h"

#include "pgr/exitcode.h"
#include "pgr/migration.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct plan_opts {
    const char *rollout_plan; /* --plan FILE */
    const char *dir;
    const char *from; /* exclusive: versions above it */
    const char *to;   /* inclusive */
    bool json;
} plan_opts;

static void plan_usage(FILE *out)
{
    fprintf(out,
            "usage: pgrollout plan --migrations DIR [--from VERSION] [--to VERSION] [--json]\n"
            "       pgrollout plan --plan FILE [--json]\n\n"
            "With --plan: checks a rollout plan (waves, tenants, options; errors name the field)\n"
            "and prints each wave's tenants, then the steps up to the plan's target.\n\n"
            "Prints, without side effects, every up step that would run, in order, with its\n"
            "kind, object, transaction mode, PHI flag and the lock it takes.\n\n"
            "  --migrations DIR   migration files (default: migrations)\n"
            "  --from VERSION     start after this version (the tenant's current version)\n"
            "  --to VERSION       stop at this version (inclusive)\n"
            "  --json             JSON output\n"
            "  -h, --help         show this help\n");
}

static void print_waves(const coord_planfile *p, bool json)
{
    for (size_t w = 0; w < p->wave_count; w++) {
        const coord_planfile_wave *d = &p->waves[w];
        json_t *ts = json_array();
        for (size_t t = 0; t < d->count; t++)
            json_array_append_new(ts, json_string(d->tenants[t]));
        if (json) {
            json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:b, s:o}", "wave", d->name, "max_parallel",
                                  d->max_parallel, "failure_budget", coord_planfile_wave_budget(d),
                                  "soak_seconds", d->soak_seconds, "approval", d->manual_approval,
                                  "tenants", ts);
            char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
            printf("%s\n", s != NULL ? s : "{}");
            free(s);
            json_decref(o);
            continue;
        }
        char *list = json_dumps(ts, JSON_COMPACT);
        printf(
            "wave %zu %s: %zu tenant(s), max_parallel %d, failure budget %d, soak %d s%s\n  %s\n",
            w + 1, d->name, d->count, d->max_parallel, coord_planfile_wave_budget(d),
            d->soak_seconds, d->manual_approval ? ", manual approval" : "",
            list != NULL ? list : "");
        free(list);
        json_decref(ts);
    }
    if (!json)
        printf("on failure: %s\n\n", p->on_failure);
}

static json_t *step_json(const pgr_migration *m, const pgr_step *s)
{
    char obj[512];
    pgr_migration_step_describe(s, obj, sizeof(obj));
    return json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:b, s:s}", "version", m->version, "migration",
                     m->name, "step", s->index + 1, "kind", pgr_migration_step_kind_name(s->kind),
                     "object", obj, "transaction",
                     pgr_migration_step_transactional(s) ? "transaction" : "none", "phi", s->phi,
                     "lock", pgr_migration_step_lock(s));
}

static void print_step_text(const pgr_migration *m, const pgr_step *s)
{
    char obj[512];
    pgr_migration_step_describe(s, obj, sizeof(obj));
    printf("  %2d  %-12s %-60s %-11s %-3s %s\n", s->index + 1,
           pgr_migration_step_kind_name(s->kind), obj,
           pgr_migration_step_transactional(s) ? "transaction" : "none", s->phi ? "phi" : "-",
           pgr_migration_step_lock(s));
    PGR_UNUSED(m);
}

static int plan_print(const pgr_migration_set *set, const plan_opts *o)
{
    json_t *steps = json_array();
    size_t nmig = 0, nsteps = 0;

    for (size_t i = 0; i < set->count; i++) {
        const pgr_migration *m = set->items[i];
        if ((o->from != NULL && strcmp(m->version, o->from) <= 0) ||
            (o->to != NULL && strcmp(m->version, o->to) > 0))
            continue;
        nmig++;
        if (!o->json)
            printf("%s %s (checksum %.12s, %zu steps)\n", m->version, m->name, m->checksum,
                   m->up_count);
        for (size_t j = 0; j < m->up_count; j++, nsteps++) {
            if (o->json)
                json_array_append_new(steps, step_json(m, &m->up[j]));
            else
                print_step_text(m, &m->up[j]);
        }
    }
    if (o->json) {
        json_t *doc = json_pack("{s:i, s:i, s:o}", "migrations", (int)nmig, "step_count",
                                (int)nsteps, "steps", steps);
        char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s != NULL ? s : "{}");
        free(s);
        json_decref(doc);
    } else {
        json_decref(steps);
        printf("%zu migration(s), %zu step(s)\n", nmig, nsteps);
    }
    return PGR_EXIT_OK;
}

int coord_cmd_plan_main(int argc, char **argv)
{
    static const struct option opts[] = {{"migrations", required_argument, NULL, 'm'},
                                         {"from", required_argument, NULL, 'f'},
                                         {"to", required_argument, NULL, 't'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"plan", required_argument, NULL, 'p'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    plan_opts o = {NULL, "migrations", NULL, NULL, false};
    pgr_migration_set *set = NULL;
    pgr_error err;
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            o.dir = optarg;
            break;
        case 'f':
            o.from = optarg;
            break;
        case 't':
            o.to = optarg;
            break;
        case 'j':
            o.json = true;
            break;
        case 'p':
            o.rollout_plan = optarg;
            break;
        case 'h':
            plan_usage(stdout);
            return PGR_EXIT_OK;
        default:
            fprintf(stderr, "pgrollout plan: unknown or incomplete option \"%s\"\n",
                    argv[optind - 1]);
            plan_usage(stderr);
            return PGR_EXIT_USAGE;
        }
    }
    if (optind != argc || (o.from != NULL && !pgr_migration_version_valid(o.from)) ||
        (o.to != NULL && !pgr_migration_version_valid(o.to))) {
        fprintf(stderr, "pgrollout plan: %s\n",
                optind != argc ? "unexpected argument" : "a version is 14 digits (or 0)");
        return PGR_EXIT_USAGE;
    }
    coord_planfile rp;
    memset(&rp, 0, sizeof(rp));
    if (o.rollout_plan != NULL) {
        if (coord_planfile_load(o.rollout_plan, NULL, &rp, &err) != PGR_OK) {
            fprintf(stderr, "pgrollout plan: plan \"%s\": %s\n", o.rollout_plan, err.msg);
            coord_planfile_free(&rp);
            return PGR_EXIT_USAGE;
        }
        print_waves(&rp, o.json);
        o.dir = rp.dir;
        o.to = rp.target;
    }
    pgr_error_clear(&err);
    if (pgr_migration_dir_load(o.dir, &set, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout plan: %s\n", err.msg);
        return PGR_EXIT_USAGE;
    }
    int rc = plan_print(set, &o);
    pgr_migration_set_free(set);
    coord_planfile_free(&rp);
    return rc;
}
