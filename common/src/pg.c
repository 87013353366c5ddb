/* pg.c - libpq helpers with SQLSTATE-aware errors that never copy DETAIL (row values). */
#include "pgr/pg.h"
#include "pgr/log.h"
#include "pgr/dsn.h"

#include <stdio.h>
#include <string.h>

pgr_code pgr_pg_error(PGconn *conn, const PGresult *res, const char *what, pgr_error *err)
{
    const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char msg[200];

    /* Data errors (class 22) and constraint violations (class 23) quote the offending value in
     * the primary message itself ("invalid input syntax for type date: \"...\""), and values
     * in tenant tables may be PHI. Report them by SQLSTATE and object names only. */
    if (primary != NULL && state != NULL &&
        (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0)) {
        const char *table = PQresultErrorField(res, PG_DIAG_TABLE_NAME);
        const char *column = PQresultErrorField(res, PG_DIAG_COLUMN_NAME);
        const char *constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
        snprintf(msg, sizeof(msg), "%s error (SQLSTATE %s)%s%s%s%s%s%s%s",
                 state[1] == '2' ? "data" : "integrity constraint", state,
                 table != NULL ? " on table \"" : "", table != NULL ? table : "",
                 table != NULL ? "\"" : "", column != NULL ? " column " : "",
                 column != NULL ? column : "", constraint != NULL ? " constraint " : "",
                 constraint != NULL ? constraint : "");
        primary = msg;
    }
    if (primary == NULL) {
        /* connection-level failure: libpq's message, first line only */
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
        char *nl = strchr(msg, '\n');
        if (nl != NULL)
            *nl = '\0';
        primary = msg;
    }
    pgr_error_set(err, PGR_ERR_DB, "%s: %s", what, primary);
    if (state == NULL && PQstatus(conn) != CONNECTION_OK)
        state = "08006";
    pgr_error_set_sqlstate(err, state);
    return PGR_ERR_DB;
}

/* A statement's result: handed to *out (or cleared) on success, else turned into err. */
static pgr_code take_result(PGconn *conn, PGresult *res, PGresult **out, pgr_error *err)
{
    ExecStatusType st = PQresultStatus(res);
    if (out != NULL)
        *out = NULL;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        pgr_pg_error(conn, res, "query failed", err);
        PQclear(res);
        return PGR_ERR_DB;
    }
    if (out != NULL)
        *out = res;
    else
        PQclear(res);
    return PGR_OK;
}

pgr_code pgr_pg_execp(PGconn *conn, const char *sql, int nparams, const char *const *params,
                      PGresult **out, pgr_error *err)
{
    return take_result(conn,
                       nparams > 0 ? PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0)
                                   : PQexec(conn, sql),
                       out, err);
}

pgr_code pgr_pg_execp_prepared(PGconn *conn, const char *name, const char *sql, bool *prepared,
                               int nparams, const char *const *params, PGresult **out,
                               pgr_error *err)
{
    if (out != NULL)
        *out = NULL;
    if (!*prepared) {
        if (take_result(conn, PQprepare(conn, name, sql, nparams, NULL), NULL, err) != PGR_OK)
            return PGR_ERR_DB;
        *prepared = true;
    }
    return take_result(conn, PQexecPrepared(conn, name, nparams, params, NULL, NULL, 0), out, err);
}

pgr_code pgr_pg_exec(PGconn *conn, const char *sql, PGresult **out, pgr_error *err)
{
    return pgr_pg_execp(conn, sql, 0, NULL, out, err);
}

/* libpq's reason for a failed connection, first line only; replaced when it holds a secret of
 * the DSN. */
static void connect_message(PGconn *c, const char *dsn, char *msg, size_t len)
{
    snprintf(msg, len, "%s", PQerrorMessage(c));
    char *nl = strchr(msg, '\n');
    if (nl != NULL)
        *nl = '\0';
    if (pgr_dsn_secret_in(dsn, msg))
        snprintf(msg, len, "(libpq's message not shown: it quotes a password)");
}

pgr_code pgr_pg_connect(const char *dsn, const char *application, PGconn **out, pgr_error *err)
{
    /* Keepalives: a silently dropped network during a long CREATE INDEX CONCURRENTLY must end
     * in a lost-connection error (and a retry), not a wait forever. tcp_user_timeout does the
     * same for data sent and never acknowledged (keepalives do not run then): a statement sent
     * on a session the agent kept idle (agent/connpool.c) while the network went away fails
     * after 30 s instead of the kernel's retransmissions (about 15 minutes). */
    const char *keys[] = {"dbname",           "application_name",
                          "connect_timeout",  "keepalives",
                          "keepalives_idle",  "keepalives_interval",
                          "keepalives_count", "tcp_user_timeout",
                          "client_encoding",  NULL};
    const char *vals[] = {dsn, application, "10", "1", "30", "10", "3", "30000", "UTF8", NULL};
    char redacted[512];

    /* libpq's parse errors quote the part of the string where they stopped, which may be a
     * password ("invalid percent-encoded token: ..."): say nothing of such a string. */
    if (!pgr_dsn_valid(dsn))
        return pgr_error_set(err, PGR_ERR_CONFIG,
                             "could not connect: invalid connection string (not shown: it may "
                             "hold a password)");
    /* expand_dbname=1: dsn may be a connection string or URI; empty uses the PG* environment */
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c == NULL)
        return pgr_error_set(err, PGR_ERR_NOMEM, "out of memory");
    if (PQstatus(c) != CONNECTION_OK) {
        pgr_dsn_redact(dsn, redacted, sizeof(redacted));
        char msg[200];
        connect_message(c, dsn, msg, sizeof(msg));
        pgr_error_set(err, PGR_ERR_DB, "could not connect to \"%s\": %s", redacted, msg);
        pgr_error_set_sqlstate(err, "08001");
        PQfinish(c);
        return PGR_ERR_DB;
    }
    *out = c;
    return PGR_OK;
}

bool pgr_pg_conn_lost(PGconn *conn)
{
    return conn == NULL || PQstatus(conn) != CONNECTION_OK;
}
