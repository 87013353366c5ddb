/*
 * main.c - `pgrollout-agent`: applies, rolls back, verifies and reports migrations on tenant
 * databases, standalone or as a daemon fed by signed Kafka jobs. Only main() exits.
 */
#include "agent_cli.h"
#include "daemon_main.h"

#include "pgr/log.h"

#include <stdio.h>
#include <string.h>

typedef struct agent_command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} agent_command;

static const agent_command commands[] = {
    {"apply", agent_cli_apply, "apply pending migrations to one tenant database"},
    {"rollback", agent_cli_rollback, "roll applied migrations back to a version"},
    {"status", agent_cli_status, "show applied, pending and drifted migrations"},
    {"verify", agent_cli_verify, "check every object the applied migrations created"},
    {"run", daemon_main_run, "serve tenants: signed jobs from Kafka, events back (daemon)"},
    {NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    fprintf(out,
            "pgrollout-agent %s - applies signed PostgreSQL migrations on tenant databases\n\n"
            "usage: pgrollout-agent COMMAND [OPTIONS]\n\ncommands:\n",
            PGR_VERSION);
    for (const agent_command *c = commands; c->name != NULL; c++)
        fprintf(out, "  %-10s %s\n", c->name, c->summary);
    fprintf(out, "\n  pgrollout-agent COMMAND --help   shows the options of a command\n"
                 "  pgrollout-agent --version        prints the version\n\n");
    pgr_exitcode_print_table(out);
}

int main(int argc, char **argv)
{
    pgr_log_setup(PGR_LOG_INFO, PGR_LOG_TEXT, stderr);
    if (argc < 2) {
        usage(stderr);
        return PGR_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return PGR_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("pgrollout-agent %s\n", PGR_VERSION);
        return PGR_EXIT_OK;
    }
    for (const agent_command *c = commands; c->name != NULL; c++) {
        if (strcmp(argv[1], c->name) == 0)
            return c->fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "pgrollout-agent: unknown %s \"%s\"\nTry \"pgrollout-agent --help\".\n",
            argv[1][0] == '-' ? "option" : "command", argv[1]);
    return PGR_EXIT_USAGE;
}
