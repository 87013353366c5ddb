/*
 * term.h - text bound for a terminal or a log line, made safe to show. Bytes that come from
 * outside (Kafka messages, tenant ids and errors stored in the control database) may hold
 * escape sequences that retitle the window, move the cursor, hide text or fake a line; every
 * line built from them passes through pgr_term_escape before it is printed.
 *
 * Made visible: bytes below 0x20, 0x7f and the backslash itself ("\n", "\t", "\r", "\\",
 * otherwise "\xNN"); C1 controls U+0080..U+009F and the Unicode bidirectional and line/paragraph
 * separator controls ("\uNNNN"); bytes that are not valid UTF-8 ("\xNN"). Valid UTF-8 text
 * otherwise passes unchanged, so names in any script stay readable.
 */
#ifndef PGR_TERM_H
#define PGR_TERM_H

#include "pgr/error.h"

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/* Writes the escaped form of s into out (outlen > 0: always NUL-terminated; an escape or a UTF-8
 * character is never cut in half). Returns the length of the whole escaped form, as snprintf
 * does: a result >= outlen means it was truncated. s NULL is the empty string. */
size_t pgr_term_escape(const char *s, char *out, size_t outlen);

/* The escaped form of s in a new buffer (caller frees), or NULL when out of memory. */
char *pgr_term_escape_dup(const char *s);

/* Formats like snprintf, then escapes the whole result into out (outlen > 0): one line for a
 * terminal, without its final newline (an embedded newline shows as "\n"). */
void pgr_term_format(char *out, size_t outlen, const char *fmt, ...) PGR_PRINTF(3, 4);
void pgr_term_vformat(char *out, size_t outlen, const char *fmt, va_list ap) PGR_PRINTF(3, 0);

/* pgr_term_format of one line (up to 4 KB escaped), written to f with its newline. */
void pgr_term_printf(FILE *f, const char *fmt, ...) PGR_PRINTF(2, 3);
void pgr_term_vprintf(FILE *f, const char *fmt, va_list ap) PGR_PRINTF(2, 0);

/* A JSON string (new reference) of untrusted text for a JSON output built with jansson: s itself
 * when it is valid UTF-8, else its escaped form (jansson refuses invalid UTF-8, and the value
 * must not silently disappear). NULL only when out of memory. */
json_t *pgr_term_json_string(const char *s);

#endif
