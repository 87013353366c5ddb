/*
 * cmd_verbs.h - `pgrollout pause`, `approve` and `abort`: an operator's action on a rollout that
 * its engine picks up on its next round. Each returns the process exit code (pgr/exitcode.h).
 */
#ifndef COORD_CMD_VERBS_H
#define COORD_CMD_VERBS_H

int coord_cmd_verbs_pause_main(int argc, char **argv);
int coord_cmd_verbs_approve_main(int argc, char **argv);
int coord_cmd_verbs_abort_main(int argc, char **argv);

#endif
