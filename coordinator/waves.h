/*
 * waves.h - rollout plans with staged waves (docs/ROLLOUTS.md): which tenants each wave
 * takes (explicit list, tags, or a cumulative percentage of the fleet in a stable hash order),
 * its parallelism, failure budget, soak time and approval. Resolved at plan time: unknown
 * tenants, a tenant in two waves and empty waves are errors naming the field.
 */
#ifndef COORD_WAVES_H
#define COORD_WAVES_H

#include "pgr/job.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

typedef struct wave_def {
    const char *name;
    char **tenants;
    size_t count;
    int max_parallel;
    int max_failures;         /* failures allowed in the wave */
    double max_failure_ratio; /* or as a ratio of its tenants (whichever allows more) */
    int soak_seconds;
    bool manual_approval;
} wave_def;

typedef struct rollout_plan {
    json_t *doc;
    const char *name;
    char dir[4096]; /* absolute path of the migrations */
    const char *target;
    const char *type;
    const char *on_failure; /* pause | abort | rollback */
    pgr_job_options options;
    int ttl_seconds;
    wave_def *waves;
    size_t wave_count;
} rollout_plan;

/* Loads and resolves a plan. The fleet is the plan's "tenants" list, or else the tenants the
 * control database knows (db may be NULL when the plan lists them). Tags come from db. On
 * error, err says "field path: reason". */
int rollout_plan_load(const char *path, PGconn *db, rollout_plan *p, char *err, size_t errlen);

/* Resolves a plan document already parsed (resume reads it from the control DB). */
int rollout_plan_resolve(json_t *doc, PGconn *db, rollout_plan *p, char *err, size_t errlen);

void rollout_plan_free(rollout_plan *p);

/* Failures a wave tolerates. */
int wave_budget(const wave_def *w);

#endif
