/*
 * cmd_plan.h - `pgrollout plan`: the steps that would run, with locks and PHI flags; with --plan,
 * first the plan resolved into waves. Returns the process exit code (pgr/exitcode.h).
 */
#ifndef COORD_CMD_PLAN_H
#define COORD_CMD_PLAN_H

int coord_cmd_plan_main(int argc, char **argv);

#endif
