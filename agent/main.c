/*
 * main.c - `pgrollout-agent`: applies, rolls back, verifies and reports migrations on tenant
 * databases, standalone or as a daemon fed by signed Kafka jobs. Only main() exits.
 */
#include "pgr/log.h"

#include <stdio.h>
#include <string.h>

#define AGENT_EXIT_OK    0
#define AGENT_EXIT_USAGE 2

static void usage(FILE *out)
{
    fprintf(out, "pgrollout-agent %s - applies signed PostgreSQL migrations on tenant databases\n\n"
                 "usage: pgrollout-agent COMMAND [OPTIONS]\n\ncommands:\n"
                 "  version    print the version\n\n"
                 "  pgrollout-agent COMMAND --help   shows the options of a command\n\n"
                 "exit codes: 0 applied or nothing to do, 1 a step failed, 2 usage or\n"
                 "            configuration error, 3 drift or lock held\n",
            PGR_VERSION);
}

int main(int argc, char **argv)
{
    pgr_log_setup(PGR_LOG_INFO, PGR_LOG_TEXT, stderr);
    if (argc < 2) {
        usage(stderr);
        return AGENT_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return AGENT_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("pgrollout-agent %s\n", PGR_VERSION);
        return AGENT_EXIT_OK;
    }
    fprintf(stderr, "pgrollout-agent: unknown %s \"%s\"\nTry \"pgrollout-agent --help\".\n",
            argv[1][0] == '-' ? "option" : "command", argv[1]);
    return AGENT_EXIT_USAGE;
}
