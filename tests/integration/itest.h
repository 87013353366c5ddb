/*
 * itest.h - helpers for integration tests against the real PostgreSQL and Kafka that
 * tests/run.sh starts (deploy/local/services.sh exports PGHOST, PGPORT, PGUSER and
 * PGR_KAFKA_BOOTSTRAP). A missing service is a failure, never a skip.
 */
#ifndef PGR_ITEST_H
#define PGR_ITEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline PGconn *itest_connect(const char *dbname)
{
    char dsn[256];
    snprintf(dsn, sizeof(dsn), "dbname=%s connect_timeout=10", dbname);
    PGconn *c = PQconnectdb(dsn);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("cannot connect to PostgreSQL database %s (PGHOST=%s PGPORT=%s): %s", dbname,
                 getenv("PGHOST") ? getenv("PGHOST") : "", getenv("PGPORT") ? getenv("PGPORT") : "",
                 PQerrorMessage(c));
    return c;
}

/* Writes text to path (a migration, a plan, a config), replacing it. */
static inline void itest_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static inline void itest_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("query failed: %s\n%s", sql, PQerrorMessage(c));
    PQclear(r);
}

/* First column of the first row as a long (the query must return exactly one row). */
static inline long itest_scalar(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("scalar query failed: %s\n%s", sql, PQerrorMessage(c));
    long v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

/* Like itest_scalar, but a query that fails (a schema that another process has not installed
 * yet) gives `otherwise` instead of failing the test. */
static inline long itest_scalar_or(PGconn *c, const char *sql, long otherwise)
{
    PGresult *r = PQexec(c, sql);
    long v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
                 ? strtol(PQgetvalue(r, 0, 0), NULL, 10)
                 : otherwise;
    PQclear(r);
    return v;
}

/* Creates a fresh database "<prefix>_<pid>_<n>" (dropped first if a crashed run left it). */
static inline void itest_create_db(const char *prefix, char *name, size_t len)
{
    static int counter = 0;
    char sql[256];
    snprintf(name, len, "%s_%d_%d", prefix, (int)getpid(), counter++);
    PGconn *admin = itest_connect("postgres");
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", name);
    itest_exec(admin, sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    itest_exec(admin, sql);
    PQfinish(admin);
}

static inline void itest_drop_db(const char *name)
{
    char sql[256];
    PGconn *admin = itest_connect("postgres");
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    itest_exec(admin, sql);
    PQfinish(admin);
}

/* Runs psql -f on a file of the source tree with extra -v settings ("-v scale=1 ..."). */
static inline void itest_psql_file(const char *db, const char *rel, const char *vars)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "psql -X -q -v ON_ERROR_STOP=1 %s -d %s -f %s/%s > /dev/null", vars,
             db, PGR_SOURCE_DIR, rel);
    if (system(cmd) != 0)
        fail_msg("psql failed: %s", cmd);
}

/* Loads the White Cross base schema and synthetic data into db. */
static inline void itest_load_white_cross(const char *db, int scale, int orphans)
{
    char vars[128];
    snprintf(vars, sizeof(vars), "-v scale=%d -v orphans=%d", scale, orphans);
    itest_psql_file(db, "tests/fixtures/white_cross_base.sql", "");
    itest_psql_file(db, "tests/fixtures/white_cross_data.sql", vars);
}

static inline const char *itest_kafka_bootstrap(void)
{
    const char *b = getenv("PGR_KAFKA_BOOTSTRAP");
    if (b == NULL || *b == '\0')
        fail_msg("PGR_KAFKA_BOOTSTRAP is not set: run through tests/run.sh");
    return b;
}

#endif
