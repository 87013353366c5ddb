/*
 * outbox.h - the job outbox of a rollout: each job is signed and written to
 * pgrollout_control.job_outbox together with its tenant run, in one transaction, before it is
 * published; a row is marked sent only after the broker acknowledged it. A crash anywhere
 * never loses a job, and republishes at most the unmarked ones (agents absorb the duplicate).
 */
#ifndef COORD_OUTBOX_H
#define COORD_OUTBOX_H

#include "coord.h"
#include "planfile.h"

#include "pgr/migration.h"

/* Jobs are created, published and marked sent this many at a time: with 10,000 tenants in a
 * wave, one round held every envelope twice in memory (the outbox rows and librdkafka's copies,
 * 27 KB each) and published nothing until the last job was signed. */
#define COORD_OUTBOX_CHUNK 200

/* What the jobs of one rollout are made of; none of it is owned. */
typedef struct coord_outbox {
    coord *c;
    const coord_planfile *plan; /* name, ttl_seconds, options */
    const pgr_migration_set *set;
    const char *op;
} coord_outbox;

/* A signed job of type for one tenant run: the tenant's next seq, the envelope in the outbox,
 * the run pointing at it (a cancel job leaves the run's job as it is), one transaction. */
pgr_code coord_outbox_create_job(const coord_outbox *o, const char *tenant, const char *type,
                                 const char *target, pgr_error *err) PGR_MUSTCHECK;

/* Publishes every unsent outbox row of the rollout, COORD_OUTBOX_CHUNK at a time: sent, then
 * acknowledged by the broker, then marked sent. */
pgr_code coord_outbox_publish(const coord_outbox *o, pgr_error *err) PGR_MUSTCHECK;

#endif
