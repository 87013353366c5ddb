/*
 * verbs.h - what an operator does to a rollout from outside its engine: pause it, abort it,
 * approve the wave it waits on; and the append-only log of every operator action on a rollout,
 * those of the engine included.
 */
#ifndef COORD_VERBS_H
#define COORD_VERBS_H

#include "coord.h"

#include <stdbool.h>

/* Records an operator action (pause, resume, approve, abort, automatic ones) append-only. */
pgr_code coord_verbs_log(coord *c, const char *rollout, const char *action, const char *wave,
                         const char *op, const char *detail) PGR_MUSTCHECK;

/* verb "pause" or "abort": the rollout's state, when it is running or paused; "approve": the
 * approval of its current wave (when wave is not NULL, only if that wave is the current one).
 * *done says whether anything changed; only then is the action logged, with op. */
pgr_code coord_verbs_apply(coord *c, const char *verb, const char *rollout, const char *wave,
                           const char *op, bool *done, pgr_error *err) PGR_MUSTCHECK;

#endif
