/*
 * term.c - escaping of untrusted text for terminals and log lines (see term.h): one function,
 * pgr_term_escape, that every terminal line holding outside bytes goes through.
 */
#include "pgr/term.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (2..4) and its code point, or 0 when s does not start
 * one (overlong forms, surrogates and code points above U+10FFFF are invalid). */
static size_t utf8_sequence(const unsigned char *s, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t min;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        *cp = c & 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        *cp = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        *cp = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
            return 0;
        *cp = (*cp << 6) | (s[i] & 0x3f);
    }
    if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
        return 0;
    return n;
}

/* C1 controls, line/paragraph separators and the bidirectional controls that reorder what a
 * terminal shows (a tenant id that displays as another one). */
static bool invisible_control(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e || cp == 0x200f ||
           (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* The escape of one ASCII byte, or NULL when it is shown as it is. */
static const char *ascii_escape(unsigned char c, char buf[8])
{
    if (c == '\n')
        return "\\n";
    if (c == '\t')
        return "\\t";
    if (c == '\r')
        return "\\r";
    if (c == '\\')
        return "\\\\";
    if (c < 0x20 || c == 0x7f) {
        snprintf(buf, 8, "\\x%02x", c);
        return buf;
    }
    return NULL;
}

/* Appends piece (n bytes) when it fits whole; always counts it. */
static void put(char *out, size_t outlen, size_t *len, bool *full, const char *piece, size_t n)
{
    if (!*full && *len + n < outlen)
        memcpy(out + *len, piece, n);
    else
        *full = true;
    *len += n;
}

size_t pgr_term_escape(const char *s, char *out, size_t outlen)
{
    const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
    size_t len = 0, kept = 0;
    bool full = outlen == 0;
    char buf[16];
    while (*p != '\0') {
        uint32_t cp = 0;
        size_t n = *p >= 0x80 ? utf8_sequence(p, &cp) : 1;
        const char *esc;
        size_t esc_len;
        if (n == 0) {
            snprintf(buf, sizeof(buf), "\\x%02x", *p);
            esc = buf;
            n = 1;
        } else if (n > 1) {
            if (invisible_control(cp))
                snprintf(buf, sizeof(buf), "\\u%04x", (unsigned)cp);
            esc = invisible_control(cp) ? buf : NULL;
        } else {
            esc = ascii_escape(*p, buf);
        }
        esc_len = esc != NULL ? strlen(esc) : n;
        put(out, outlen, &len, &full, esc != NULL ? esc : (const char *)p, esc_len);
        if (!full)
            kept = len;
        p += n;
    }
    if (outlen > 0)
        out[kept] = '\0';
    return len;
}

char *pgr_term_escape_dup(const char *s)
{
    char probe[1];
    size_t n = pgr_term_escape(s, probe, sizeof(probe));
    char *out = malloc(n + 1);
    if (out != NULL)
        pgr_term_escape(s, out, n + 1);
    return out;
}

void pgr_term_vformat(char *out, size_t outlen, const char *fmt, va_list ap)
{
    char small[1024];
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    char *text = small;
    if (n >= (int)sizeof(small)) {
        text = malloc((size_t)n + 1);
        if (text != NULL)
            vsnprintf(text, (size_t)n + 1, fmt, again);
        else
            text = small; /* out of memory: the truncated line is still escaped */
    }
    va_end(again);
    pgr_term_escape(n >= 0 ? text : "", out, outlen);
    if (text != small)
        free(text);
}

void pgr_term_format(char *out, size_t outlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pgr_term_vformat(out, outlen, fmt, ap);
    va_end(ap);
}

void pgr_term_vprintf(FILE *f, const char *fmt, va_list ap)
{
    char line[4096];
    pgr_term_vformat(line, sizeof(line), fmt, ap);
    fprintf(f, "%s\n", line);
}

void pgr_term_printf(FILE *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pgr_term_vprintf(f, fmt, ap);
    va_end(ap);
}

json_t *pgr_term_json_string(const char *s)
{
    json_t *v = json_string(s != NULL ? s : "");
    if (v == NULL) {
        char *esc = pgr_term_escape_dup(s);
        v = esc != NULL ? json_string(esc) : NULL;
        free(esc);
    }
    return v;
}
