/*
 * cmd_audit.h - `pgrollout audit`: collect, verify, export and anchor the central audit record.
 * Returns the process exit code (pgr/exitcode.h).
 */
#ifndef COORD_CMD_AUDIT_H
#define COORD_CMD_AUDIT_H

int coord_cmd_audit_main(int argc, char **argv);

#endif
