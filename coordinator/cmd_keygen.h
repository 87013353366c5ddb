/*
 * cmd_keygen.h - `pgrollout keygen`: writes an Ed25519 key pair. Returns the process exit code
 * (pgr/exitcode.h).
 */
#ifndef COORD_CMD_KEYGEN_H
#define COORD_CMD_KEYGEN_H

int coord_cmd_keygen_main(int argc, char **argv);

#endif
