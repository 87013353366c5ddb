/*
 * cmd_verbs.c - `pgrollout pause|approve|abort ROLLOUT` (cmd_verbs.h): a state change in the
 * control database (verbs.c), with the operator.
 */
#include "cmd_verbs.h"
#include "cmd_common.h"
#include "verbs.h"

#include "pgr/exitcode.h"
#include "pgr/term.h"

#include <stdio.h>
#include <string.h>

static int verb_main(int argc, char **argv, const char *cmd)
{
    char usage[256];
    coord_cmd_common_args a;
    snprintf(usage, sizeof(usage),
             "usage: pgrollout %s ROLLOUT --config FILE [--operator NAME]%s\n", cmd,
             strcmp(cmd, "approve") == 0 ? " [--wave NAME]" : "");
    int rc = coord_cmd_common_parse(argc, argv, cmd, usage, false, true, &a);
    if (rc != 0)
        return rc < 0 ? PGR_EXIT_OK : rc;
    coord c;
    pgr_error err;
    bool done = false;
    rc = coord_cmd_common_open(&c, a.config, cmd, false);
    if (rc == PGR_EXIT_OK &&
        coord_verbs_apply(&c, cmd, a.rollout, a.wave, a.op, &done, &err) != PGR_OK) {
        pgr_term_printf(stderr, "pgrollout %s: %s", cmd, err.msg);
        rc = PGR_EXIT_FAIL;
    } else if (rc == PGR_EXIT_OK && !done) {
        pgr_term_printf(stderr, "pgrollout %s: nothing to %s in rollout \"%s\"", cmd, cmd,
                        a.rollout);
        rc = PGR_EXIT_FAIL;
    } else if (rc == PGR_EXIT_OK) {
        pgr_term_printf(stdout, "rollout %s: %s by %s", a.rollout,
                        strcmp(cmd, "approve") == 0 ? "approved"
                        : strcmp(cmd, "pause") == 0 ? "paused"
                                                    : "aborted",
                        a.op);
    }
    coord_close(&c);
    return rc;
}

int coord_cmd_verbs_pause_main(int argc, char **argv)
{
    return verb_main(argc, argv, "pause");
}

int coord_cmd_verbs_abort_main(int argc, char **argv)
{
    return verb_main(argc, argv, "abort");
}

int coord_cmd_verbs_approve_main(int argc, char **argv)
{
    return verb_main(argc, argv, "approve");
}
