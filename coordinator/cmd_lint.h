/*
 * cmd_lint.h - `pgrollout lint`: checks migration files against the safety rules. Returns the
 * process exit code (pgr/exitcode.h).
 */
#ifndef COORD_CMD_LINT_H
#define COORD_CMD_LINT_H

int coord_cmd_lint_main(int argc, char **argv);

#endif
