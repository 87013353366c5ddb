/*
 * live.h - the live view of a rollout on stdout: one line per wave (state, done/total and a
 * bar) and one per tenant run, each printed again only when it changed; text escaped for the
 * terminal, or one JSON object per line (--json).
 */
#ifndef COORD_LIVE_H
#define COORD_LIVE_H

#include "coord.h"

#include <stdbool.h>
#include <stddef.h>

#define COORD_LIVE_WAVES 64 /* waves shown; a plan with more shows the first ones */

/* The lines printed last. */
typedef struct coord_live {
    bool json;
    char **last; /* last line printed per tenant run row */
    size_t last_count;
    char *wave_line[COORD_LIVE_WAVES]; /* last summary printed per wave */
    size_t wave_line_count;
} coord_live;

void coord_live_init(coord_live *v, bool json);

/* Prints the lines of the rollout's waves and tenant runs that changed since the last call. */
void coord_live_show(coord_live *v, coord *c, const char *rollout);

/* Forgets the lines printed (the next show prints every line again). */
void coord_live_free(coord_live *v);

#endif
