/*
 * cmd_report.c - `pgrollout report ROLLOUT --html FILE`: the rollout's report (report.c) written
 * to FILE.
 */
#include "cmd_report.h"
#include "cmd_common.h"
#include "report.h"

#include "pgr/exitcode.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

int coord_cmd_report_main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"html", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *usage = "usage: pgrollout report ROLLOUT --config FILE --html FILE\n";
    const char *config = NULL, *out = NULL;
    int ch;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == 'c')
            config = optarg;
        else if (ch == 'o')
            out = optarg;
        else if (ch == 'h') {
            printf("%s", usage);
            return PGR_EXIT_OK;
        } else {
            fprintf(stderr, "pgrollout report: unknown option \"%s\"\n%s", argv[optind - 1], usage);
            return PGR_EXIT_USAGE;
        }
    }
    if (config == NULL || out == NULL || optind != argc - 1) {
        fprintf(stderr, "pgrollout report: missing arguments\n%s", usage);
        return PGR_EXIT_USAGE;
    }
    coord c;
    int rc = coord_cmd_common_open(&c, config, "report", false);
    pgr_error err;
    if (rc == 0 && !coord_report_rollout_exists(&c, argv[optind])) {
        fprintf(stderr, "pgrollout report: no rollout \"%s\"\n", argv[optind]);
        rc = PGR_EXIT_FAIL;
    }
    FILE *f = rc == 0 ? fopen(out, "w") : NULL;
    if (rc == 0 && f == NULL) {
        fprintf(stderr, "pgrollout report: could not write \"%s\"\n", out);
        rc = PGR_EXIT_FAIL;
    }
    if (rc == 0 && coord_report_write(&c, argv[optind], f, &err) != PGR_OK) {
        fprintf(stderr, "pgrollout report: %s\n", err.msg);
        rc = PGR_EXIT_FAIL;
    }
    if (f != NULL && fclose(f) != 0)
        rc = PGR_EXIT_FAIL;
    if (rc == 0)
        printf("wrote %s\n", out);
    coord_close(&c);
    return rc;
}
