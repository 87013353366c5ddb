/*
 * uuid.h - UUIDs of jobs and runs: random version 4, lowercase "8-4-4-4-12".
 */
#ifndef PGR_UUID_H
#define PGR_UUID_H
#include <stdbool.h>

#define PGR_UUID_LEN 37 /* 36 characters and the NUL */

/* A random (version 4) UUID from libsodium's generator (sodium_init must have run). */
void pgr_uuid_v4(char out[PGR_UUID_LEN]);

/* True when s is a lowercase UUID "8-4-4-4-12". */
bool pgr_uuid_valid(const char *s);

#endif
