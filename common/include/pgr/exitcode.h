/*
 * exitcode.h - the exit codes of both binaries, in one table.
 *
 * Only the *_main functions of the command-line layers turn results into exit codes, through
 * pgr_exitcode_from or a PGR_EXIT_* constant; --help prints this table (pgr_exitcode_print_table),
 * and README.md and docs/OPERATIONS.md ("Exit codes") quote it.
 */
#ifndef PGR_EXITCODE_H
#define PGR_EXITCODE_H
#include "pgr/error.h"
#include <stdio.h>

typedef enum pgr_exit {
    PGR_EXIT_OK = 0,      /* success, or nothing to do */
    PGR_EXIT_FAIL = 1,    /* a step, a tenant, a check or a service failed */
    PGR_EXIT_USAGE = 2,   /* usage or configuration */
    PGR_EXIT_BLOCKED = 3, /* drift, or another runner or coordinator holds the lock */
    PGR_EXIT_PAUSED = 4,  /* the rollout paused or waits for an approval */
} pgr_exit;

#define PGR_EXIT_COUNT 5

/* The one-line meaning of an exit code, as the table states it. */
const char *pgr_exitcode_meaning(pgr_exit code);

/* The exit code of a command that ended with rc: 0 for PGR_OK, 3 for drift or a held lock, 1 for
 * everything else. Usage and configuration errors (2) and a paused rollout (4) are known to the
 * command, which uses the constants. */
pgr_exit pgr_exitcode_from(pgr_code rc);

/* Prints "exit codes:" and the table, one code a line, for --help. */
void pgr_exitcode_print_table(FILE *out);

#endif
