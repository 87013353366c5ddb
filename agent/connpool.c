/*
 * connpool.c - one kept session per tenant. A backend start with TLS costs the tenant's server
 * about 4 ms of CPU (pgbench -C, docs/BENCHMARKS.md); before this a job took four or five of
 * them (intake, executor, job state, audit publication). Nothing of one session may reach the
 * next: a session goes back only idle, outside any transaction, and after DISCARD ALL.
 */
#include "connpool.h"

#include "pgr/clock.h"

void agent_connpool_init(agent_connpool *p)
{
    pthread_mutex_init(&p->mu, NULL);
    p->conn = NULL;
    p->idle_since_ms = 0;
}

PGconn *agent_connpool_take(agent_connpool *p)
{
    pthread_mutex_lock(&p->mu);
    PGconn *c = p->conn;
    p->conn = NULL;
    pthread_mutex_unlock(&p->mu);
    if (c == NULL)
        return NULL;
    /* one round trip of an empty query (about 0.1 ms) proves the backend is still there: the
     * server may have ended it while it was kept (restart, pg_terminate_backend), and a job
     * must not start on a dead session when a new one is at hand */
    PGresult *r = PQexec(c, "");
    bool alive = PQresultStatus(r) == PGRES_EMPTY_QUERY && PQstatus(c) == CONNECTION_OK &&
                 PQtransactionStatus(c) == PQTRANS_IDLE;
    PQclear(r);
    if (!alive) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

void agent_connpool_give(agent_connpool *p, PGconn *c)
{
    if (c == NULL)
        return;
    bool reusable = PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE;
    if (reusable) {
        PGresult *r = PQexec(c, "DISCARD ALL");
        reusable = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
    }
    pthread_mutex_lock(&p->mu);
    if (reusable && p->conn == NULL) {
        p->conn = c;
        p->idle_since_ms = pgr_clock_mono_ms();
        c = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    PQfinish(c);
}

void agent_connpool_expire(agent_connpool *p, long long max_idle_ms)
{
    PGconn *c = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->conn != NULL && pgr_clock_mono_ms() - p->idle_since_ms >= max_idle_ms) {
        c = p->conn;
        p->conn = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    PQfinish(c);
}

void agent_connpool_free(agent_connpool *p)
{
    agent_connpool_expire(p, 0);
    pthread_mutex_destroy(&p->mu);
}
