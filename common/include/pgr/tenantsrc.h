/*
 * tenantsrc.h - tenant sources: a PostgreSQL server whose databases, by a name pattern, are
 * tenants. One `[tenant_sources]` line of the agent's configuration:
 *
 *   NAME = <libpq key=value options> dbname_pattern=PATTERN id=TEMPLATE [tags=K:V,...]
 *
 * PATTERN is literal text with exactly one '%' that matches any run of characters (no LIKE
 * wildcards: "district_%" matches "district_001", never "districtX001"). TEMPLATE makes the tenant
 * id: `{suffix}` is the part '%' matched, `{name}` the whole database name, one of them exactly
 * once; everything else is literal. The options' own `dbname` (default postgres) is where the
 * databases are listed from.
 */
#ifndef PGR_TENANTSRC_H
#define PGR_TENANTSRC_H

#include "pgr/error.h"

#include <stdbool.h>
#include <stddef.h>

/* Longest database name PostgreSQL stores (NAMEDATALEN - 1). */
#define PGR_TENANTSRC_DBNAME_MAX 63

typedef struct pgr_tenantsrc {
    char *name;
    char *conninfo; /* the server's options without dbname and ours: may hold a password */
    char *list_db;  /* the database the list is read from */
    char *prefix;   /* of the pattern, before '%' */
    char *suffix;   /* of the pattern, after '%' */
    char *id_template;
    char *tags; /* given to every tenant of the source, or NULL */
} pgr_tenantsrc;

typedef enum pgr_tenantsrc_match {
    PGR_TENANTSRC_NO_MATCH = 0,
    PGR_TENANTSRC_MATCH,
    PGR_TENANTSRC_BAD_ID /* the name matches, the id it makes is not a valid tenant id */
} pgr_tenantsrc_match;

/* Parses one line's value; on failure nothing is kept and err says what is wrong (never a value
 * of the connection options: they may hold a password). */
pgr_code pgr_tenantsrc_parse(const char *name, const char *value, pgr_tenantsrc *out,
                             pgr_error *err) PGR_MUSTCHECK;
void pgr_tenantsrc_clear(pgr_tenantsrc *s);

/* The tenant id of database dbname (written to id when it matches). */
pgr_tenantsrc_match pgr_tenantsrc_id(const pgr_tenantsrc *s, const char *dbname, char *id,
                                     size_t idlen);

/* The database whose tenant id would be id on this source, when one could be (written to db). */
bool pgr_tenantsrc_dbname(const pgr_tenantsrc *s, const char *id, char *db, size_t dblen);

/* The connection string of database dbname on the source's server (malloc'ed; NULL: no memory);
 * with s->list_db, the one the databases are listed from. */
char *pgr_tenantsrc_dsn(const pgr_tenantsrc *s, const char *dbname);

/* SQL that lists the candidate databases of a source; $1 is the prefix, $2 the suffix. */
extern const char PGR_TENANTSRC_LIST_SQL[];

#endif
