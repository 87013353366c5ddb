/*
 * engine.h - the staged rollout engine behind `pgrollout run`, `resume` and `rollback`: moves a
 * rollout stored in the control database forward, wave by wave, until it succeeds, fails,
 * pauses, or the caller stops it. A second coordinator on the same rollout is refused by the
 * rollout's advisory lock (coord_ctldb_lock_rollout), taken before the engine starts.
 */
#ifndef COORD_ENGINE_H
#define COORD_ENGINE_H

#include "coord.h"
#include "planfile.h"

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>

typedef struct coord_engine coord_engine;

/* How coord_engine_run ended. */
typedef enum coord_engine_end {
    COORD_ENGINE_SUCCEEDED,   /* every wave passed */
    COORD_ENGINE_FAILED,      /* failed, aborted or rolled back */
    COORD_ENGINE_PAUSED,      /* paused (failure budget, operator) or waiting for an approval */
    COORD_ENGINE_INTERRUPTED, /* *stop was set: the rollout carries on with `resume` */
    COORD_ENGINE_TIMED_OUT,   /* the timeout passed: likewise */
    COORD_ENGINE_LOCK_LOST,   /* another coordinator took the rollout during an outage */
} coord_engine_end;

/* The plan stored with a rollout (caller decrefs), or NULL when there is no such rollout. */
json_t *coord_engine_stored_plan(coord *c, const char *rollout);

/* An engine for the resolved plan on session c, acting as op; --json progress lines when json.
 * c and plan stay the caller's and must outlive it. NULL when out of memory. */
coord_engine *coord_engine_new(coord *c, coord_planfile *plan, const char *op, bool json);
void coord_engine_free(coord_engine *e);

/* Loads the plan's migrations; PGR_ERR_NOTFOUND when its target is not one of them. */
pgr_code coord_engine_load_migrations(coord_engine *e, pgr_error *err) PGR_MUSTCHECK;

/* First run of a plan: the rollout, its waves and a pending run per tenant, one transaction.
 * The stored plan carries the absolute migrations path, so `resume` needs nothing else. */
pgr_code coord_engine_create_rollout(coord_engine *e, pgr_error *err) PGR_MUSTCHECK;

/* The rollout's state ("running" when it cannot be read). */
void coord_engine_rollout_state(coord_engine *e, char out[32]);

/* Resume: running again, and the failed tenants of the current wave get a new job. */
void coord_engine_reopen(coord_engine *e);

/* `pgrollout rollback ROLLOUT --wave NAME`: that wave becomes the current one again and its
 * tenants that succeeded get rollback jobs to their starting version; the engine then waits
 * for them and ends the rollout as rolled_back. PGR_ERR_NOTFOUND when the plan has no such
 * wave. Needs the Kafka clients (coord_kafka). */
pgr_code coord_engine_start_rollback(coord_engine *e, const char *wave,
                                     pgr_error *err) PGR_MUSTCHECK;

/* PGR_FAILPOINT=coord_after_outbox (crash test): writes the first wave's jobs to the outbox,
 * publishes none, and kills the process. Does nothing otherwise. */
void coord_engine_failpoint(coord_engine *e);

/* --collect-audit: the engine loop stores the audit topic's records too. */
pgr_code coord_engine_collect_audit(coord_engine *e, pgr_error *err) PGR_MUSTCHECK;

/* Runs the rollout until it ends, timeout_s passes or *stop is set (by a signal handler).
 * Needs the Kafka clients (coord_kafka). */
coord_engine_end coord_engine_run(coord_engine *e, int timeout_s,
                                  const volatile sig_atomic_t *stop);

/* --collect-audit, after coord_engine_run: stores what the audit topic holds by now, for up
 * to 15 s or until *stop; nothing when the rollout's lock was lost. */
void coord_engine_drain_audit(coord_engine *e);

#endif
