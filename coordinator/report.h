/*
 * report.h - the report of a rollout: one self-contained HTML page (inline CSS, no scripts, no
 * external assets) for people who would rather look than read: the waves, a timeline of every
 * tenant (start, end, duration, result), the failures with their reason, the operator actions,
 * and a summary of the central audit record.
 */
#ifndef COORD_REPORT_H
#define COORD_REPORT_H

#include "coord.h"

#include <stdbool.h>
#include <stdio.h>

/* Whether the control database has the rollout. */
bool coord_report_rollout_exists(coord *c, const char *rollout);

/* Writes the report of the rollout to f. A query that fails ends the tables there; the page is
 * closed either way. */
pgr_code coord_report_write(coord *c, const char *rollout, FILE *f, pgr_error *err) PGR_MUSTCHECK;

#endif
