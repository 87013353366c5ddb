/*
 * main.c - `pgrollout`, the coordinator CLI: dispatches to one function per command (cmd_*.c).
 * Only main() exits; commands return exit codes (pgr/exitcode.h).
 */
#include "cmd_audit.h"
#include "cmd_devkafka.h"
#include "cmd_keygen.h"
#include "cmd_lint.h"
#include "cmd_plan.h"
#include "cmd_report.h"
#include "cmd_run.h"
#include "cmd_status.h"
#include "cmd_release.h"
#include "cmd_tenants.h"
#include "cmd_verbs.h"

#include "pgr/exitcode.h"
#include "pgr/log.h"

#include <stdio.h>
#include <string.h>

typedef struct coord_command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} coord_command;

static const coord_command commands[] = {
    {"keygen", coord_cmd_keygen_main, "write an Ed25519 key pair (NAME.key 0600, NAME.pub)"},
    {"lint", coord_cmd_lint_main, "check migration files against the safety rules"},
    {"plan", coord_cmd_plan_main, "print the steps that would run, with locks and PHI flags"},
    {"run", coord_cmd_run_main,
     "run a staged rollout: signed jobs wave by wave, agents' events back"},
    {"resume", coord_cmd_run_resume_main, "carry on with a paused or interrupted rollout"},
    {"pause", coord_cmd_verbs_pause_main,
     "stop publishing new jobs of a rollout (running ones finish)"},
    {"approve", coord_cmd_verbs_approve_main, "approve the wave a rollout waits on"},
    {"abort", coord_cmd_verbs_abort_main,
     "abort a rollout: running jobs are cancelled, no new jobs"},
    {"rollback", coord_cmd_run_rollback_main, "roll a wave's tenants back to where they started"},
    {"status", coord_cmd_status_main, "show a rollout's tenants and their state"},
    {"tenants", coord_cmd_tenants_main, "list tenants known from agent heartbeats"},
    {"report", coord_cmd_report_main, "write a self-contained HTML report of a rollout"},
    {"release", coord_cmd_release_main,
     "sign, cosign, verify and show release manifests (offline)"},
    {"audit", coord_cmd_audit_main, "collect, verify, export and anchor the central audit record"},
    {"dev-kafka", coord_cmd_devkafka_main, "in-memory mock Kafka for demos (not durable)"},
    {NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    fprintf(out,
            "pgrollout %s - signed, staged PostgreSQL schema rollouts over Kafka\n\n"
            "usage: pgrollout COMMAND [OPTIONS]\n\ncommands:\n",
            PGR_VERSION);
    for (const coord_command *c = commands; c->name != NULL; c++)
        fprintf(out, "  %-10s %s\n", c->name, c->summary);
    fprintf(out, "\n  pgrollout COMMAND --help   shows the options of a command\n"
                 "  pgrollout --version        prints the version\n\n");
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
        printf("pgrollout %s\n", PGR_VERSION);
        return PGR_EXIT_OK;
    }
    for (const coord_command *c = commands; c->name != NULL; c++) {
        if (strcmp(argv[1], c->name) == 0)
            return c->fn(argc - 1, argv + 1);
    }
    if (argv[1][0] == '-')
        fprintf(stderr, "pgrollout: unknown option \"%s\"\n", argv[1]);
    else
        fprintf(stderr, "pgrollout: unknown command \"%s\"\n", argv[1]);
    fprintf(stderr, "Try \"pgrollout --help\".\n");
    return PGR_EXIT_USAGE;
}
