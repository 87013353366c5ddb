/*
 * sqltext.h - the one SQL lexer of pgrollout. It cuts SQL text into tokens by the rules of
 * PostgreSQL's scanner (src/backend/parser/scan.l): "--" comments end at CR or LF, block
 * comments nest, dollar quotes carry tags ($1 is a parameter), '' doubles a quote, E'' strings
 * take backslash escapes, U&'' and U&"" are Unicode forms, string constants continue across a
 * newline, and a ';' outside all of these ends a statement.
 *
 * Every caller that needs to know where a statement, comment or literal ends uses this file:
 * the migration parser (one statement per index, drop_index and extension step), lint (its
 * normalized view of a step) and the index-definition comparison. A second scanner would
 * sooner or later disagree with PostgreSQL, and the disagreement is where SQL gets smuggled.
 *
 * The lexer only delimits tokens; it does not decode literals or check grammar.
 */
#ifndef PGR_SQLTEXT_H
#define PGR_SQLTEXT_H

#include "pgr/error.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum pgr_sqltext_kind {
    PGR_SQLTEXT_SPACE = 0,     /* run of ' ', \t, \n, \r, \f, \v */
    PGR_SQLTEXT_COMMENT,       /* "--" up to, not including, the next CR or LF */
    PGR_SQLTEXT_BLOCK_COMMENT, /* slash-star comment, nesting, with its closing star-slash */
    PGR_SQLTEXT_IDENT,         /* keyword or unquoted identifier (may hold '$' after the first) */
    PGR_SQLTEXT_QUOTED_IDENT,  /* "..." or U&"..." */
    PGR_SQLTEXT_STRING,        /* '...', E'...', U&'...', B'...', X'...', N'...' */
    PGR_SQLTEXT_DOLLAR_STRING, /* $$...$$ or $tag$...$tag$ */
    PGR_SQLTEXT_NUMBER,        /* 12, 1.5, .5e-3 (and any junk PostgreSQL would refuse) */
    PGR_SQLTEXT_PARAM,         /* $1 */
    PGR_SQLTEXT_OPERATOR,      /* run of + - * / < > = ~ ! @ # % ^ & | ` ? */
    PGR_SQLTEXT_PUNCT,         /* , ( ) [ ] . : or :: */
    PGR_SQLTEXT_SEMICOLON,     /* ; */
    PGR_SQLTEXT_OTHER,         /* any other single byte */
} pgr_sqltext_kind;

/* How string constants are read. */
#define PGR_SQLTEXT_BACKSLASH_STRINGS                                                              \
    0x1u /* standard_conforming_strings = off: '...' takes                                         \
          * backslash escapes like E'...' */

typedef struct pgr_sqltext_token {
    pgr_sqltext_kind kind;
    size_t off; /* first byte in the input */
    size_t len; /* bytes, never past the end of the input */
    int line;   /* line of the first byte (lines end at LF) */
} pgr_sqltext_token;

/* A cursor over one input. The fields belong to the lexer; read `off` and `line` only. */
typedef struct pgr_sqltext {
    const char *sql;
    size_t len;
    size_t off;
    int line;
    unsigned flags;
} pgr_sqltext;

/* A statement as split by ';': the bytes from the end of the previous statement up to and
 * including its ';' (the last one may have no ';'). Joined in order, the statements give back
 * the input byte for byte. */
typedef struct pgr_sqltext_stmt {
    size_t off;
    size_t len;
    int line;     /* line of its first token that is not a blank or comment */
    bool has_sql; /* holds something besides blanks, comments and ';' */
} pgr_sqltext_stmt;

/* Starts a cursor over sql[0..len) (NUL bytes are ordinary bytes); first_line is the line
 * number of sql[0] in the caller's file (1 for a standalone string). flags: PGR_SQLTEXT_*. */
void pgr_sqltext_init(pgr_sqltext *lx, const char *sql, size_t len, int first_line, unsigned flags);

/* Reads the next token into *tok. Returns PGR_OK, PGR_ERR_NOTFOUND at the end of the input
 * (*tok untouched, err untouched), or PGR_ERR_INVALID for an unterminated string, quoted
 * identifier, dollar-quoted string or block comment: the message names what and the line where
 * it starts, *tok covers the rest of the input and the cursor is at the end. */
pgr_code pgr_sqltext_next(pgr_sqltext *lx, pgr_sqltext_token *tok, pgr_error *err);

/* Splits sql into statements (see pgr_sqltext_stmt). On success *out (NULL when the input is
 * empty) belongs to the caller (free()) and *count is its length. Errors as pgr_sqltext_next, or
 * PGR_ERR_NOMEM. */
pgr_code pgr_sqltext_split(const char *sql, size_t len, int first_line, unsigned flags,
                           pgr_sqltext_stmt **out, size_t *count, pgr_error *err) PGR_MUSTCHECK;

/* Number of statements with SQL in them (pgr_sqltext_stmt.has_sql), without allocating. Errors as
 * pgr_sqltext_next. */
pgr_code pgr_sqltext_count(const char *sql, size_t len, int first_line, unsigned flags,
                           size_t *count, pgr_error *err) PGR_MUSTCHECK;

/* True for tokens PostgreSQL treats as white space (blanks and both comment forms). */
bool pgr_sqltext_is_blank(pgr_sqltext_kind kind);

/* "space", "comment", ... for messages and tests. */
const char *pgr_sqltext_kind_name(pgr_sqltext_kind kind);

#endif
