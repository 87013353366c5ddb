/*
 * cmd_release.h - `pgrollout release`: sign, cosign, verify and show release manifests,
 * offline. Returns the process exit code (pgr/exitcode.h).
 */
#ifndef COORD_CMD_RELEASE_H
#define COORD_CMD_RELEASE_H

int coord_cmd_release_main(int argc, char **argv);

#endif
