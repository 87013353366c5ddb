/*
 * pg_private.h - a private PostgreSQL 15 instance for fault tests that restart or stop the
 * server: initdb into a fresh directory under /tmp, trust authentication for role "pgrollout"
 * on 127.0.0.1 and a free port, started and restarted with pg_ctl. The shared dev server is
 * never touched. As root (CI) the server runs as the `postgres` OS user (initdb refuses root).
 * Instances still running when the test program exits are stopped.
 */
#ifndef PGR_PG_PRIVATE_H
#define PGR_PG_PRIVATE_H

#include "itest.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define PGP_BIN "/usr/lib/postgresql/15/bin"

typedef struct pg_private {
    char dir[64]; /* data in dir/data, log in dir/log */
    int port;
} pg_private;

static pg_private *pgp_live[4];

/* Runs a shell command as the cluster owner (postgres when we are root). */
static inline int pgp_sh(const char *cmd)
{
    char full[2048];
    if (geteuid() == 0)
        snprintf(full, sizeof(full), "cd / && runuser -u postgres -- sh -c '%s' >/dev/null 2>&1",
                 cmd);
    else
        snprintf(full, sizeof(full), "sh -c '%s' >/dev/null 2>&1", cmd);
    return system(full);
}

/* A TCP port on 127.0.0.1 that nothing listens on, below the ephemeral range. */
static inline int pgp_free_port(void)
{
    srand((unsigned)getpid());
    for (int i = 0; i < 200; i++) {
        int port = 20000 + rand() % 12000;
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = bind(s, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(s);
        if (ok)
            return port;
    }
    fail_msg("no free TCP port on 127.0.0.1");
    return 0;
}

static inline void pgp_stop(pg_private *p)
{
    char cmd[512];
    if (p->port == 0)
        return;
    snprintf(cmd, sizeof(cmd), PGP_BIN "/pg_ctl -D %s/data -m immediate -w -t 60 stop", p->dir);
    (void)pgp_sh(cmd);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", p->dir);
    (void)system(cmd);
    for (size_t i = 0; i < sizeof(pgp_live) / sizeof(pgp_live[0]); i++) {
        if (pgp_live[i] == p)
            pgp_live[i] = NULL;
    }
    p->port = 0;
}

static void pgp_stop_all(void)
{
    for (size_t i = 0; i < sizeof(pgp_live) / sizeof(pgp_live[0]); i++) {
        if (pgp_live[i] != NULL)
            pgp_stop(pgp_live[i]);
    }
}

/* initdb and start; fails the test when the server does not come up. */
static inline void pgp_start(pg_private *p)
{
    static bool registered = false;
    char cmd[1024], conf[128];
    snprintf(p->dir, sizeof(p->dir), "/tmp/pgrpriv.XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    if (geteuid() == 0) {
        snprintf(cmd, sizeof(cmd), "chown postgres:postgres %s", p->dir);
        assert_int_equal(system(cmd), 0);
    }
    p->port = pgp_free_port();
    if (!registered)
        atexit(pgp_stop_all);
    registered = true;
    for (size_t i = 0; i < sizeof(pgp_live) / sizeof(pgp_live[0]); i++) {
        if (pgp_live[i] == NULL) {
            pgp_live[i] = p;
            break;
        }
    }
    snprintf(cmd, sizeof(cmd),
             PGP_BIN "/initdb -D %s/data -U pgrollout -A trust -E UTF8 --locale=C -N "
                     "--no-instructions > %s/initdb.log 2>&1",
             p->dir, p->dir);
    if (pgp_sh(cmd) != 0)
        fail_msg("initdb of a private instance in %s failed", p->dir);
    snprintf(conf, sizeof(conf), "%s/data/postgresql.conf", p->dir);
    FILE *f = fopen(conf, "a");
    assert_non_null(f);
    fprintf(f,
            "\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = ''\n"
            "max_connections = 60\nshared_buffers = 32MB\nfsync = off\nfull_page_writes = off\n",
            p->port);
    fclose(f);
    snprintf(cmd, sizeof(cmd), PGP_BIN "/pg_ctl -D %s/data -l %s/log -w -t 60 start", p->dir,
             p->dir);
    if (pgp_sh(cmd) != 0)
        fail_msg("private PostgreSQL in %s did not start (see %s/log)", p->dir, p->dir);
}

/* pg_ctl restart -m fast: every session is terminated, the server is back when this returns. */
static inline void pgp_restart(pg_private *p)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), PGP_BIN "/pg_ctl -D %s/data -l %s/log -m fast -w -t 60 restart",
             p->dir, p->dir);
    if (pgp_sh(cmd) != 0)
        fail_msg("private PostgreSQL in %s did not restart (see %s/log)", p->dir, p->dir);
}

/* The server stopped (pg_ctl stop -m fast: every session terminated) for seconds, then started
 * again on the same port and data. */
static inline void pgp_outage(pg_private *p, int seconds)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), PGP_BIN "/pg_ctl -D %s/data -m fast -w -t 60 stop", p->dir);
    if (pgp_sh(cmd) != 0)
        fail_msg("private PostgreSQL in %s did not stop", p->dir);
    sleep((unsigned)seconds);
    snprintf(cmd, sizeof(cmd), PGP_BIN "/pg_ctl -D %s/data -l %s/log -w -t 60 start", p->dir,
             p->dir);
    if (pgp_sh(cmd) != 0)
        fail_msg("private PostgreSQL in %s did not start again (see %s/log)", p->dir, p->dir);
}

/* "dbname port=N": a database on the instance, in the form itest_connect and --dsn take. */
static inline void pgp_db(const pg_private *p, const char *db, char *out, size_t len)
{
    snprintf(out, len, "%s host=127.0.0.1 port=%d", db, p->port);
}

/* Creates database db on the instance. */
static inline void pgp_create_db(const pg_private *p, const char *db)
{
    char admin[128], sql[128];
    pgp_db(p, "postgres", admin, sizeof(admin));
    PGconn *c = itest_connect(admin);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
    itest_exec(c, sql);
    PQfinish(c);
}

/* Loads the White Cross schema and data (scale 1, no orphans) into db on the instance. */
static inline void pgp_load_white_cross(const pg_private *p, const char *db)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p %d -d %s -f %s/%s > /dev/null && "
             "psql -X -q -v ON_ERROR_STOP=1 -v scale=1 -v orphans=0 -h 127.0.0.1 -p %d -d %s "
             "-f %s/%s > /dev/null",
             p->port, db, PGR_SOURCE_DIR, "tests/fixtures/white_cross_base.sql", p->port, db,
             PGR_SOURCE_DIR, "tests/fixtures/white_cross_data.sql");
    if (system(cmd) != 0)
        fail_msg("loading White Cross into the private instance failed");
}

#endif
