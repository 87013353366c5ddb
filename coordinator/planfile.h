/*
 * planfile.h - rollout plans with staged waves (docs/ROLLOUTS.md): which tenants each wave
 * takes (explicit list, tags, or a cumulative percentage of the fleet in a stable hash order),
 * its parallelism, failure budget, soak time and approval. Resolved at plan time: unknown
 * tenants, a tenant in two waves and empty waves are errors naming the field.
 */
#ifndef COORD_PLANFILE_H
#define COORD_PLANFILE_H

#include "pgr/error.h"
#include "pgr/job.h"
#include "pgr/keyring.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

typedef struct coord_planfile_wave {
    const char *name;
    char **tenants;
    size_t count;
    int max_parallel;
    int max_failures;         /* failures allowed in the wave */
    double max_failure_ratio; /* or as a ratio of its tenants (whichever allows more) */
    int soak_seconds;
    bool manual_approval;
} coord_planfile_wave;

typedef struct coord_planfile {
    json_t *doc;
    const char *name;
    char dir[4096]; /* absolute path of the migrations */
    const char *target;
    const char *type;
    const char *on_failure; /* pause | abort | rollback */
    pgr_job_options options;
    int ttl_seconds;
    coord_planfile_wave *waves;
    size_t wave_count;
    struct pgr_release **releases; /* the manifests every job of the rollout carries */
    size_t release_count;
} coord_planfile;

/* Loads and resolves a plan. The fleet is the plan's "tenants" list, or else the tenants the
 * control database knows (db may be NULL when the plan lists them). Tags come from db. On
 * error, err says "field path: reason"; p is to be freed either way. */
pgr_code coord_planfile_load(const char *path, PGconn *db, coord_planfile *p, pgr_error *err);

/* Like coord_planfile_load, with release manifest files (--release) added to the plan's own
 * "releases"; each file is read once and kept in the plan itself (so the stored plan of the
 * rollout carries the manifests, not paths). */
pgr_code coord_planfile_load_releases(const char *path, const char *const *extra, size_t n,
                                      PGconn *db, coord_planfile *p, pgr_error *err);

/* What agents with release.threshold = threshold and the release keyring kr would refuse,
 * refused now: a release key that is the coordinator's own (coord_pk), a manifest with too few
 * valid signatures or expired, a migration the rollout would run in no valid manifest or with
 * other bytes, a tenant outside the scope of the manifests that release it. */
pgr_code coord_planfile_check_releases(const coord_planfile *p, const pgr_keyring *kr,
                                       int threshold, const uint8_t coord_pk[32], PGconn *db,
                                       pgr_error *err) PGR_MUSTCHECK;

/* Resolves a plan document already parsed (resume reads it from the control DB); p takes doc. */
pgr_code coord_planfile_resolve(json_t *doc, PGconn *db, coord_planfile *p, pgr_error *err);

void coord_planfile_free(coord_planfile *p);

/* A new rollout's plan names no tenant that its agent reported gone (a stored plan is not checked
 * again: a rollout whose tenant went away can still be resumed or aborted). */
pgr_code coord_planfile_check_gone(const coord_planfile *p, PGconn *db,
                                   pgr_error *err) PGR_MUSTCHECK;

/* Failures a wave tolerates. */
int coord_planfile_wave_budget(const coord_planfile_wave *w);

#endif
