/* parse.c - checked number/boolean parsing, bounded string helpers, growable buffer, file read. */
#include "pgr/parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

pgr_code pgr_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out, pgr_error *err)
{
    char *end = NULL;
    long long v;

    if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
        return pgr_error_set(err, PGR_ERR_INVALID, "invalid integer \"%s\"", s != NULL ? s : "");
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno == ERANGE || *end != '\0')
        return pgr_error_set(err, PGR_ERR_INVALID, "invalid integer \"%s\"", s);
    if (v < min || v > max)
        return pgr_error_set(err, PGR_ERR_INVALID,
                             "value %lld is out of range: expected %lld to %lld", v, (long long)min,
                             (long long)max);
    *out = (int64_t)v;
    return PGR_OK;
}

pgr_code pgr_parse_double(const char *s, double min, double max, double *out, pgr_error *err)
{
    char *end = NULL;
    double v;

    if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
        return pgr_error_set(err, PGR_ERR_INVALID, "invalid number \"%s\"", s != NULL ? s : "");
    errno = 0;
    v = strtod(s, &end);
    if (errno == ERANGE || *end != '\0' || v != v)
        return pgr_error_set(err, PGR_ERR_INVALID, "invalid number \"%s\"", s);
    if (v < min || v > max)
        return pgr_error_set(err, PGR_ERR_INVALID, "value %g is out of range: expected %g to %g", v,
                             min, max);
    *out = v;
    return PGR_OK;
}

pgr_code pgr_parse_bool(const char *s, bool *out, pgr_error *err)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; s != NULL && i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return PGR_OK;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return PGR_OK;
        }
    }
    return pgr_error_set(err, PGR_ERR_INVALID, "invalid boolean \"%s\": expected true or false",
                         s != NULL ? s : "");
}
