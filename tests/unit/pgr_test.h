/* pgr_test.h - cmocka includes in the order cmocka needs, plus small helpers for unit tests. */
#ifndef PGR_TEST_H
#define PGR_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Creates a fresh temporary directory (mkdtemp) and returns it in buf. */
static inline const char *pgr_test_tmpdir(char *buf, size_t len)
{
    snprintf(buf, len, "/tmp/pgrtest.XXXXXX");
    return mkdtemp(buf);
}

/* Writes content to dir/name with the given mode; asserts success. */
static inline void pgr_test_write(const char *path, const char *content)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, strlen(content), f), strlen(content));
    fclose(f);
}

#endif
