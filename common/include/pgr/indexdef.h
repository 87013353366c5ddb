/*
 * indexdef.h - compares an index step's CREATE INDEX statement with pg_get_indexdef() of an
 * existing index, to tell "our index, already built" from "another index of the same name"
 * (drift). Both are reduced to a canonical form: lower case outside literals; whitespace,
 * parentheses, double quotes, type casts (::type), schema "public.", CONCURRENTLY and
 * IF NOT EXISTS removed; a final ';' dropped.
 */
#ifndef PGR_INDEXDEF_H
#define PGR_INDEXDEF_H

#include <stdbool.h>

/* Canonical form of a CREATE INDEX statement; caller frees. NULL when out of memory. */
char *pgr_indexdef_canonical(const char *sql);

/* True when both statements define the same index. */
bool pgr_indexdef_equal(const char *step_sql, const char *pg_indexdef);

#endif
