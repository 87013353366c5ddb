/*
 * clock.h - time in pgrollout. Intervals, deadlines, backoff and idle times are measured with the
 * one monotonic clock, never with the wall clock (which an operator or NTP may set back); wall
 * times travel as RFC 3339 UTC text.
 */
#ifndef PGR_CLOCK_H
#define PGR_CLOCK_H
#include "pgr/error.h"
#include <time.h>

/* Milliseconds of CLOCK_MONOTONIC (an arbitrary origin: compare two readings only). */
long long pgr_clock_mono_ms(void);

/* Sleeps ms milliseconds (nothing for ms <= 0). A signal ends the sleep early: loops that check a
 * stop flag between sleeps react to SIGTERM at once. */
void pgr_clock_sleep_ms(long long ms);

/* RFC 3339 UTC "YYYY-MM-DDTHH:MM:SSZ" <-> time_t: exactly that shape, a real calendar date. */
pgr_code pgr_clock_parse_utc(const char *s, time_t *out) PGR_MUSTCHECK;
void pgr_clock_format_utc(time_t t, char out[32]);

#endif
