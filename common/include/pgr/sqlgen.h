/*
 * sqlgen.h - SQL the executor generates from step attributes (foreign keys, orphan checks).
 * Every identifier goes through PQescapeIdentifier; no value is ever interpolated.
 */
#ifndef PGR_SQLGEN_H
#define PGR_SQLGEN_H

#include "pgr/migration.h"
#include "pgr/buf.h"

#include <libpq-fe.h>

/* Appends a quoted (possibly schema-qualified "s.t") identifier list, comma-separated.
 * `alias` (may be NULL) prefixes each column ("c."). */
pgr_code pgr_sqlgen_idents(PGconn *conn, pgr_buf *out, const char *list, const char *alias,
                           pgr_error *err) PGR_MUSTCHECK;

/* Appends a quoted "schema"."table" (or "table") name. */
pgr_code pgr_sqlgen_qualified(PGconn *conn, pgr_buf *out, const char *name,
                              pgr_error *err) PGR_MUSTCHECK;

/* Appends one quoted identifier. */
pgr_code pgr_sqlgen_ident(PGconn *conn, pgr_buf *out, const char *ident,
                          pgr_error *err) PGR_MUSTCHECK;

/* ALTER TABLE child ADD CONSTRAINT name FOREIGN KEY (...) REFERENCES parent (...)
 *   ON UPDATE x ON DELETE y [NOT VALID] */
pgr_code pgr_sqlgen_fk_add(PGconn *conn, const pgr_step *s, bool not_valid, pgr_buf *out,
                           pgr_error *err) PGR_MUSTCHECK;

/* ALTER TABLE child VALIDATE CONSTRAINT name */
pgr_code pgr_sqlgen_fk_validate(PGconn *conn, const pgr_step *s, pgr_buf *out,
                                pgr_error *err) PGR_MUSTCHECK;

/* ALTER TABLE child DROP CONSTRAINT IF EXISTS name */
pgr_code pgr_sqlgen_fk_drop(PGconn *conn, const pgr_step *s, pgr_buf *out,
                            pgr_error *err) PGR_MUSTCHECK;

/* The WHERE condition selecting orphans of child alias "c" against parent alias "p":
 * "FROM child c WHERE c.a IS NOT NULL AND ... AND NOT EXISTS (SELECT 1 FROM parent p WHERE
 * p.x = c.a AND ...)". Rows with a NULL in any FK column are not orphans (MATCH SIMPLE). */
pgr_code pgr_sqlgen_orphan_from(PGconn *conn, const pgr_step *s, pgr_buf *out,
                                pgr_error *err) PGR_MUSTCHECK;

#endif
