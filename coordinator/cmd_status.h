/*
 * cmd_status.h - `pgrollout status`: a rollout's tenant runs. Returns the process exit code
 * (pgr/exitcode.h).
 */
#ifndef COORD_CMD_STATUS_H
#define COORD_CMD_STATUS_H

int coord_cmd_status_main(int argc, char **argv);

#endif
