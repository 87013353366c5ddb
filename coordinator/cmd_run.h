/*
 * cmd_run.h - `pgrollout run`, `resume` and `rollback`: the commands that drive a rollout's
 * engine. Each returns the process exit code (pgr/exitcode.h).
 */
#ifndef COORD_CMD_RUN_H
#define COORD_CMD_RUN_H

int coord_cmd_run_main(int argc, char **argv);
int coord_cmd_run_resume_main(int argc, char **argv);
int coord_cmd_run_rollback_main(int argc, char **argv);

#endif
