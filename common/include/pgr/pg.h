/*
 * pg.h - thin libpq helpers: run a statement (with parameters) and turn a failure into a
 * pgr_error carrying SQLSTATE, the retriable flag and PostgreSQL's primary message only (the
 * DETAIL can contain row values, which may be PHI, so it is never copied).
 */
#ifndef PGR_PG_H
#define PGR_PG_H

#include "pgr/error.h"

#include <libpq-fe.h>
#include <stdbool.h>

/* Fills err from a failed result (or from the connection when res is NULL). Returns PGR_ERR_DB. */
pgr_code pgr_pg_error(PGconn *conn, const PGresult *res, const char *what, pgr_error *err);

/* Runs sql (no parameters); on success *out (when not NULL) receives the result, else it is
 * cleared. */
pgr_code pgr_pg_exec(PGconn *conn, const char *sql, PGresult **out, pgr_error *err) PGR_MUSTCHECK;

/* Runs sql with text parameters ($1..$n). */
pgr_code pgr_pg_execp(PGconn *conn, const char *sql, int nparams, const char *const *params,
                      PGresult **out, pgr_error *err) PGR_MUSTCHECK;

/* Runs sql as the prepared statement `name` of this session, preparing it first unless
 * *prepared: for statements run dozens of times per session, whose parse and plan cost more
 * than their execution. The caller owns the name's uniqueness and *prepared (false again for a
 * new session). */
pgr_code pgr_pg_execp_prepared(PGconn *conn, const char *name, const char *sql, bool *prepared,
                               int nparams, const char *const *params, PGresult **out,
                               pgr_error *err) PGR_MUSTCHECK;

/* Connects; on failure the message names the redacted DSN (never the password). */
pgr_code pgr_pg_connect(const char *dsn, const char *application, PGconn **out,
                        pgr_error *err) PGR_MUSTCHECK;

/* True when the connection is gone (so a retry needs a new connection). */
bool pgr_pg_conn_lost(PGconn *conn);

#endif
