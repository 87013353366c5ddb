/* agent_cli.h - commands of pgrollout-agent; each returns a process exit code (pgr/exitcode.h):
 * with daemon_main.c and main.c, the only code of the agent that maps results to exit codes. */
#ifndef AGENT_CLI_H
#define AGENT_CLI_H

#include "pgr/exitcode.h"

int agent_cli_apply(int argc, char **argv);
int agent_cli_rollback(int argc, char **argv);
int agent_cli_status(int argc, char **argv);
int agent_cli_verify(int argc, char **argv);

#endif
