/*
 * cmd_lint.c - `pgrollout lint [DIR|FILE...]`: checks migration files, prints file:line: rule:
 * msg.
 */
#include "cmd_lint.h"

#include "pgr/exitcode.h"
#include "pgr/lint.h"
#include "pgr/file.h"

#include <dirent.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct path_list {
    char **items;
    size_t count;
} path_list;

static void lint_usage(FILE *out)
{
    fprintf(out, "usage: pgrollout lint [--json] [DIR|FILE...]\n\n"
                 "Checks migration files against the safety rules (default: migrations/).\n"
                 "Prints \"file:line: rule: message\" per finding.\n\n"
                 "  --json        one JSON document with every finding\n"
                 "  --rules       list the rules and exit\n"
                 "  -h, --help    show this help\n\n"
                 "exit codes: 0 clean, 1 findings, 2 usage error\n");
}

static int path_cmp(const void *a, const void *b)
{
    const char *x = strrchr(*(char *const *)a, '/');
    const char *y = strrchr(*(char *const *)b, '/');
    return strcmp(x != NULL ? x : *(char *const *)a, y != NULL ? y : *(char *const *)b);
}

static int path_add(path_list *l, const char *p)
{
    char **n = realloc(l->items, (l->count + 1) * sizeof(*n));
    if (n == NULL)
        return -1;
    l->items = n;
    n[l->count] = strdup(p);
    return n[l->count++] != NULL ? 0 : -1;
}

/* Adds every *.sql of dir, in version (file name) order. */
static int path_add_dir(path_list *l, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[4096];
    size_t first = l->count;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 4 && e->d_name[0] != '.' && strcmp(e->d_name + n - 4, ".sql") == 0) {
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            if (path_add(l, p) != 0)
                break;
        }
    }
    closedir(d);
    qsort(l->items + first, l->count - first, sizeof(char *), path_cmp);
    return 0;
}

static void print_findings(const pgr_lint_report *r, bool json)
{
    if (!json) {
        for (size_t i = 0; i < r->count; i++)
            printf("%s:%d: %s: %s\n", r->items[i].file, r->items[i].line, r->items[i].rule,
                   r->items[i].message);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < r->count; i++)
        json_array_append_new(arr, json_pack("{s:s, s:i, s:s, s:s}", "file", r->items[i].file,
                                             "line", r->items[i].line, "rule", r->items[i].rule,
                                             "message", r->items[i].message));
    json_t *doc = json_pack("{s:o, s:i}", "findings", arr, "count", (int)r->count);
    char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", s != NULL ? s : "{}");
    free(s);
    json_decref(doc);
}

static int lint_paths(const path_list *files, bool json)
{
    pgr_lint_report *r = pgr_lint_report_new();
    pgr_migration **ms = calloc(files->count + 1, sizeof(*ms));
    size_t n = 0;
    pgr_error err;

    if (r == NULL || ms == NULL) {
        fprintf(stderr, "pgrollout lint: out of memory\n");
        pgr_lint_report_free(r);
        free(ms);
        return PGR_EXIT_FAIL;
    }
    for (size_t i = 0; i < files->count; i++) {
        char *buf = NULL;
        size_t len = 0;
        pgr_error_clear(&err);
        if (pgr_file_read(files->items[i], PGR_MIGRATION_MAX_BYTES, &buf, &len, &err) != PGR_OK) {
            pgr_lint_add(r, files->items[i], 0, "parse", "%s", err.msg);
            continue;
        }
        pgr_lint_buffer(r, buf, len, files->items[i], &ms[n]);
        if (ms[n] != NULL)
            n++;
        free(buf);
    }
    pgr_lint_across(r, ms, n);
    print_findings(r, json);
    int rc = r->count == 0 ? PGR_EXIT_OK : PGR_EXIT_FAIL;
    if (!json)
        fprintf(stderr, "%zu file(s) checked, %zu finding(s)\n", files->count, r->count);
    for (size_t i = 0; i < n; i++)
        pgr_migration_free(ms[i]);
    free(ms);
    pgr_lint_report_free(r);
    return rc;
}

static int collect_paths(int argc, char **argv, path_list *files)
{
    struct stat st;
    static char def_dir[] = "migrations";
    char *def[] = {def_dir};
    char **args = argc > 0 ? argv : def;
    int n = argc > 0 ? argc : 1;

    for (int i = 0; i < n; i++) {
        if (stat(args[i], &st) != 0) {
            fprintf(stderr, "pgrollout lint: \"%s\" does not exist\n", args[i]);
            return -1;
        }
        if (S_ISDIR(st.st_mode) ? path_add_dir(files, args[i]) : path_add(files, args[i])) {
            fprintf(stderr, "pgrollout lint: could not read \"%s\"\n", args[i]);
            return -1;
        }
    }
    return 0;
}

int coord_cmd_lint_main(int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                         {"rules", no_argument, NULL, 'r'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    bool json = false;
    path_list files = {NULL, 0};
    int c, rc;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'j') {
            json = true;
        } else if (c == 'r') {
            for (const pgr_lint_rule *r = pgr_lint_rules(); r->name != NULL; r++)
                printf("%-28s %s\n", r->name, r->description);
            return PGR_EXIT_OK;
        } else if (c == 'h') {
            lint_usage(stdout);
            return PGR_EXIT_OK;
        } else {
            fprintf(stderr, "pgrollout lint: unknown option \"%s\"\n", argv[optind - 1]);
            lint_usage(stderr);
            return PGR_EXIT_USAGE;
        }
    }
    rc = collect_paths(argc - optind, argv + optind, &files) != 0 ? PGR_EXIT_USAGE
                                                                  : lint_paths(&files, json);
    for (size_t i = 0; i < files.count; i++)
        free(files.items[i]);
    free(files.items);
    return rc;
}
