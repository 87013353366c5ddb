/*
 * job.h - the job payload (docs/PROTOCOL.md): what the coordinator signs and an agent runs.
 * Parsing is strict: unknown types, missing fields, wrong types, bad times, a migration whose
 * text does not hash to its checksum, or one that does not parse, are all refused.
 */
#ifndef PGR_JOB_H
#define PGR_JOB_H

#include "pgr/clock.h"
#include "pgr/migration.h"
#include "pgr/uuid.h"

#include <stdbool.h>
#include <time.h>

typedef struct pgr_job_options {
    int lock_timeout_ms;
    int statement_timeout_ms;
    int retries;
    char orphans[16]; /* "", "abort" or "quarantine" */
    bool backup;
    /* apply: check the applied objects at the end of the job, in its session, and report the
     * check in the result (`verified`), so that the wave gate needs no separate verify job */
    bool verify_in_job;
} pgr_job_options;

typedef struct pgr_job {
    char type[16]; /* apply | rollback | verify | cancel */
    char job_id[37];
    char *rollout_id;
    char *wave;
    char *tenant_id;
    long long seq;
    time_t issued_at;
    time_t expires_at;
    char *operator_name;
    char *target; /* apply: highest version; rollback: roll back above it */
    pgr_job_options options;
    pgr_migration_set *migrations;
    /* release manifests the job carries (PROTOCOL 14), parsed, not yet checked: the agent checks
     * them against its release keyring before it records the job */
    struct pgr_release **releases;
    size_t release_count;
    /* builder only (not in the payload): carry no migration above it. The rollback of an apply
     * rollout carries only what that rollout could have applied, so that its releases cover it */
    const char *carry_max;
} pgr_job;

/* Why a payload was refused. */
typedef enum pgr_job_reject {
    PGR_JOB_OK = 0,
    PGR_JOB_MALFORMED,
    PGR_JOB_CHECKSUM_MISMATCH,
} pgr_job_reject;

pgr_code pgr_job_parse(const char *buf, size_t len, pgr_job **out, pgr_job_reject *reason,
                       pgr_error *err) PGR_MUSTCHECK;
void pgr_job_free(pgr_job *job);

/* Builds the payload bytes (compact JSON, fields in the documented order) of a job carrying
 * every migration of set with version <= target (rollback: every migration). Caller frees. */
char *pgr_job_build(const pgr_job *job, const pgr_migration_set *set);

/* The versions of the migrations pgr_job_build puts into the job, as a compact JSON array of
 * strings (the coordinator binds the job's events to them). Caller frees; NULL when out of
 * memory. */
char *pgr_job_versions_json(const pgr_job *job, const pgr_migration_set *set);

#endif
