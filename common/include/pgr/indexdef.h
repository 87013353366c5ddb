/*
 * indexdef.h - compares an index step's CREATE INDEX statement with pg_get_indexdef() of an
 * existing index, to tell "our index, already built" from "another index of the same name"
 * (drift). Both are read by the SQL lexer (sqltext.h) and reduced to a canonical form of their
 * tokens: keywords and unquoted names in lower case, quoted names without their quotes, string
 * constants verbatim (a dollar-quoted one as '...'); blanks, comments, parentheses, type casts
 * (::type), schema "public.", CONCURRENTLY, IF NOT EXISTS, USING btree and final ';' removed.
 */
#ifndef PGR_INDEXDEF_H
#define PGR_INDEXDEF_H

#include <stdbool.h>

/* Canonical form of a CREATE INDEX statement; caller frees. NULL when out of memory. */
char *pgr_indexdef_canonical(const char *sql);

/* True when both statements define the same index. */
bool pgr_indexdef_equal(const char *step_sql, const char *pg_indexdef);

#endif
