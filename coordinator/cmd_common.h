/*
 * cmd_common.h - what the commands of `pgrollout` share: opening the coordinator's session with
 * the refusal printed and turned into an exit code, usage texts, the options of the rollout
 * commands. Only the cmd_*.c files and main.c map results to exit codes (pgr/exitcode.h).
 */
#ifndef COORD_CMD_COMMON_H
#define COORD_CMD_COMMON_H

#include "coord.h"

#include <stdbool.h>
#include <stdio.h>

/* coord_open, and on failure "pgrollout CMD: ..." on stderr. Returns PGR_EXIT_OK, or
 * PGR_EXIT_USAGE for the configuration, the keys and the keyring, else PGR_EXIT_FAIL;
 * coord_close is due either way. */
int coord_cmd_common_open(coord *c, const char *config, const char *cmd, bool signing);

/* coord_kafka, and on failure "pgrollout CMD: kafka: ..." on stderr. Returns PGR_EXIT_OK or
 * PGR_EXIT_FAIL. */
int coord_cmd_common_kafka(coord *c, const char *cmd);

/* Prints usage to out, then the exit-code table (pgr_exitcode_print_table) when exit_table. */
void coord_cmd_common_usage(FILE *out, const char *usage, bool exit_table);

/* The options of run, resume, rollback, pause, approve and abort. */
typedef struct coord_cmd_common_args {
    const char *config, *plan, *op, *wave, *rollout;
    const char *releases[16]; /* --release FILE, repeatable */
    size_t release_count;
    bool collect_audit;
    bool json;
    int timeout_s;
} coord_cmd_common_args;

/* Parses them into a (with ROLLOUT, the one argument, when want_rollout); --help and a refusal
 * print usage (coord_cmd_common_usage). Returns -1 after --help, 0, or PGR_EXIT_USAGE. */
int coord_cmd_common_parse(int argc, char **argv, const char *cmd, const char *usage,
                           bool exit_table, bool want_rollout, coord_cmd_common_args *a);

/* `status` and `tenants`: parses --config FILE [--json] (and ROLLOUT, $1 of sql, when rollout),
 * runs sql on the control database and prints its rows as a table or as a JSON array of
 * objects. Returns the exit code. */
int coord_cmd_common_query_main(int argc, char **argv, const char *usage, const char *sql,
                                bool rollout);

#endif
