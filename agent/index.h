/*
 * index.h - CREATE INDEX CONCURRENTLY with recovery of invalid leftovers, DROP INDEX
 * CONCURRENTLY, and index look-ups (one query for a whole migration part).
 */
#ifndef AGENT_INDEX_H
#define AGENT_INDEX_H
#include "session.h"

pgr_code agent_index_run(agent_exec *x, const pgr_migration *m, const pgr_step *s, int count,
                         const char *phase, pgr_error *err) PGR_MUSTCHECK;
/* State of an index by name in the step's schema: found, valid, definition (malloc'd). */
pgr_code agent_index_lookup(agent_exec *x, const pgr_step *s, bool *found, bool *valid, char **def,
                            pgr_error *err) PGR_MUSTCHECK;
/* Reads the state of every index and drop_index step of steps[0..n) in one query (one round trip
 * instead of one per step; 34 in the White Cross set); drop_index steps only when with_drops (the
 * executor does not look them up, verify does). Best effort: on any failure nothing is
 * kept and each step queries on its own. */
void agent_index_prefetch(agent_exec *x, const pgr_step *steps, size_t n, bool with_drops);
/* Like agent_index_lookup, answered by the prefetch when it holds s, once. */
pgr_code agent_index_lookup_first(agent_exec *x, const pgr_step *s, bool *found, bool *valid,
                                  char **def, pgr_error *err) PGR_MUSTCHECK;

#endif
