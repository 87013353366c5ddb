/*
 * cmd_tenants.h - `pgrollout tenants`: the tenants known from agent heartbeats. Returns the
 * process exit code (pgr/exitcode.h).
 */
#ifndef COORD_CMD_TENANTS_H
#define COORD_CMD_TENANTS_H

int coord_cmd_tenants_main(int argc, char **argv);

#endif
