/*
 * cmd_report.h - `pgrollout report`: a rollout's HTML report. Returns the process exit code
 * (pgr/exitcode.h).
 */
#ifndef COORD_CMD_REPORT_H
#define COORD_CMD_REPORT_H

int coord_cmd_report_main(int argc, char **argv);

#endif
