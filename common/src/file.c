/*
 * file.c - whole-file reading with a size cap (file.h).
 */
#include "pgr/file.h"
#include "pgr/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

pgr_code pgr_file_read(const char *path, size_t max_bytes, char **out, size_t *out_len,
                       pgr_error *err)
{
    FILE *f = fopen(path, "rb");
    pgr_buf b;
    char chunk[8192];
    size_t n;

    if (f == NULL)
        return pgr_error_set(err, errno == ENOENT ? PGR_ERR_NOTFOUND : PGR_ERR_IO,
                             "could not open file \"%s\": %s", path, strerror(errno));
    pgr_buf_init(&b);
    if (pgr_buf_append(&b, "", 0) != PGR_OK) {
        fclose(f);
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory reading \"%s\"", path);
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b.len + n > max_bytes) {
            fclose(f);
            pgr_buf_free(&b);
            return pgr_error_set(err, PGR_ERR_INVALID, "file \"%s\" is larger than %zu bytes", path,
                                 max_bytes);
        }
        if (pgr_buf_append(&b, chunk, n) != PGR_OK) {
            fclose(f);
            pgr_buf_free(&b);
            return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory reading \"%s\"", path);
        }
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        pgr_buf_free(&b);
        return pgr_error_set(err, PGR_ERR_IO, "could not read file \"%s\"", path);
    }
    *out = b.data;
    if (out_len != NULL)
        *out_len = b.len;
    return PGR_OK;
}
