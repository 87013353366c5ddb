/*
 * clock.h - the one monotonic clock of pgrollout: intervals, deadlines, backoff and idle times
 * are measured with it, never with the wall clock (which an operator or NTP may set back).
 */
#ifndef PGR_CLOCK_H
#define PGR_CLOCK_H

/* Milliseconds of CLOCK_MONOTONIC (an arbitrary origin: compare two readings only). */
long long pgr_clock_mono_ms(void);

#endif
