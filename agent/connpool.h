/* connpool.h - the one idle session the agent daemon keeps per tenant between its own
 * sessions (intake, executor, job state, audit publisher), so that a job does not start a
 * backend and a TLS handshake for each of them. */
#ifndef AGENT_CONNPOOL_H
#define AGENT_CONNPOOL_H

#include <libpq-fe.h>
#include <pthread.h>

/* How long an idle session is kept: a job's sessions follow each other within milliseconds,
 * its audit publication within a second; a longer wait would hold a backend per tenant. */
#define AGENT_CONNPOOL_IDLE_MS 5000

typedef struct agent_connpool {
    pthread_mutex_t mu;
    PGconn *conn;            /* idle and reset, or NULL */
    long long idle_since_ms; /* monotonic */
} agent_connpool;

void agent_connpool_init(agent_connpool *p);

/* The idle session, if it is still open and idle (the server may have ended it meanwhile);
 * NULL when there is none. The caller owns it: it goes back by agent_connpool_give. */
PGconn *agent_connpool_take(agent_connpool *p);

/* Resets c (DISCARD ALL: settings, prepared statements, advisory locks, temporary tables) and
 * keeps it; closes it instead when it is broken, inside a transaction, or one is kept already.
 * c may be NULL. */
void agent_connpool_give(agent_connpool *p, PGconn *c);

/* Closes the kept session when it has been idle for max_idle_ms or longer (all when 0). */
void agent_connpool_expire(agent_connpool *p, long long max_idle_ms);

/* Closes the kept session and destroys the pool. */
void agent_connpool_free(agent_connpool *p);

#endif
