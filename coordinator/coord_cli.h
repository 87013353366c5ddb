/*
 * coord_cli.h - the commands of the `pgrollout` binary. Each returns a process exit code:
 * 0 success, 1 failure (or findings), 2 usage or configuration error, 3 drift or lock held.
 */
#ifndef COORD_CLI_H
#define COORD_CLI_H

#define COORD_EXIT_OK       0
#define COORD_EXIT_FAIL     1
#define COORD_EXIT_USAGE    2
#define COORD_EXIT_CONFLICT 3

int coord_keygen_main(int argc, char **argv);
int coord_lint_main(int argc, char **argv);
int coord_plan_main(int argc, char **argv);
int coord_devkafka_main(int argc, char **argv);
int coord_audit_main(int argc, char **argv);
int coord_report_main(int argc, char **argv);

#endif
