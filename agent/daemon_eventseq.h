/*
 * daemon_eventseq.h - the agent's event sequence numbers (docs/PROTOCOL.md 9.1). They grow across
 * restarts, so that the coordinator can refuse an old event sent again (a replay): each start
 * begins above the wall clock in microseconds and above the floor kept in agent.state_dir.
 */
#ifndef AGENT_EVENTSEQ_H
#define AGENT_EVENTSEQ_H

#include "pgr/error.h"

#include <stdbool.h>

typedef struct daemon_eventseq {
    const char *state_dir; /* NULL: the clock alone (no floor kept) */
    long long next;        /* the next number to hand out */
    long long reserved;    /* numbers below this are covered by the floor on disk */
} daemon_eventseq;

/* Starts the sequence: next = max(now in microseconds, the floor in state_dir/event-seq) and a
 * new floor reserved on disk above it. Fails when the floor file cannot be read or written. */
pgr_code daemon_eventseq_start(daemon_eventseq *s, const char *state_dir, pgr_error *err);

/* The next number (the caller serialises calls). Reserves a new floor on disk when the reserved
 * range is used up; if that write fails the number is still returned (logged once). */
long long daemon_eventseq_next(daemon_eventseq *s);

/* A clean stop: the floor becomes the exact next number (the caller serialises calls). */
void daemon_eventseq_stop(daemon_eventseq *s);

#endif
