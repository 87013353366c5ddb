/*
 * file.h - whole-file reading with a size cap.
 */
#ifndef PGR_FILE_H
#define PGR_FILE_H
#include "pgr/error.h"
#include <stddef.h>

/* Reads a whole file (at most max_bytes) into a NUL-terminated malloc'd buffer owned by caller. */
pgr_code pgr_file_read(const char *path, size_t max_bytes, char **out, size_t *out_len,
                       pgr_error *err) PGR_MUSTCHECK;

#endif
