/*
 * seqstore.h - the last accepted job seq of each tenant, kept in the agent's state directory
 * (agent.state_dir) beside pgrollout.jobs. Migration SQL runs in the tenant database and may
 * delete rows of pgrollout.jobs; it cannot reach this file, so a replayed older job is still
 * refused (docs/SECURITY.md, "Hostile migration author").
 */
#ifndef AGENT_SEQSTORE_H
#define AGENT_SEQSTORE_H

#include "executor.h"

/* In the intake's open transaction, after its own replay checks passed (*why NULL): refuses a job
 * whose seq is not above both in_db (the highest seq of pgrollout.jobs, which the intake read
 * under its lock) and the seq kept for tenant in state_dir (NULL: the database's only), and
 * every job while the database's is the lower of the two (rows were deleted, or the database
 * restored: an operator reconciles). A refusal sets *why to "stale_seq" and refusal to a message
 * naming the tenant and both numbers. On acceptance *keep is seq, to be kept once that
 * transaction commits (agent_session_commit); else 0. */
void agent_seqstore_check(const char *state_dir, const char *tenant, long long seq, long long in_db,
                          const char **why, char refusal[AGENT_REFUSAL_LEN], long long *keep);

/* The seq kept for tenant in state_dir into *seq (0 when none is kept yet). */
pgr_code agent_seqstore_read(const char *state_dir, const char *tenant, long long *seq,
                             pgr_error *err) PGR_MUSTCHECK;

/* Keeps seq for tenant in state_dir/jobseq/TENANT.seq: a temporary file written and fsynced,
 * renamed over the old one, then the directory fsynced; mode 0600 (directory 0700). */
pgr_code agent_seqstore_keep(const char *state_dir, const char *tenant, long long seq,
                             pgr_error *err) PGR_MUSTCHECK;

/* The seq of the last job of tenant that ended for good (succeeded, failed, cancelled; not
 * interrupted) in state_dir/jobseq/TENANT.ended, 0 when none. A tenant's jobs run one at a time
 * in seq order, so a stored job at or below it has ended: a row of pgrollout.jobs set back to
 * `accepted` (migration SQL can) is not resumed. */
pgr_code agent_seqstore_read_ended(const char *state_dir, const char *tenant, long long *seq,
                                   pgr_error *err) PGR_MUSTCHECK;

/* Raises that number to seq (never lowers it); written as agent_seqstore_keep writes. */
pgr_code agent_seqstore_keep_ended(const char *state_dir, const char *tenant, long long seq,
                                   pgr_error *err) PGR_MUSTCHECK;

/* The files of agent.state_dir hold one decimal number each. Reads the number of the file at
 * path (0 to max) into *v: 0 when the file does not exist; an error naming the file when it
 * cannot be read or holds anything else. */
pgr_code agent_seqstore_file_read(const char *path, long long max, long long *v,
                                  pgr_error *err) PGR_MUSTCHECK;

/* Replaces the file at path, in directory dir, by one holding v: a temporary file of this
 * process written and fsynced (mode 0600), renamed over it, then dir fsynced. */
pgr_code agent_seqstore_file_write(const char *dir, const char *path, long long v,
                                   pgr_error *err) PGR_MUSTCHECK;

#endif
