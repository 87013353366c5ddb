/* agent_cli.h - commands of pgrollout-agent; each returns a process exit code. */
#ifndef AGENT_CLI_H
#define AGENT_CLI_H

#define AGENT_EXIT_OK       0
#define AGENT_EXIT_FAIL     1
#define AGENT_EXIT_USAGE    2
#define AGENT_EXIT_CONFLICT 3

int agent_cli_apply(int argc, char **argv);
int agent_cli_rollback(int argc, char **argv);
int agent_cli_status(int argc, char **argv);
int agent_cli_verify(int argc, char **argv);

#endif
